"""A session's named timers (join, max duration, idle): each fires a message into the
actor's mailbox; the actor arms and cancels them and nothing else touches them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Timers:
    """One session's timers by name; arming a name again restarts it."""

    def __init__(self) -> None:
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def arm(self, name: str, delay_s: float, callback: Callable[..., Any], *args: Any) -> None:
        """(Re)start the timer ``name``: ``callback(*args)`` after ``delay_s``."""
        self.cancel(name)
        self._handles[name] = asyncio.get_running_loop().call_later(delay_s, callback, *args)

    def cancel(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def armed(self, name: str) -> bool:
        return name in self._handles and not self._handles[name].cancelled()

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
