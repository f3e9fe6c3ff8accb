"""Node leases, and cleaning up after a node whose lease lapsed.

Every ``lease_s / 3`` a node renews ``cf:lease:{id}`` (``PX lease_s``) and republishes its
node hash (advertise URL, free capacity). On the same tick it looks for other nodes whose
lease is gone -- but only once it has itself been connected to Redis for ``lease_s``, so
after an outage every node has re-published before anyone judges. The one survivor that
takes ``cf:cleanup:{id}`` (SET NX) marks the lost node's unfinished sessions failed
(``node_lost``), deletes its rooms through its own Daily client (each struck from the
node's ledger only once Daily confirms; 404 counts as deleted) and forgets the node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import Redis

from callfleet.backoff import Backoff, Jitter
from supervisor.cluster.directory import (
    FINISHED_TTL_S,
    NODES,
    Directory,
    cleanup_key,
    decode,
    encode,
    fail_node_lost,
    is_finished,
    lease_key,
    node_key,
    node_rooms_key,
    node_sessions_key,
    session_key,
)
from supervisor.cluster.link import Link

if TYPE_CHECKING:
    from supervisor.daily_rest import DailyREST

log = structlog.get_logger("supervisor.cluster")

CLEANUP_LOCK_S = 120.0  # a cleaner that dies mid-way lets another survivor take over after this


class Lease:
    """Holds this node's lease and cleans up after lost nodes."""

    def __init__(self, link: Link, directory: Directory, node_id: str, lease_s: float,
                 advertise_url: Callable[[], str], rest: DailyREST | None) -> None:
        self.link = link
        self.directory = directory
        self.node_id = node_id
        self.lease_s = lease_s
        self._advertise_url = advertise_url
        self.rest = rest
        self.capacity = 0
        self.capacity_probe: Callable[[], int] | None = None  # read before every renewal
        self._task: asyncio.Task[None] | None = None
        self._cleaning: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, tuple[int, float]] = {}  # node -> (failed tries, monotonic time of the next)
        self._retry = Backoff(1.0, 30.0, jitter=Jitter.EQUAL)
        self.cleaned: list[str] = []  # nodes this one cleaned up after

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cluster-lease")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._cleaning.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _loop(self) -> None:
        interval = self.lease_s / 3
        while True:
            try:
                if self.capacity_probe is not None:
                    self.capacity = self.capacity_probe()
                if self.link.available:
                    await self.link.run(self._renew, None)
                    await self._judge()
            except Exception:
                log.exception("lease tick failed")
            await asyncio.sleep(interval)

    async def renew(self) -> None:
        """Write this node's lease and node hash now (also on every reconnect). Raises what
        Redis raises."""
        await self._renew(self.link.client)

    async def _renew(self, r: Redis) -> None:
        async with r.pipeline(transaction=False) as p:
            p.set(lease_key(self.node_id), self._advertise_url(), px=int(self.lease_s * 1000))
            p.hset(node_key(self.node_id), mapping={"advertise_url": self._advertise_url(),
                                                    "capacity": self.capacity})
            p.sadd(NODES, self.node_id)
            await p.execute()

    async def publish_capacity(self) -> None:
        """Write the free capacity at once (placement reads it), not only on the next renewal."""
        async def write(r: Redis) -> None:
            await r.hset(node_key(self.node_id), "capacity", self.capacity)  # type: ignore[misc]

        await self.link.run(write, None)

    async def _judge(self) -> None:
        since = self.link.connected_since
        if since is None or time.monotonic() - since < self.lease_s:
            return  # just (re)connected: the others may not have re-published yet

        async def lapsed(r: Redis) -> list[str]:
            others = [_text(n) for n in await r.smembers(NODES)]  # type: ignore[misc]
            others = [n for n in others if n != self.node_id]
            if not others:
                return []
            async with r.pipeline(transaction=False) as p:
                for n in others:
                    p.exists(lease_key(n))
                held = await p.execute()
            return [n for n, h in zip(others, held, strict=True) if not h]

        now = time.monotonic()
        none: list[str] = []
        for node in await self.link.run(lapsed, none):
            if node not in self._cleaning and self._retry_at.get(node, (0, 0.0))[1] <= now:
                task = asyncio.get_running_loop().create_task(self._clean(node), name=f"cluster-clean-{node}")
                self._cleaning[node] = task
                task.add_done_callback(self._cleaned)

    def _cleaned(self, task: asyncio.Task[None]) -> None:
        for node, t in list(self._cleaning.items()):
            if t is task:
                del self._cleaning[node]

    async def _clean(self, node: str) -> None:
        started = time.monotonic()

        async def take(r: Redis) -> bool:
            if not await r.set(cleanup_key(node), self.node_id, nx=True, px=int(CLEANUP_LOCK_S * 1000)):
                return False
            if await r.exists(lease_key(node)):  # it came back meanwhile
                await r.delete(cleanup_key(node))
                return False
            return True

        if not await self.link.run(take, False):
            return
        tries = self._retry_at.get(node, (0, 0.0))[0]
        marked = await self.link.run(lambda r: self._mark_sessions(r, node), None)
        if marked is None:
            return  # Redis went away: the lock expires and someone retries
        if tries == 0:
            log.warning("node lost: its sessions marked failed, deleting its rooms", node=node, sessions=marked)
        left = await self._delete_rooms(node)
        if left is None:
            return
        if left:
            # Daily refused: back off, and let whoever judges next (maybe us) try again.
            self._retry_at[node] = (tries + 1, time.monotonic() + self._retry.delay(tries))
            log.warning("rooms of a lost node not deleted yet; retrying later", node=node, rooms=left, tries=tries + 1)
            await self.link.run(lambda r: r.delete(cleanup_key(node)), None)
            return
        self._retry_at.pop(node, None)

        async def forget(r: Redis) -> None:
            async with r.pipeline(transaction=True) as p:
                p.srem(NODES, node)
                p.delete(node_key(node), node_sessions_key(node), node_rooms_key(node), cleanup_key(node))
                await p.execute()

        await self.link.run(forget, None)
        self.cleaned.append(node)
        log.info("lost node cleaned up", node=node, took_s=round(time.monotonic() - started, 3))

    async def _mark_sessions(self, r: Redis, node: str) -> int:
        sids = [_text(s) for s in await r.smembers(node_sessions_key(node))]  # type: ignore[misc]
        if not sids:
            return 0
        raws = await r.mget([session_key(s) for s in sids])
        marked = 0
        async with r.pipeline(transaction=False) as p:
            for sid, raw in zip(sids, raws, strict=True):
                view = decode(raw)
                if view is not None and not is_finished(view):
                    p.set(session_key(sid), encode(fail_node_lost(view, node)), ex=FINISHED_TTL_S)
                    marked += 1
            p.srem(node_sessions_key(node), *sids)
            await p.execute()
        return marked

    async def _delete_rooms(self, node: str) -> int | None:
        """Delete every room in the lost node's ledger; returns how many are left (None:
        Redis went away)."""
        names = await self.link.run(lambda r: r.smembers(node_rooms_key(node)), None)  # type: ignore[arg-type,return-value]
        if names is None:
            return None
        if self.rest is None:
            return len(names)
        rest = self.rest

        async def one(name: str) -> bool:
            from supervisor.daily_rest import DailyAPIError

            try:
                await rest.delete_room_by_name(name)  # 404 is deleted too
            except DailyAPIError as exc:
                log.error("could not delete a lost node's room", node=node, room=name, error=str(exc))
                return False
            # Struck only now that Daily confirmed: no room is deleted twice, none is forgotten.
            await self.link.run(lambda r: r.srem(node_rooms_key(node), name), None)  # type: ignore[arg-type,return-value]
            return True

        done = await asyncio.gather(*(one(_text(n)) for n in names))
        return sum(1 for ok in done if not ok)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
