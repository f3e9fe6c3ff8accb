"""A session's actor plumbing, in the manner of pykka: one task reads one mailbox.

``tell`` is fire-and-forget (a stop, the worker's events); ``ask`` returns the actor's
answer and raises whatever the asked function raised. Slow work runs as a step the actor
can cancel (``_step``): while it runs the mailbox is still read, so a stop ends it at once
and an ask is answered; the worker's events wait until the step is done.

Whatever is queued when the actor dies is answered with ``SessionGone``, never dropped, and
every such answer is marked retrieved: an answer nobody waits for any more (the asker gave
up, or nobody asked in the first place) is no unhandled error, while an asker that does
wait still receives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from protocol.messages import BotFinished, Event
from supervisor.sessions.state import EndReason

T = TypeVar("T")


class SessionGone(Exception):
    """The session has finished; the request could not be carried out."""


class Stop(msgspec.Struct):
    """End the session at whatever stage it is."""

    reason: EndReason
    detail: str | None = None
    cleanup_by: float | None = None  # monotonic deadline for leaving and deleting the room


class WorkerEvent(msgspec.Struct):
    """An event from the session's call, or the hosted bot's end."""

    event: Event | BotFinished


class WorkerLost(msgspec.Struct):
    """The session's worker died."""

    reason: str


class Ask(msgspec.Struct):
    """Run ``fn`` in the actor and answer ``future`` with its outcome."""

    fn: Callable[[], Any]
    future: asyncio.Future[Any]


Message = Stop | WorkerEvent | WorkerLost | Ask


class End(Exception):
    """Ends the actor's life with a reason (a stop, or a step that failed)."""

    def __init__(self, reason: EndReason, detail: str | None) -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail


def answer_error(future: asyncio.Future[Any], exc: BaseException) -> None:
    """Answer ``future`` with ``exc`` unless it is answered already, and mark the error
    retrieved: whoever awaits the future still gets it."""
    if not future.done():
        future.set_exception(exc)
        future.exception()


class Actor:
    """A mailbox and the task that reads it; the session is one."""

    def __init__(self, actor_id: str) -> None:
        self.id = actor_id
        self.mailbox: asyncio.Queue[Message] = asyncio.Queue()
        self.finished = asyncio.Event()
        self.ended_as: str | None = None  # the final state, once finished
        self.cleanup_by: float | None = None  # the stop's deadline for the way out (monotonic)
        self._deferred: list[Event | BotFinished] = []  # events that arrived while a step ran
        self._asks: set[asyncio.Task[None]] = set()  # asks whose coroutines run beside the actor

    def stop(self, reason: EndReason = EndReason.STOPPED, detail: str | None = None, *,
             cleanup_by: float | None = None) -> None:
        """End the session at whatever stage it is. ``cleanup_by`` (monotonic) bounds the
        leave and the room delete; a room not deleted by then stays in the ledger."""
        self.mailbox.put_nowait(Stop(reason, detail, cleanup_by))

    async def ask(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` inside the actor and return its result (awaited beside the actor if a
        coroutine). Raises ``SessionGone`` once the session has finished, and whatever
        ``fn`` raises."""
        if self.finished.is_set():
            raise SessionGone(f"session {self.id} has {self.ended_as}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.mailbox.put_nowait(Ask(fn, fut))
        return await fut

    async def _receive(self) -> WorkerEvent | WorkerLost:
        """The next message the session handles itself; asks are answered on the way, and
        a stop ends the actor (raises ``End``)."""
        while True:
            msg = await self.mailbox.get()
            if isinstance(msg, Stop):
                self.cleanup_by = msg.cleanup_by
                raise End(msg.reason, msg.detail)
            if isinstance(msg, Ask):
                self._answer(msg)
                continue
            return msg

    async def _step(self, work: Awaitable[T]) -> T:
        """Run ``work`` while still reading the mailbox: a stop cancels it and ends the
        session (raises ``End``), asks are answered, events wait until the step is done."""
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        getter: asyncio.Task[Message] | None = None
        try:
            while not task.done():
                if getter is None:
                    getter = asyncio.ensure_future(self.mailbox.get())
                either: set[asyncio.Future[Any]] = {task, getter}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    msg, getter = getter.result(), None
                    if isinstance(msg, Stop):
                        self.cleanup_by = msg.cleanup_by
                        raise End(msg.reason, msg.detail)
                    if isinstance(msg, Ask):
                        self._answer(msg)
                    elif isinstance(msg, WorkerEvent):
                        self._deferred.append(msg.event)
                    # WorkerLost: the step sees it too (its request fails or the worker
                    # never becomes ready), and ends with the right reason.
            return task.result()
        finally:
            if getter is not None:
                getter.cancel()  # a cancelled get leaves its item in the queue
            if not task.done():
                task.cancel()
                await asyncio.wait({task})  # cancelled work has unwound before the actor goes on
            elif not task.cancelled():
                task.exception()  # retrieved: an ended step's error is the End above

    def _take_deferred(self) -> list[Event | BotFinished]:
        events, self._deferred = self._deferred, []
        return events

    def _answer(self, ask: Ask) -> None:
        try:
            result = ask.fn()
        except Exception as exc:
            answer_error(ask.future, exc)
            return
        if not asyncio.iscoroutine(result):
            if not ask.future.done():
                ask.future.set_result(result)
            return
        task = asyncio.get_running_loop().create_task(_settle(result, ask.future))
        self._asks.add(task)
        task.add_done_callback(self._asks.discard)

    def _cancel_asks(self) -> None:
        """Asks still being carried out are answered with ``SessionGone`` (the session is
        ending: what they wait on is going away)."""
        for task in list(self._asks):
            task.cancel()

    def _close(self, final: str) -> None:
        """The actor is done: later asks raise ``SessionGone``, and every ask still queued
        is answered with it."""
        self.ended_as = final
        self.finished.set()
        while not self.mailbox.empty():
            msg = self.mailbox.get_nowait()
            if isinstance(msg, Ask):
                answer_error(msg.future, SessionGone(f"session {self.id} has {final}"))


async def _settle(coro: Awaitable[Any], future: asyncio.Future[Any]) -> None:
    """Await an ask's coroutine and hand its outcome to the asker; a cancelled ask (the
    session ended) is answered with ``SessionGone``."""
    try:
        result = await coro
    except asyncio.CancelledError:
        answer_error(future, SessionGone("the session ended before the request was carried out"))
        raise
    except Exception as exc:
        answer_error(future, exc)
    else:
        if not future.done():
            future.set_result(result)
