"""Helpers for tests that run a real valkey-server: config files, bounded waits, clean stops."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import valkey

from harness.process import stop

# What the entrypoint's pod config holds, minus maxmemory (which the entrypoint computes).
BASE_CONFIG = (
    "bind 127.0.0.1",
    "appendonly yes",
    "appendfsync everysec",
    "maxmemory-policy noeviction",
    "daemonize no",
    'save ""',
)


def write_config(path: Path, *, port: int, data_dir: Path, extra: Iterable[str] = ()) -> Path:
    """A valkey.conf for a loopback server on `port` keeping its files in `data_dir`."""
    lines = [f"port {port}", f"dir {data_dir}", *BASE_CONFIG, *extra]
    path.write_text("\n".join(lines) + "\n")
    return path


def client(port: int) -> valkey.Valkey:
    return valkey.Valkey(
        host="127.0.0.1",
        port=port,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=5.0,
    )


def _tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for_pong(proc: subprocess.Popen[bytes], port: int, *, timeout: float = 10.0, log: Path | None = None) -> None:
    """Poll PING until the server answers PONG; fail fast if the process exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"valkey-server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with client(port) as conn:
                if conn.ping():
                    return
        except (valkey.ConnectionError, valkey.TimeoutError):
            pass  # not listening yet, or still loading (BusyLoadingError is a ConnectionError)
        if time.monotonic() > deadline:
            raise AssertionError(f"no PONG on port {port} within {timeout}s:\n{_tail(log)}")
        time.sleep(0.02)


def stop_server(proc: subprocess.Popen[bytes], port: int, *, timeout: float = 5.0) -> None:
    """SHUTDOWN NOSAVE, then SIGKILL if the process is still there after `timeout` seconds."""
    if proc.poll() is None:
        try:
            with client(port) as conn:
                conn.shutdown(nosave=True)
        except valkey.BusyLoadingError:
            proc.kill()  # still loading its data: nothing to lose
        except valkey.ConnectionError:
            pass  # the server closing the connection is the normal answer to SHUTDOWN
        except valkey.ValkeyError:
            proc.kill()  # e.g. NOAUTH: a test server's data is disposable
    # SHUTDOWN asked it to go: SIGTERM and SIGKILL only if it has not within the bound.
    stop(proc, timeout)


def valkey_cli(
    env: Mapping[str, str], port: int, *args: str, timeout: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """Run the real valkey-cli against 127.0.0.1:`port`."""
    return subprocess.run(
        ["valkey-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def info_field(env: Mapping[str, str], port: int, section: str, field: str) -> str | None:
    """One INFO field through valkey-cli (which also works while the server is loading)."""
    result = valkey_cli(env, port, "info", section)
    for line in result.stdout.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key == field:
            return value
    return None


@contextmanager
def running_server(
    env: Mapping[str, str], config: Path, port: int, log: Path, *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    """valkey-server on `config` (plus `args`), output in `log`; always stopped on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["valkey-server", str(config), *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield proc
    finally:
        stop_server(proc, port)
