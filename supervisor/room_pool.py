"""Rooms created ahead of demand, with their default tokens (``[daily] room_pool = N``).

Creating a room and two tokens costs three Daily REST calls (~1.5 s per session on
Daily's cloud, reference/daily.md); a session that takes a ready room starts with none.
Only plain sessions use the pool: a request with its own room, SIP settings, room
properties or token properties still creates its room itself.

Every pooled room is written to the store before it is used, and deleted from it when a
session takes it or the pool is closed, so rooms pooled by a crashed daemon are deleted
at the next start like any other leftover.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from dataclasses import dataclass

import structlog

from supervisor.daily_rest import DailyAPIError, DailyREST, DailyRoomParams, DailyRoomProperties
from supervisor.store import Store

log = structlog.get_logger("supervisor.room_pool")

REFILL_BACKOFF_MAX_S = 30.0


@dataclass
class ReadyRoom:
    name: str
    url: str
    user_token: str
    bot_token: str
    created_at: float


class RoomPool:
    def __init__(self, rest: DailyREST, store: Store, *, size: int, prefix: str, room_exp_s: int,
                 token_exp_s: int, bot_name: str = "bot") -> None:
        self.rest = rest
        self.store = store
        self.size = size
        self.prefix = prefix
        self.room_exp_s = room_exp_s
        self.token_exp_s = token_exp_s
        self.bot_name = bot_name
        self.ready: collections.deque[ReadyRoom] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.taken = 0

    def start(self) -> None:
        if self.size > 0:
            self._task = asyncio.get_running_loop().create_task(self._fill())

    def take(self) -> ReadyRoom | None:
        """A ready room, or None when the pool is empty (the caller creates one)."""
        fresh_after = time.time() - self.room_exp_s / 2  # half its life left at least
        while self.ready:
            room = self.ready.popleft()
            if room.created_at >= fresh_after:
                self.store.forget_pooled_room(room.name)
                self.taken += 1
                self._wake.set()
                return room
            asyncio.get_running_loop().create_task(self._delete(room.name))
        self._wake.set()
        return None

    async def _fill(self) -> None:
        failures = 0
        while not self._closing:
            while len(self.ready) < self.size and not self._closing:
                try:
                    self.ready.append(await self._create())
                    failures = 0
                except DailyAPIError as exc:
                    failures += 1
                    delay = min(REFILL_BACKOFF_MAX_S, 0.5 * 2**failures)
                    log.warning("could not pre-create a room", error=str(exc), retry_in_s=delay)
                    await asyncio.sleep(delay)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 60)
            except TimeoutError:
                pass

    async def _create(self) -> ReadyRoom:
        name = f"{self.prefix}pool-{uuid.uuid4()}"
        self.store.remember_pooled_room(name)  # before the room exists: a crash cannot leak it
        try:
            room = await self.rest.create_room(DailyRoomParams(
                name=name, privacy="private", properties=DailyRoomProperties(exp=time.time() + self.room_exp_s)))
            user_token, bot_token = await asyncio.gather(
                self.rest.get_token(room.url, self.token_exp_s, owner=False),
                self.rest.get_token(room.url, self.token_exp_s, owner=True, params={"user_name": self.bot_name}),
            )
        except DailyAPIError:
            await self._delete(name)
            raise
        return ReadyRoom(name, room.url, user_token, bot_token, time.time())

    async def _delete(self, name: str) -> None:
        try:
            await self.rest.delete_room_by_name(name)
            self.store.forget_pooled_room(name)
        except DailyAPIError as exc:
            log.error("could not delete a pooled room", room=name, error=str(exc))

    async def close(self, timeout_s: float = 15.0) -> None:
        """Stop refilling, let a creation under way finish (cancelling it could leave a room
        the sandbox or Daily still makes), then delete every room the pool recorded."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        self.ready.clear()
        for name in self.store.pooled_rooms():
            await self._delete(name)


async def delete_leftover_pooled_rooms(rest: DailyREST, store: Store) -> int:
    """On start-up: rooms a crashed daemon had pooled are deleted."""
    names = store.pooled_rooms()
    for name in names:
        try:
            await rest.delete_room_by_name(name)
            store.forget_pooled_room(name)
        except DailyAPIError as exc:
            log.error("could not delete a leftover pooled room", room=name, error=str(exc))
    return len(names)
