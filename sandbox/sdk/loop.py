"""The SDK thread: one asyncio loop per process, started by ``Daily.init()``.

As in daily-python, every completion, event and audio renderer callback runs on it, never
on the caller's thread; methods hand their work to it and return at once.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine
from typing import Any


class SdkLoop:
    """The loop and the thread that runs it (``sandbox-sdk``)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="sandbox-sdk", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` on the SDK thread."""
        asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the SDK thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the SDK thread after ``delay`` seconds; what it raises is
        printed, not raised."""
        self.loop.call_soon_threadsafe(self.loop.call_later, delay, guarded, fn, *args)

    def stop(self) -> None:
        """Stop the loop and wait (briefly) for its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(2)


def guarded(fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn(*args)``; print what it raises instead of raising it."""
    try:
        fn(*args)
    except Exception:
        traceback.print_exc(file=sys.stderr)  # daily-python swallows it; say so at least


_sdk: SdkLoop | None = None  # the process's, between Daily.init() and Daily.deinit()


def current() -> SdkLoop | None:
    """The process's SDK loop, or None before ``Daily.init()``."""
    return _sdk


def require() -> SdkLoop:
    """The process's SDK loop; raises RuntimeError before ``Daily.init()``."""
    if _sdk is None:
        raise RuntimeError("Daily.init() must be called first")
    return _sdk


def start() -> None:
    """Start the process's SDK loop (``Daily.init`` makes sure none runs yet)."""
    global _sdk
    _sdk = SdkLoop()


def stop() -> None:
    """Stop the process's SDK loop, if it runs."""
    global _sdk
    if _sdk is not None:
        _sdk.stop()
        _sdk = None
