"""Secrets in tests: the kubelet's part (a Secret's value into the env that references it) and a
leak detector (a password that needs quoting everywhere, and a scan of every command line on the
machine), shared by the AUTH tests of the single Valkey and of the Sentinel topology."""

from __future__ import annotations

import copy
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def resolve_secret_refs(objs: list[dict[str, Any]], secret_data: Mapping[tuple[str, str], str]) -> list[dict[str, Any]]:
    """A copy of the manifest where each container env ``valueFrom.secretKeyRef`` holds the value
    the kubelet would read from that Secret key at container start. A reference to a missing key
    fails, as the pod would (CreateContainerConfigError)."""
    resolved = copy.deepcopy(objs)
    for obj in resolved:
        if obj["kind"] != "StatefulSet":
            continue
        for ctr in obj["spec"]["template"]["spec"]["containers"]:
            for var in ctr.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert (ref["name"], ref["key"]) in secret_data, f"no Secret key {ref} for env {var['name']}"
                    assert not ref.get("optional"), "the password must not be optional"
                    var.pop("valueFrom")
                    var["value"] = secret_data[(ref["name"], ref["key"])]
    return resolved


def new_password() -> tuple[str, str]:
    """(password, token): a password with every character class that needs quoting somewhere
    (space, both quotes, backslash, $, backtick, #), around a random token that exists
    nowhere else: any trace of the token is a leak, whatever encoding it went through."""
    token = secrets.token_hex(16)
    return f"{token} sp\"dq'sq\\bs$HOME`id`#x", token


def needles(password: str, token: str) -> list[bytes]:
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    return [password.encode(), escaped.encode(), token.encode()]


def leaks(data: bytes | str, patterns: Sequence[bytes]) -> list[bytes]:
    raw = data.encode() if isinstance(data, str) else data
    return [p for p in patterns if p in raw]


class CmdlineScanner(threading.Thread):
    """Reads /proc/<pid>/cmdline of every process on the machine, round after round, until
    stopped; records every process seen (pid and command line) and every one holding a needle."""

    def __init__(self, patterns: Sequence[bytes]) -> None:
        super().__init__(daemon=True)
        self.patterns = list(patterns)
        self.seen: set[tuple[str, bytes]] = set()
        self.hits: list[tuple[str, bytes]] = []
        self.rounds = 0
        self._halt = threading.Event()

    def scan_once(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue  # the process is gone
            if (entry.name, raw) not in self.seen:
                self.seen.add((entry.name, raw))
                if leaks(raw, self.patterns):
                    self.hits.append((entry.name, raw))
        self.rounds += 1

    def run(self) -> None:
        while not self._halt.is_set():
            self.scan_once()

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def commands(self, program: str) -> list[str]:
        """The command lines of the processes seen whose argv[0] names ``program`` (valkey-server
        rewrites its argv into a title such as ``valkey-server 127.0.0.1:6379``)."""
        out = []
        for _, raw in self.seen:
            argv0 = raw.split(b"\0")[0].decode(errors="replace")
            if program in argv0.rsplit("/", 1)[-1]:
                out.append(raw.replace(b"\0", b" ").decode(errors="replace"))
        return out
