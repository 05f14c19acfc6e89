"""A node script as a child process that prints one JSON object per line: a reader thread
collects the events; the test waits for one, sends lines on stdin, kills it when done."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.paths import REPO


def node_binary() -> str:
    """node, with bullmq and ioredis in the repo's node_modules; AssertionError otherwise."""
    path = shutil.which("node")
    assert path is not None, "node is not installed: the BullMQ tests need Node.js and `npm ci` at the repo root"
    for module in ("bullmq", "ioredis"):
        assert (REPO / "node_modules" / module / "package.json").exists(), (
            f"node_modules/{module} is missing: run `npm ci` at the repo root"
        )
    return path


class NodeProcess:
    """``argv`` (a node command, possibly behind a prefix such as ``ip netns exec``) started in
    the repo root; its stdout events in :attr:`events` (every line, in order)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            cwd=REPO,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"ev": "noise", "line": line.rstrip()}
            self.events.append(event)
            self._queue.put(event)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """The next event (after those already consumed here) for which predicate holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self._queue.empty():
                    break
                continue
            if event["ev"] == "fatal":
                raise AssertionError(f"node script failed: {event}; stderr {self.stderr[-10:]}")
            if predicate(event):
                return event
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; node exit {self.proc.poll()}, "
            f"stderr {self.stderr[-10:]}, last events {self.events[-8:]}"
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
