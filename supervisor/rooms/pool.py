"""Rooms created ahead of demand, with their default tokens (``[daily] room_pool = N``).

Creating a room and two tokens costs three Daily REST calls (~1.5 s per session on
Daily's cloud, reference/daily.md); a session that takes a ready room starts with none.
Only plain sessions use the pool: a request with its own room, SIP settings, room
properties or token properties still creates its room itself.

A pooled room lives ``room_exp_s`` from its creation and its tokens expire with it. A
session takes only a room that outlives the session's own deadline (its ``max_duration``
plus the time to start), so no call is ejected early; when none does, the session makes
its own room. Rooms too close to expiry to serve even the shortest session are deleted.
Every pooled room is in the store's room ledger from before its create call until it is
deleted, so a crash or an unreachable Daily cannot leak one.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from dataclasses import dataclass

import structlog

from callfleet.backoff import Backoff
from supervisor.daily_rest import DailyAPIError, DailyREST, DailyRoomParams, DailyRoomProperties
from supervisor.rooms.ledger import delete_room, delete_rooms
from supervisor.store import Store

log = structlog.get_logger("supervisor.room_pool")

REFILL_BACKOFF = Backoff(base_s=0.5, max_s=30.0)
IDLE_CHECK_S = 60.0  # how often a full pool looks for rooms too old to serve


@dataclass
class ReadyRoom:
    """A pre-created room with its two default tokens."""

    name: str
    url: str
    user_token: str
    bot_token: str
    expires_at: float  # the room's exp, and its tokens' (Unix seconds)


class RoomPool:
    """Rooms made ahead of demand, refilled in the background while the daemon runs."""

    def __init__(self, rest: DailyREST, store: Store, *, size: int, prefix: str, room_exp_s: int,
                 min_life_s: float, bot_name: str = "bot") -> None:
        self.rest = rest
        self.store = store
        self.size = size
        self.prefix = prefix
        self.room_exp_s = room_exp_s
        self.min_life_s = min_life_s  # the shortest session's deadline from now: less is useless
        self.bot_name = bot_name
        self.ready: collections.deque[ReadyRoom] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._deletes: set[asyncio.Task[str | None]] = set()
        self._closing = False
        self.taken = 0
        self.too_short = 0  # takes that found no room living long enough

    def start(self) -> None:
        if self.size > 0:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._fill())

    def take(self, needed_until: float) -> ReadyRoom | None:
        """A ready room that lives until ``needed_until`` (Unix seconds), or None (the
        caller creates one). Rooms too old to serve any session are deleted on the way."""
        self._retire_stale()
        for room in self.ready:
            if room.expires_at >= needed_until:
                self.ready.remove(room)
                self.taken += 1
                self._wake.set()
                return room
        if self.ready:
            self.too_short += 1
        self._wake.set()
        return None

    def _retire_stale(self) -> None:
        usable_after = time.time() + self.min_life_s
        for room in [r for r in self.ready if r.expires_at < usable_after]:
            self.ready.remove(room)
            task = asyncio.get_running_loop().create_task(delete_room(self.rest, self.store, room.name))
            self._deletes.add(task)
            task.add_done_callback(self._deletes.discard)

    def forget_all(self) -> int:
        """The rooms' backend lost them (the embedded sandbox restarted): drop them from the
        pool and the ledger without a delete call. Returns how many were dropped."""
        dropped = len(self.ready)
        for room in self.ready:
            self.store.forget_room(room.name)
        self.ready.clear()
        self._wake.set()
        return dropped

    async def _fill(self) -> None:
        failures = 0
        while not self._closing:
            self._retire_stale()
            while len(self.ready) < self.size and not self._closing:
                try:
                    self.ready.append(await self._create())
                    failures = 0
                except DailyAPIError as exc:
                    delay = REFILL_BACKOFF.delay(failures)
                    failures += 1
                    log.warning("could not pre-create a room", error=str(exc), retry_in_s=round(delay, 2))
                    await asyncio.sleep(delay)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), IDLE_CHECK_S)
            except TimeoutError:
                pass

    async def _create(self) -> ReadyRoom:
        name = f"{self.prefix}pool-{uuid.uuid4()}"
        self.store.remember_room(name)  # before the room exists: a crash cannot leak it
        expires_at = time.time() + self.room_exp_s
        try:
            room = await self.rest.create_room(DailyRoomParams(
                name=name, privacy="private", properties=DailyRoomProperties(exp=expires_at)))
            user_token, bot_token = await asyncio.gather(
                self.rest.get_token(room.url, owner=False, params={"exp": int(expires_at)}),
                self.rest.get_token(room.url, owner=True, params={"exp": int(expires_at), "user_name": self.bot_name}),
            )
        except DailyAPIError:
            await delete_room(self.rest, self.store, name)
            raise
        return ReadyRoom(name, room.url, user_token, bot_token, expires_at)

    async def close(self, deadline: float) -> list[str]:
        """Stop refilling, let a creation under way finish (cancelling it could leave a room
        Daily still makes), then delete every ready room by ``deadline`` (monotonic).
        Returns the rooms left in the ledger for the next start."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), max(0.0, deadline - time.monotonic()))
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        names = [room.name for room in self.ready]
        self.ready.clear()
        if self._deletes:
            await asyncio.wait(set(self._deletes), timeout=max(0.0, deadline - time.monotonic()))
        return await delete_rooms(self.rest, self.store, names, deadline)
