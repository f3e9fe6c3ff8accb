"""The call client's SDK threads, met on the worker's asyncio loop.

Threading rule (reference/daily.md): events, completions and audio arrive on SDK threads.
Nothing here calls the client from those threads: every event is handed to the loop with
``call_soon_threadsafe``, and every command's completion settles a future on the loop that
is awaited with a timeout, because completions are known to go missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from protocol.messages import EVENT_BY_CALLBACK, ErrCode, Event

log = structlog.get_logger("worker.call")  # the call host's log: these are its callbacks


class CommandFailed(Exception):
    """A command the call client could not carry out: ``code`` says why (the SDK's
    error, a completion that never came, an unsupported method, ...)."""

    def __init__(self, code: ErrCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def forwarding_handler_class(base: type) -> type:
    """A subclass of the backend's ``EventHandler`` with one method per event Struct.

    Each method packs its arguments into the Struct (fields are named like the callback's
    parameters) and hands it to the loop. Exceptions are logged here because the SDK
    swallows whatever a handler raises.
    """

    def make(cls: type[Event]) -> Callable[..., None]:
        fields = cls.__struct_fields__

        def handler(self: Any, *args: Any) -> None:
            try:
                self._deliver(cls(**dict(zip(fields, args, strict=False))))
            except Exception:
                log.exception("event handler failed", callback=cls.callback)
            also = self.also
            if also is not None:
                # A hosted bot's own handler gets the callback too, on this SDK thread.
                try:
                    getattr(also, cls.callback)(*args)
                except Exception:
                    log.exception("the bot's event handler failed", callback=cls.callback)

        handler.__name__ = cls.callback
        return handler

    def __init__(self: Any, deliver: Callable[[Event], None]) -> None:
        base.__init__(self)
        self._deliver = deliver
        self.also: Any = None  # a hosted bot's event handler (worker.hosted_daily)

    namespace: dict[str, Any] = {"__init__": __init__}
    namespace.update({cb: make(cls) for cb, cls in EVENT_BY_CALLBACK.items()})
    return type("ForwardingEventHandler", (base,), namespace)


def completion_future(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Future[Any], Callable[..., None]]:
    """A future on ``loop``, and the completion callback to hand the SDK that settles it
    from an SDK thread: with the completion's data, or ``CommandFailed`` for its error."""
    fut: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: Any) -> None:
        if not fut.done():
            if error:
                fut.set_exception(CommandFailed(ErrCode.SDK_ERROR, str(error)))
            else:
                fut.set_result(result)

    def completion(*args: Any) -> None:
        # (error) or (data, error), on an SDK thread.
        result, error = (None, args[0]) if len(args) == 1 else (args[0], args[1])
        loop.call_soon_threadsafe(settle, result, error)

    return fut, completion


async def completed(fut: asyncio.Future[Any], what: str, timeout_s: float) -> Any:
    """The completion's data. Raises ``CommandFailed``: its error, or a timeout when it
    did not come within ``timeout_s``."""
    try:
        return await asyncio.wait_for(fut, timeout_s)
    except TimeoutError:
        raise CommandFailed(
            ErrCode.TIMEOUT, f"{what} did not complete within {timeout_s:g}s"
        ) from None
