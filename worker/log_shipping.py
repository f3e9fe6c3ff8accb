"""The worker's log lines, shipped to the supervisor so each session keeps its own.

Every line the worker logs (its own structlog lines, Pipecat's loguru lines routed into
structlog, the standard library's) reaches ``LogShipper.take`` already rendered as JSON and
scrubbed (``callfleet.logs``), so nothing leaves that stderr would not show. ``take`` only
appends to a bounded buffer -- it runs on whatever thread logged, the audio path's included
-- and a task on the worker's loop, woken by the first line of a batch (an idle worker is
never woken for nothing), ships what ``FLUSH_INTERVAL_S`` gathered as ``LogLines``, one per run of lines of the same session, through the worker's ordered
outbox. The supervisor files a line without a session under the session it gave this
worker, and drops it while it gave none.

When the supervisor reads too slowly (the outbox backs up), lines wait in the buffer; past
``MAX_BUFFERED_LINES`` or ``MAX_BUFFERED_BYTES`` new ones are dropped and counted, and the
count rides with the next batch so the session's log says how many are missing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import msgspec

from protocol.messages import LogLines

FLUSH_INTERVAL_S = 0.15
MAX_BUFFERED_LINES = 5000
MAX_BUFFERED_BYTES = 2 * 1024 * 1024
MAX_BATCH_LINES = 500  # per LogLines: a message stays small beside the call's audio
MAX_QUEUED_MESSAGES = 20  # the outbox's length past which lines wait in the buffer instead


class LogShipper:
    """A bounded buffer of rendered lines and the loop task that ships it."""

    def __init__(self, send: Callable[[msgspec.Struct], None], queued: Callable[[], int]) -> None:
        self._send = send  # puts one message in the worker's ordered outbox
        self._queued = queued  # how many messages the outbox holds now
        self._lock = threading.Lock()
        self._lines: list[tuple[str, str]] = []  # (session_id or "", line), in the order logged
        self._bytes = 0
        self._dropped = 0
        self._wake: Callable[[], None] | None = None  # set while run() waits: the first line wakes it

    def take(self, session_id: str, line: str) -> None:
        """One rendered line (``callfleet.logs`` line tap): buffered, or dropped and counted
        when the buffer is full. Never blocks beyond a short lock, never logs."""
        with self._lock:
            if len(self._lines) >= MAX_BUFFERED_LINES or self._bytes + len(line) > MAX_BUFFERED_BYTES:
                self._dropped += 1
                return
            first = not self._lines
            self._lines.append((session_id, line))
            self._bytes += len(line)
        wake = self._wake
        if first and wake is not None:
            wake()

    def flush(self) -> None:
        """Put everything buffered in the outbox now (before a reply that ends a session,
        so its last lines reach the supervisor while the worker is still its)."""
        with self._lock:
            lines, self._lines, self._bytes = self._lines, [], 0
            dropped, self._dropped = self._dropped, 0
        for batch in batches(lines, dropped):
            self._send(batch)

    async def run(self) -> None:
        """Ship what ``FLUSH_INTERVAL_S`` gathered after the first line of each batch, while
        the outbox keeps up (a backed-up outbox is tried again an interval later)."""
        loop = asyncio.get_running_loop()
        pending = asyncio.Event()
        self._wake = lambda: loop.call_soon_threadsafe(pending.set)  # take() runs on any thread
        if self._lines:
            pending.set()
        try:
            while True:
                await pending.wait()
                await asyncio.sleep(FLUSH_INTERVAL_S)
                pending.clear()  # before the flush: a line after it wakes the next round
                if self._queued() < MAX_QUEUED_MESSAGES:
                    self.flush()
                elif self._lines:
                    pending.set()
        finally:
            self._wake = None


def batches(lines: list[tuple[str, str]], dropped: int) -> list[LogLines]:
    """``LogLines``, one per run of lines of the same session (at most ``MAX_BATCH_LINES``
    each), in order; the first carries ``dropped`` (a batch of its own when none is left)."""
    out: list[LogLines] = []
    for session_id, line in lines:
        last = out[-1] if out else None
        if last is None or last.session_id != session_id or len(last.lines) >= MAX_BATCH_LINES:
            out.append(LogLines(session_id=session_id, lines=[line]))
        else:
            last.lines.append(line)
    if dropped:
        if out:
            out[0].dropped = dropped
        else:
            out.append(LogLines(session_id="", lines=[], dropped=dropped))
    return out
