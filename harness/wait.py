"""The one wait of the harness: poll a condition until it holds, never longer than a bound."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """A condition did not hold within its bound; the message says what was awaited."""


class GaveUpError(AssertionError):
    """Raised by a check to stop waiting at once (a process it depends on has exited)."""


def wait_for(
    check: Callable[[], T],
    timeout: float,
    what: str,
    period: float = 0.05,
    *,
    proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
) -> T:
    """Call ``check`` until it returns a truthy value, and return that value.

    An exception from ``check`` counts as "not yet" (a server still starting refuses
    connections); the last one is named if the bound passes. :class:`GaveUpError` ends the
    wait at once, and so does the exit of ``proc`` when one is given. Fails with ``what`` after
    ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
        except GaveUpError:
            raise
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
        if proc is not None and proc.poll() is not None:
            raise GaveUpError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise WaitTimeoutError(f"{what}: not within {timeout:g} s{detail}")
        time.sleep(period)


def seconds_until(
    check: Callable[[], object],
    timeout: float,
    what: str,
    period: float = 0.02,
    *,
    proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
) -> float:
    """:func:`wait_for`, returning how many seconds the condition took to hold."""
    start = time.monotonic()
    wait_for(check, timeout, what, period, proc=proc)
    return time.monotonic() - start
