"""Node leases, and cleaning up after a node whose lease lapsed.

A node joins with a fresh random token in ``cf:lease:{id}`` (``PX lease_s``) and renews it
every ``lease_s / 3`` with its node hash (advertise URL, free capacity), each by one
script. A renewal finds the lease its own (the token matches), gone unseen (Redis came back
empty: taken again), declared lost (a survivor's ``cf:cleanup:{id}`` or ``cf:lost:{id}``
is there) or taken by another process under the same id; the last two fence the node.
Once ``lease_s`` has passed since the last renewal Redis confirmed (timed from when it was
sent), a survivor may be declaring the node lost: the lease has lapsed and the node takes
no work until the next renewal says whether anyone did; without Redis to ask, it fences
itself (a session must never have two bots in its room). A fenced node ends its sessions and
settles its rooms (``fence.py``) before it joins again.

On the same tick a member looks for other nodes whose lease is gone -- but only once it
has itself been connected to Redis for ``lease_s``, so after an outage every node has
re-published before anyone judges. The one survivor that takes ``cf:cleanup:{id}`` (with
the lease still gone, in one script that also leaves ``cf:lost:{id}``) marks the lost
node's unfinished sessions failed (``node_lost``), deletes its rooms through its own Daily
client (each struck from the node's ledger only once Daily confirms; 404 counts as
deleted) and forgets the node.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
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
    lost_key,
    node_key,
    node_rooms_key,
    node_sessions_key,
    session_key,
)
from supervisor.cluster.link import UNAVAILABLE, Link

if TYPE_CHECKING:
    from supervisor.daily_rest import DailyREST

log = structlog.get_logger("supervisor.cluster")

CLEANUP_LOCK_S = 120.0  # a cleaner that dies mid-way lets another survivor take over after this
LOST_MARK_S = 24 * 3600  # how long cf:lost:{id} tells a node that comes back that it was declared lost

# KEYS: lease, cleanup lock, lost mark, node hash, cf:nodes. ARGV: token, lease ms, advertise
# URL, capacity, node id. 1: renewed; 2: taken again, it was gone with nobody declaring the
# node lost (Redis came back empty); 0: it lapsed and the node was declared lost; -1:
# another token (another process under this node_id) holds it.
RENEW = """
local held = 1
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur ~= ARGV[1] then return -1 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  held = 2
end
redis.call('HSET', KEYS[4], 'advertise_url', ARGV[3], 'capacity', ARGV[4])
redis.call('SADD', KEYS[5], ARGV[5])
return held
"""

# KEYS as RENEW. ARGV: a fresh token, lease ms, advertise URL, capacity, node id. 1: joined
# (the lost mark and our own settling lock cleared); 0: a survivor is cleaning up after us.
JOIN = """
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[5] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[4], 'advertise_url', ARGV[3], 'capacity', ARGV[4])
redis.call('SADD', KEYS[5], ARGV[5])
return 1
"""

# A survivor takes the clean-up of a node. KEYS: lease, cleanup lock, lost mark. ARGV: the
# survivor's id, lock ms, lost mark seconds. 1 when taken (and the node is marked lost).
TAKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3])
return 1
"""


class LeaseState(enum.Enum):
    JOINING = "joining"  # no lease yet: joins when Redis answers and nobody is cleaning up after it
    HELD = "held"
    LAPSED = "lapsed"  # its time ran out unrenewed (a pause, a stall): asking Redis whether it was declared lost
    FENCED = "fenced"  # lost it: ending its sessions and settling its rooms (fence.py)


HOLDING = (LeaseState.HELD, LeaseState.LAPSED)  # a lease to renew, or to be fenced out of


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
        self.state = LeaseState.JOINING
        self.token: str | None = None  # this registration's fencing token: "my lease" is the one holding it
        self.last_token: str | None = None  # the token of the lease this node was fenced out of
        self.valid_until = 0.0  # monotonic: lease_s after the last renewal sent that Redis confirmed
        self.on_fenced: Callable[[str], None] | None = None
        # Told of each session this node marked node_lost for a lost node (its final view): webhooks.
        self.on_session_lost: Callable[[dict[str, Any]], None] | None = None
        self._writing = asyncio.Lock()  # one join or renewal at a time: two would race their tokens
        self._said_waiting = False  # "waiting to join" is logged once per wait
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
                    if self.check() in HOLDING:
                        if await self.renew():
                            # Redis lost our lease without our connection noticing (restarted
                            # between two commands): it lost our sessions and ledger too.
                            await self.directory.republish()
                        if self.state is LeaseState.HELD:
                            await self._judge()
                    elif self.state is LeaseState.JOINING and await self.join():
                        await self.directory.republish()
                else:
                    self.check()
            except UNAVAILABLE as exc:
                self.link.mark_down(exc)
            except Exception:
                log.exception("lease tick failed")
            await asyncio.sleep(interval)

    def check(self) -> LeaseState:
        """The lease's state now. Once ``lease_s`` has passed since the last confirmed
        renewal a survivor may be declaring the node lost: the lease has lapsed (the next
        renewal asks Redis, atomically, whether anyone did), and without Redis to ask the
        node fences itself here."""
        if self.state is LeaseState.HELD and time.monotonic() >= self.valid_until:
            self.state = LeaseState.LAPSED
        if self.state is LeaseState.LAPSED and not self.link.available:
            self.fence(f"no renewal confirmed for {self.lease_s:g} s (lease_s) and Redis unreachable: a survivor "
                       f"may have declared this node lost")
        return self.state

    def fence(self, why: str) -> None:
        """Stop being a member at once: no renewal, no ledger writes, no new work; the
        ``on_fenced`` callback ends the sessions and settles the rooms. Only a member can be
        fenced: a joining node holds no lease and takes no sessions."""
        if self.state not in HOLDING:
            return
        self.state = LeaseState.FENCED
        self.last_token, self.token = self.token, None
        self.directory.member = False
        log.warning("node fenced: ending its sessions node_lost; no new work until it joins again",
                    node_id=self.node_id, reason=why, sessions=self.directory.live_sessions)
        if self.on_fenced is not None:
            self.on_fenced(why)

    def settled(self) -> None:
        """A fenced node's sessions are gone and its rooms settled: it may join again."""
        if self.state is LeaseState.FENCED:
            self.state = LeaseState.JOINING

    async def refresh(self) -> None:
        """On every (re)connection: renew a held lease (which may fence) or join."""
        if self.check() in HOLDING:
            await self.renew()
        elif self.state is LeaseState.JOINING:
            await self.join()

    async def join(self) -> bool:
        """Take a fresh lease unless a survivor is cleaning up after this node; returns
        whether it did. The caller re-publishes the directory then."""
        async with self._writing:
            if self.state is not LeaseState.JOINING:
                return False
            token = secrets.token_hex(16)
            sent = time.monotonic()
            joined = await self.link.run(lambda r: self._script(r, JOIN, token), None)
            if joined != 1:
                if joined == 0 and not self._said_waiting:
                    self._said_waiting = True
                    log.info("waiting to join: a survivor is cleaning up after this node's previous lease",
                             node_id=self.node_id)
                return False
            self._said_waiting = False
            self.token, self.valid_until, self.state = token, sent + self.lease_s, LeaseState.HELD
            self.directory.member = True
            log.info("node joined the cluster", node_id=self.node_id)
            return True

    async def renew(self) -> bool:
        """Renew the lease and node hash now; fences the node when the lease is no longer its.
        Returns whether Redis had lost the lease (and so the node's directory entries)."""
        async with self._writing:
            if self.check() not in HOLDING or self.token is None:
                return False
            token = self.token
            sent = time.monotonic()
            held = await self.link.run(lambda r: self._script(r, RENEW, token), None)
            if held in (1, 2):
                self.valid_until, self.state = sent + self.lease_s, LeaseState.HELD
                if held == 2:
                    log.info("lease taken again: nobody had declared this node lost", node_id=self.node_id)
                return held == 2
            if held is None:
                self.check()  # Redis went away: fenced if the lease has lapsed meanwhile
            elif held == 0:
                self.fence("the lease lapsed and a survivor declared this node lost")
            elif held == -1:
                self.fence("another process holds this node's lease (is node_id shared?)")
            return False

    async def _script(self, r: Redis, script: str, token: str) -> Any:
        n = self.node_id
        return await r.eval(script, 5, lease_key(n), cleanup_key(n), lost_key(n), node_key(n), NODES,  # type: ignore[misc]
                            token, int(self.lease_s * 1000), self._advertise_url(), self.capacity, n)

    async def publish_capacity(self) -> None:
        """Write the free capacity at once (placement reads it), not only on the next renewal."""
        if self.state is not LeaseState.HELD:
            return  # no lease, no placement: the node hash waits for the next join

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
            # One script: the lease still gone, the lock ours, the node marked lost (it fences on return).
            taken = await r.eval(TAKE, 3, lease_key(node), cleanup_key(node), lost_key(node),  # type: ignore[misc]
                                 self.node_id, int(CLEANUP_LOCK_S * 1000), LOST_MARK_S)
            return bool(taken == 1)

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
        lost: list[dict[str, Any]] = []
        async with r.pipeline(transaction=False) as p:
            for sid, raw in zip(sids, raws, strict=True):
                view = decode(raw)
                if view is not None and not is_finished(view):
                    lost.append(fail_node_lost(view, node))
                    p.set(session_key(sid), encode(lost[-1]), ex=FINISHED_TTL_S)
            p.srem(node_sessions_key(node), *sids)
            await p.execute()
        if self.on_session_lost is not None:
            for view in lost:
                self.on_session_lost(view)
        return len(lost)

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
