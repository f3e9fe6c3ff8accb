"""What a node does once it has lost its lease, so that a room never holds two bots of one
session (the lost node's, still in the call, and one started again once it was declared lost).

A survivor that finds the lease gone declares the node lost: it marks the node's
sessions ``node_lost``, deletes the rooms in its ledger and a client may start the session
again. So a fenced node (``Lease.fence``) first ends every session of its own, ``node_lost``
(the bots leave; the daemon's ``end_sessions``), deleting no room, since a survivor may be
deleting the same rooms this moment. Then, once Redis answers, it settles its rooms under
its own ``cf:cleanup:{id}`` lock, so nobody else is cleaning up after it meanwhile: the
rooms a survivor already deleted (published to the ledger, struck from it since) are
forgotten without a second DELETE, the others it deletes itself. Only then does it join
again with a fresh lease token and take work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import Redis

from callfleet.backoff import Backoff, Jitter
from supervisor.cluster.directory import Directory, cleanup_key, lease_key, lost_key, node_rooms_key
from supervisor.cluster.lease import CLEANUP_LOCK_S, Lease
from supervisor.cluster.link import Link

if TYPE_CHECKING:
    from supervisor.daily_rest import DailyREST

log = structlog.get_logger("supervisor.cluster")

# Our own clean-up lock, taken to settle. KEYS: lease, cleanup lock, lost mark. ARGV: this
# node's id, lock ms, the token this node was fenced out of. 1: taken; 2: taken, and a
# survivor declared this node lost; 0: a survivor is cleaning up after it (wait); -1:
# another process holds this node's lease. Our own lapsing lease is given up here.
SETTLE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur ~= ARGV[3] then return -1 end
  redis.call('DEL', KEYS[1])
end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then return 2 end
return 1
"""

RETRY = Backoff(0.2, 2.0, jitter=Jitter.EQUAL)


class Fence:
    """Ends a fenced node's sessions, settles its rooms, then lets it join again."""

    def __init__(self, link: Link, directory: Directory, lease: Lease, node_id: str,
                 ledger: Callable[[], Iterable[str]], rest: DailyREST | None) -> None:
        self.link = link
        self.directory = directory
        self.lease = lease
        self.node_id = node_id
        self._ledger = ledger
        self.rest = rest
        # Set by the daemon: end every local session node_lost, returning once they are gone.
        self.end_sessions: Callable[[str], Awaitable[None]] | None = None
        self.forget_room: Callable[[str], None] = lambda _name: None  # strike from the local ledger
        self._task: asyncio.Task[None] | None = None
        self._said_taken = False

    def start(self, why: str) -> None:
        """Called once per fencing (``Lease.on_fenced``)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(why), name="cluster-fence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, why: str) -> None:
        rooms = set(self._ledger())  # before the sessions and the room pool let go of theirs
        if self.end_sessions is not None:
            try:
                await self.end_sessions(why)
            except Exception:
                log.exception("ending a fenced node's sessions failed")
        stuck = self.directory.fail_live()
        if stuck:
            log.error("sessions of a fenced node did not end; published node_lost", node_id=self.node_id,
                      sessions=stuck)
        attempt = 0
        while not await self._settle(rooms):
            await asyncio.sleep(RETRY.delay(min(attempt, 20)))
            attempt += 1
        self.lease.settled()
        if await self.lease.join():
            await self.directory.republish()

    async def _settle(self, rooms: set[str]) -> bool:
        """Take our own clean-up lock and settle ``rooms``; False to try again later."""
        if not self.link.available:
            return False
        old = self.lease.last_token or ""

        async def take(r: Redis) -> Any:
            return await r.eval(SETTLE, 3, lease_key(self.node_id), cleanup_key(self.node_id),  # type: ignore[misc]
                                lost_key(self.node_id), self.node_id, int(CLEANUP_LOCK_S * 1000), old)

        taken = await self.link.run(take, None)
        if taken == -1:
            if not self._said_taken:
                self._said_taken = True
                log.error("another process holds this node's lease: two supervisors share a node_id? staying fenced",
                          node_id=self.node_id)
            return False
        if taken not in (1, 2):
            return False  # Redis went away, or a survivor is still cleaning up after us
        left = await self.link.run(lambda r: r.smembers(node_rooms_key(self.node_id)), None)  # type: ignore[arg-type,return-value]
        if left is None:
            return False
        in_redis = {_text(n) for n in left}
        # Declared lost: what Redis had of our ledger and no longer has, the survivor deleted.
        deleted: set[str] = set()
        if taken == 2:
            deleted = {n for n in rooms if n in self.directory.published_rooms and n not in in_redis}
        for name in deleted:
            self.forget_room(name)
        ours = sorted(rooms - deleted)
        kept = await self._delete(ours)
        log.info("fenced node settled", node_id=self.node_id, declared_lost=taken == 2,
                 rooms_deleted_by_survivor=len(deleted), rooms_deleted=len(ours) - len(kept), rooms_kept=len(kept))
        return True

    async def _delete(self, names: list[str]) -> list[str]:
        """Delete rooms nobody else will; returns those that stay in the ledger (for the
        next start, or a survivor if this node dies)."""
        if not names:
            return []
        if self.rest is None:
            return names
        rest = self.rest

        async def one(name: str) -> bool:
            from supervisor.daily_rest import DailyAPIError

            try:
                await rest.delete_room_by_name(name)  # 404 is deleted too
            except DailyAPIError as exc:
                log.error("could not delete a fenced node's room; it stays in the ledger", room=name, error=str(exc))
                return False
            self.forget_room(name)
            return True

        done = await asyncio.gather(*(one(n) for n in names))
        return [n for n, ok in zip(names, done, strict=True) if not ok]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
