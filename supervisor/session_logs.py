"""Each session's log: every line its worker and its bot logged, kept with its history.

Lines come from two places: the session's worker (``LogLines``, rendered and scrubbed there;
the router has checked the worker hosts that session) and this supervisor's own lines with
the session bound -- the built-in bots run here, and so does the session's actor. Both are
buffered in memory and written to sessions.db every ``FLUSH_INTERVAL_S`` in one transaction
per session, within ``[logs]``'s caps; followers (``GET /sessions/{id}/logs?follow=1``,
``ctl logs --follow``) get each line as it is written.

What is read is the kept lines in order, after a marker line where lines are missing: the
oldest ones dropped by the per-session cap, the whole log pruned by the total cap, or lines
the worker dropped because this supervisor read too slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import structlog

from protocol.messages import LogLines
from supervisor.config import LogsSection
from supervisor.store import Store

log = structlog.get_logger("supervisor.session_logs")

FLUSH_INTERVAL_S = 0.2
PRUNE_INTERVAL_S = 10.0
MAX_PENDING_LINES = 20_000  # buffered for sessions.db; past that (the disk stalls) lines are counted, not kept
FOLLOWER_BACKLOG = 10_000  # lines a follower has not taken yet; past that it is cut off
MARKER_LOGGER = "callfleet.session_logs"


def marker(session_id: str, event: str, **fields: object) -> str:
    """A line of the session's log that says what is missing from it."""
    return json.dumps({"event": event, "session_id": session_id, "level": "warning", "logger": MARKER_LOGGER,
                       **fields})


def with_session(line: str, session_id: str) -> str:
    """A worker's line logged with no session bound, with the session it belongs to."""
    if line.startswith("{") and len(line) > 2:
        return '{"session_id": ' + json.dumps(session_id) + ", " + line[1:]
    return line


class Follower:
    """One reader of a session's live lines: a bounded backlog and a wake-up."""

    def __init__(self) -> None:
        self.lines: deque[tuple[int, str]] = deque()
        self.cut_off = False  # it fell FOLLOWER_BACKLOG lines behind
        self.ready = asyncio.Event()

    def push(self, seq: int, line: str) -> None:
        if self.cut_off:
            return
        if len(self.lines) >= FOLLOWER_BACKLOG:
            self.cut_off = True
        else:
            self.lines.append((seq, line))
        self.ready.set()

    async def wait(self, timeout_s: float) -> None:
        """Until a line arrives or ``timeout_s`` passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout_s)
        self.ready.clear()


class SessionLogs:
    """The sessions' logs: buffered lines, their writes to the store, and their followers."""

    def __init__(self, store: Store, caps: LogsSection, is_live: Callable[[str], bool]) -> None:
        self.store = store
        self.caps = caps
        self.is_live = is_live  # the supervisor's own lines are kept only for its live sessions
        self._lock = threading.Lock()  # the line tap runs on whatever thread logged
        self._pending: dict[str, list[str]] = {}
        self._pending_count = 0
        self._lost: dict[str, int] = {}  # lines not kept (the buffer was full), by session, for a marker
        self._followers: dict[str, set[Follower]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- lines in ------------------------------------------------------------------------------

    def take(self, session_id: str, line: str) -> None:
        """One of this supervisor's own lines (``callfleet.logs`` line tap). Never logs."""
        if session_id and self.is_live(session_id):
            self._add(session_id, [line])

    def from_worker(self, hosted: str, msg: LogLines) -> None:
        """A worker's batch; ``hosted`` is the session the supervisor gave that worker, which
        the router has checked the batch belongs to. Lines logged with no session bound get
        it; lines the worker dropped get a marker where they were."""
        lines = msg.lines if msg.session_id else [with_session(line, hosted) for line in msg.lines]
        if msg.dropped:
            lines = [marker(hosted, f"{msg.dropped} lines dropped by the worker: the supervisor read too slowly",
                            dropped=msg.dropped), *lines]
        if lines:
            self._add(hosted, lines)

    def _add(self, session_id: str, lines: list[str]) -> None:
        with self._lock:
            if self._pending_count + len(lines) > MAX_PENDING_LINES:
                self._lost[session_id] = self._lost.get(session_id, 0) + len(lines)
                return
            self._pending.setdefault(session_id, []).extend(lines)
            self._pending_count += len(lines)

    # -- writing -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what is buffered to the store and hand it to the followers."""
        with self._lock:
            pending, self._pending, self._pending_count = self._pending, {}, 0
            lost, self._lost = self._lost, {}
        for session_id, count in lost.items():  # said after the lines written before they went
            pending.setdefault(session_id, []).append(
                marker(session_id, f"{count} lines not kept: sessions.db fell behind", dropped=count))
        now = time.time()
        for session_id, lines in pending.items():
            first = self.store.append_logs(session_id, lines, self.caps.max_lines_per_session,
                                           self.caps.max_bytes_per_session, now)
            for follower in self._followers.get(session_id, ()):
                for i, line in enumerate(lines):
                    follower.push(first + i, line)

    def prune(self, live: set[str]) -> list[str]:
        """Keep all logs within ``max_total_bytes`` (never pruning a live session's)."""
        return self.store.prune_logs(self.caps.max_total_bytes, live)

    def start(self, live: Callable[[], set[str]]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(live), name="session-logs")

    async def _run(self, live: Callable[[], set[str]]) -> None:
        last_prune = 0.0
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            try:
                self.flush()
                if time.monotonic() - last_prune > PRUNE_INTERVAL_S:
                    last_prune = time.monotonic()
                    self.prune(live())
            except sqlite3.Error as exc:  # a full or failing disk: those lines are lost, the next go on
                log.error("session logs could not be written", error=str(exc))

    async def stop(self) -> None:
        """Write the last lines (before the store closes)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.flush()
        for followers in self._followers.values():
            for follower in followers:
                follower.ready.set()

    # -- reading -------------------------------------------------------------------------------

    def read(self, session_id: str, *, after: int = -1, tail: int | None = None) -> list[tuple[int, str]]:
        """The session's lines (seq, line) in order, a marker first where the oldest are gone
        (seq -1: it is not a line of the log): everything after ``after``, or the last
        ``tail``."""
        self.flush()
        size = self.store.log_size(session_id)
        lines = self.store.logs(session_id, after=after, tail=tail)
        gone: list[tuple[int, str]] = []
        if size.pruned and after < 0:
            gone = [(-1, marker(session_id, "this session's log was pruned: [logs] max_total_bytes keeps the "
                                            "most recent sessions' logs", pruned=True))]
        elif size.dropped and after < 0 and (tail is None or len(lines) < tail):
            gone = [(-1, marker(session_id, f"{size.dropped} earlier lines dropped: [logs] keeps "
                                            f"{self.caps.max_lines_per_session} lines and "
                                            f"{self.caps.max_bytes_per_session} bytes per session",
                                dropped=size.dropped))]
        return gone + lines

    @contextlib.contextmanager
    def follow(self, session_id: str) -> Iterator[Follower]:
        """A follower of the session's lines written from now on, while the block runs."""
        follower = Follower()
        self._followers.setdefault(session_id, set()).add(follower)
        try:
            yield follower
        finally:
            followers = self._followers.get(session_id)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    del self._followers[session_id]
