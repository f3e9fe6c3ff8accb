"""Cluster mode (``[cluster] redis_url``): many supervisors sharing one Redis (or Valkey) and
nothing else but Daily.

``Cluster`` is what the rest of the daemon sees: a session directory every node can read
(``publish_session``, ``owner_of``, ``all_sessions``), placement (``set_capacity``,
``nodes_with_capacity``), the node lease with the clean-up of lost nodes, fencing
(``lease_state``, ``on_fenced``), the room ledger mirror and Daily's shared rate limit.
Redis going away never raises into a caller: writes wait and are re-published when it
returns, and reads answer "unknown" meanwhile -- ``directory_whole`` tells a caller when
an "unknown" is not an answer (the API says 503). The node keeps serving its own sessions for
up to ``lease_s`` without Redis; past that it fences itself (``fence.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import structlog

from supervisor.cluster.directory import NodeInfo
from supervisor.cluster.lease import LeaseState
from supervisor.cluster.link import Link
from supervisor.cluster.ratelimit import SharedBuckets

if TYPE_CHECKING:
    from supervisor.daily_rest import DailyREST

__all__ = ["Cluster", "LeaseState", "NodeInfo"]

log = structlog.get_logger("supervisor.cluster")


class Cluster:
    """This node's membership of the cluster. Construct, ``await start()``, ``await stop()``."""

    def __init__(self, redis_url: str, node_id: str, advertise_url: str, lease_s: float = 10.0, *,
                 rest: DailyREST | None = None, ledger: Callable[[], Iterable[str]] = list) -> None:
        from supervisor.cluster.directory import Directory
        from supervisor.cluster.fence import Fence
        from supervisor.cluster.lease import Lease

        self.node_id = node_id
        self.advertise_url = advertise_url
        self.lease_s = lease_s
        # Reconnect no slower than a third of a lease, so no node misses a whole lease after an outage.
        backoff_max_s = min(2.0, lease_s / 3)
        self.link = Link(redis_url, timeout_s=min(2.0, lease_s / 2), backoff_max_s=backoff_max_s)
        # After a reconnection the directory may lack sessions until every node has re-published
        # (Redis may be back empty): each renews within lease_s / 3 (a renewal that finds its
        # lease gone re-publishes) and reconnects within one back-off cap.
        self._rebuild_s = lease_s / 3 + 2 * backoff_max_s
        self._connections = 0
        self.directory = Directory(self.link, node_id, ledger)
        self.lease = Lease(self.link, self.directory, node_id, lease_s, lambda: self.advertise_url, rest)
        self.fence = Fence(self.link, self.directory, self.lease, node_id, ledger, rest)
        self.lease.on_fenced = self.fence.start
        self.directory.on_declared_lost = lambda: self.lease.fence("a survivor marked this node's sessions node_lost")
        self.rate_limit = SharedBuckets(self.link)
        self._capacity_writes: set[asyncio.Task[None]] = set()
        self.link.on_reconnect(self._republish)

    @property
    def available(self) -> bool:
        """Whether Redis answers now."""
        return self.link.available

    @property
    def directory_whole(self) -> bool:
        """Whether a session missing from the directory is really unknown: Redis answers,
        and it is not just back from an outage with the other nodes still re-publishing.
        Otherwise a miss is a 503 for the API, never a 404."""
        since = self.link.connected_since
        if not self.link.available or since is None:
            return False
        return self._connections <= 1 or time.monotonic() - since >= self._rebuild_s

    def lease_state(self) -> LeaseState:
        """Whether this node holds its lease now; only then does it take work. Reading it
        notices a lease that ran out unrenewed (a paused process sees this first) and, when
        Redis cannot be asked whether the node was declared lost, fences the node."""
        return self.lease.check()

    def on_fenced(self, end_sessions: Callable[[str], Awaitable[None]], forget_room: Callable[[str], None]) -> None:
        """The daemon's side of fencing: ``end_sessions(why)`` ends every local session
        ``node_lost`` without deleting its room and returns once they are gone;
        ``forget_room`` strikes a room from the local ledger."""
        self.fence.end_sessions = end_sessions
        self.fence.forget_room = forget_room

    @property
    def capacity_probe(self) -> Callable[[], int] | None:
        """Read for the free capacity before every lease renewal (the daemon sets the pool's)."""
        return self.lease.capacity_probe

    @capacity_probe.setter
    def capacity_probe(self, probe: Callable[[], int] | None) -> None:
        self.lease.capacity_probe = probe

    async def start(self) -> None:
        """Connect (waiting briefly), hold the lease and start watching the others. Never
        raises: with Redis down the node serves its own sessions and joins when it returns."""
        self.directory.start()
        await self.link.start()
        self.lease.start()
        log.info("cluster node started", node_id=self.node_id, advertise_url=self.advertise_url,
                 redis=self.link.url_for_logs, available=self.available)

    async def stop(self) -> None:
        """Write what is pending, leave the cluster (when no room of ours is left to delete)
        and close the connection. A node without its lease leaves nothing: its rooms stay in
        its ledgers for a survivor or its next start."""
        held = self.lease.state is LeaseState.HELD
        await self.fence.stop()
        await self.lease.stop()
        await self.directory.stop()
        for task in list(self._capacity_writes):
            task.cancel()
        if self.link.available and held:
            await self._leave()
        await self.link.stop()

    async def _leave(self) -> None:
        from supervisor.cluster.directory import NODES, lease_key, node_key, node_rooms_key, node_sessions_key

        async def leave(r: Any) -> None:
            if await r.scard(node_rooms_key(self.node_id)):
                # Rooms not confirmed deleted: let the lease lapse so a survivor deletes them.
                return
            async with r.pipeline(transaction=True) as p:
                p.srem(NODES, self.node_id)
                p.delete(lease_key(self.node_id), node_key(self.node_id), node_sessions_key(self.node_id),
                         node_rooms_key(self.node_id))
                await p.execute()

        await self.link.run(leave, None)

    async def _republish(self) -> None:
        self._connections += 1
        await self.lease.refresh()  # renews (which may fence) or joins
        await self.directory.republish()  # the room ledger too, when a member

    # -- the directory ---------------------------------------------------------------------------

    def publish_session(self, view: dict[str, Any]) -> None:
        """The latest view of a LOCAL session (fire-and-forget; re-published on reconnect)."""
        self.directory.publish_session(view)

    async def owner_of(self, session_id: str) -> NodeInfo | None:
        """The node running the session; None if unknown, finished or Redis is down."""
        return await self.directory.owner_of(session_id)

    async def node(self, node_id: str) -> NodeInfo | None:
        """A member node's address; None once it has left the cluster or while Redis is down."""
        return await self.directory.node(node_id)

    async def view_of(self, session_id: str) -> dict[str, Any] | None:
        """Any node's latest published view of the session (finished ones too)."""
        return await self.directory.view_of(session_id)

    async def all_sessions(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Every node's published views, newest first (empty while Redis is down)."""
        return await self.directory.all_sessions(state, limit)

    # -- placement -------------------------------------------------------------------------------

    def set_capacity(self, n: int) -> None:
        """This node's free capacity: written at once when it changes, and with every renewal."""
        if n == self.lease.capacity:
            return
        self.lease.capacity = n
        if self.link.available:
            task = asyncio.get_running_loop().create_task(self.lease.publish_capacity())
            self._capacity_writes.add(task)
            task.add_done_callback(self._capacity_writes.discard)

    async def nodes_with_capacity(self) -> list[NodeInfo]:
        """Other live nodes (lease held) with free capacity, most free first; [] if Redis is down."""
        from supervisor.cluster.directory import NODES, lease_key, node_key

        async def read(r: Any) -> list[NodeInfo]:
            others = [n.decode() if isinstance(n, bytes) else n for n in await r.smembers(NODES)]
            others = [n for n in others if n != self.node_id]
            if not others:
                return []
            async with r.pipeline(transaction=False) as p:
                for n in others:
                    p.exists(lease_key(n))
                    p.hgetall(node_key(n))
                replies = await p.execute()
            found: list[tuple[int, NodeInfo]] = []
            for i, node in enumerate(others):
                held, info = replies[2 * i], replies[2 * i + 1]
                info = {k.decode(): v.decode() for k, v in info.items()}
                capacity = int(info.get("capacity") or 0)
                if held and capacity > 0 and info.get("advertise_url"):
                    found.append((capacity, NodeInfo(node_id=node, advertise_url=info["advertise_url"])))
            found.sort(key=lambda pair: -pair[0])
            return [node for _, node in found]

        return await self.link.run(read, [])

    async def claim_once(self, key: str, ttl_s: float) -> bool:
        """Whether this node is the first of the cluster to claim ``key`` within ``ttl_s``
        (Redis ``SET NX``); True while Redis is away, when each node decides alone."""

        async def claim(client: Any) -> bool:
            return bool(await client.set(key, self.node_id, nx=True, px=max(1, int(ttl_s * 1000))))

        return await self.link.run(claim, True)

    # -- the room ledger mirror (Store hooks) -----------------------------------------------------

    def room_remembered(self, name: str) -> None:
        self.directory.room_remembered(name)

    def room_forgotten(self, name: str) -> None:
        self.directory.room_forgotten(name)
