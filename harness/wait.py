"""The one wait of the harness: poll a condition until it holds, never longer than a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """A condition did not hold within its bound; the message says what was awaited."""


def wait_for(check: Callable[[], T], timeout: float, what: str, period: float = 0.05) -> T:
    """Call ``check`` until it returns a truthy value, and return that value.

    An exception from ``check`` counts as "not yet" (a server still starting refuses
    connections); the last one is named if the bound passes. Fails with ``what`` after
    ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise WaitTimeoutError(f"{what}: not within {timeout:g} s{detail}")
        time.sleep(period)
