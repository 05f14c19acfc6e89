"""The one way the harness stops a process it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10.0, *, group: bool = False) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit status.

    ``group``: signal the whole process group (a process started with ``start_new_session``,
    such as a Node script that forks). Safe to call twice, and on a process already gone.
    """
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM, group)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL, group)
    return proc.wait(timeout=timeout)


def _signal(proc: subprocess.Popen[bytes] | subprocess.Popen[str], sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
