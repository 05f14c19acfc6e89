"""Run the real redis_exporter (Debian's prometheus-redis-exporter) with an ExporterSidecar's args.

Tests take the args exactly as rendered and change only where the exporter connects and
listens (:func:`exporter_args_for_test`), so what runs here is what runs in the pod.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.paths import require_binary
from harness.process import stop

BINARY = "prometheus-redis-exporter"

# The only flags a test rewrites: where the exporter finds Valkey and where it listens.
_REDIS_ADDR = "--redis.addr"
_LISTEN_ADDRESS = "--web.listen-address"


def exporter_args_for_test(rendered_args: Sequence[str], redis_port: int, listen_port: int) -> list[str]:
    """The rendered args with Valkey at 127.0.0.1:redis_port and the listener at
    127.0.0.1:listen_port; every other arg is kept as rendered, in order."""
    replacements = {
        _REDIS_ADDR: f"redis://127.0.0.1:{redis_port}",
        _LISTEN_ADDRESS: f"127.0.0.1:{listen_port}",
    }
    args: list[str] = []
    replaced: set[str] = set()
    for arg in rendered_args:
        name, sep, _ = arg.partition("=")
        if name in replacements:
            assert sep, f"expected {name}=<value> in the rendered args, got {arg!r}"
            assert name not in replaced, f"{name} is rendered twice: {list(rendered_args)}"
            args.append(f"{name}={replacements[name]}")
            replaced.add(name)
        else:
            args.append(arg)
    missing = sorted(set(replacements) - replaced)
    assert not missing, f"the rendered args lack {missing}: {list(rendered_args)}"
    return args


def listen_url(args: Sequence[str], path: str = "/metrics") -> str:
    """http://<listen address><path> of an exporter started with args."""
    for arg in args:
        name, _, value = arg.partition("=")
        if name == _LISTEN_ADDRESS:
            host, _, port = value.rpartition(":")
            return f"http://{host or '127.0.0.1'}:{port}{path}"
    raise AssertionError(f"no {_LISTEN_ADDRESS} in {list(args)}")


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _get(url: str, timeout: float) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return int(response.status), response.read().decode()


def scrape(url: str, timeout: float = 10.0) -> str:
    """One GET of url (e.g. /metrics); the body, or an AssertionError on a non-200 answer."""
    status, body = _get(url, timeout)
    assert status == 200, f"GET {url} answered {status}:\n{body[:2000]}"
    return body


def scrape_until(url: str, done: Callable[[str], bool], *, timeout: float = 10.0, period: float = 0.1) -> str:
    """Scrape url until done(body) holds; the last body, or an AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    body = ""
    while True:
        try:
            body = scrape(url, timeout=max(0.1, deadline - time.monotonic()))
            if done(body):
                return body
        except (OSError, urllib.error.URLError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not reach the expected state within {timeout}s; last body:\n{body[:4000]}")
        time.sleep(period)


def start_exporter(args: Sequence[str], *, log: Path | None = None, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """Start the real exporter with args and wait until its /health answers; output goes to log."""
    binary = require_binary(BINARY)
    out = log.open("wb") if log is not None else None
    try:
        proc = subprocess.Popen(
            [binary, *args],
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    finally:
        if out is not None:
            out.close()
    health = listen_url(args, "/health")
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{BINARY} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if _get(health, timeout=1.0)[0] == 200:
                return proc
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            stop_exporter(proc)
            raise AssertionError(f"{BINARY} did not serve {health} within {timeout}s:\n{_tail(log)}")
        time.sleep(0.02)


def stop_exporter(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM (the exporter shuts its HTTP server down), then SIGKILL after timeout seconds."""
    stop(proc, timeout)


@contextmanager
def running_exporter(args: Sequence[str], *, log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """The real exporter with args, serving; always stopped on exit."""
    proc = start_exporter(args, log=log)
    try:
        yield proc
    finally:
        stop_exporter(proc)


def samples(body: str) -> dict[str, float]:
    """The samples of a text exposition, keyed as printed: 'valkey_key_size{db="db0",key="k"}'."""
    result: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            result[series] = float(value)
    return result


def metric_names(body: str) -> set[str]:
    """The metric names of a text exposition."""
    return {series.partition("{")[0] for series in samples(body)}
