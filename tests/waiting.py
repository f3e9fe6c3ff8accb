"""The tests' one way to wait: poll a condition until it holds, never sleep a fixed time.

A fixed sleep is either too short on a loaded machine (the test fails for nothing) or too
long everywhere else; polling ends as soon as the thing happened and fails, naming what it
waited for, only when it never did.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


async def wait_until(probe: Callable[[], T | Awaitable[T]], timeout: float = 20.0, what: str = "condition", *,
                     until: Callable[[T], Any] = bool, interval: float = 0.05) -> T:
    """Call ``probe`` (a plain function or one returning an awaitable) every ``interval``
    seconds until ``until`` holds for what it returned (by default: until that is truthy),
    and return that value.

    Raises ``AssertionError`` naming ``what`` and the last value once ``timeout`` seconds
    have passed without it holding.
    """
    deadline = time.monotonic() + timeout
    while True:
        value: Any = probe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):
            return cast(T, value)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last value: {_short(value)}")
        await asyncio.sleep(interval)


def _short(value: object, limit: int = 3000) -> str:
    # The end of a long value (a log, a listing) is where what went wrong shows.
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else "..." + text[-limit:]
