"""The shared session directory: every node's session views and room ledger in Redis.

Writes never block a session: ``publish_session`` and the ledger hooks only note what
changed and wake one writer task, which sends the latest state of everything noted in
one pipeline (several changes of one session between two flushes cost one write). While
Redis is down the notes wait; on reconnect ``republish`` writes everything this node
holds, since Redis may have come back empty.

Keys: ``cf:session:{sid}`` the JSON view (finished ones expire after
``FINISHED_TTL_S``), ``cf:sessions`` a sorted set of every session id by request time
(newest first for ``GET /sessions``), ``cf:node:{id}:sessions`` the node's unfinished
sessions, ``cf:node:{id}:rooms`` the node's room ledger.

Fencing (never two bots of one session): a view is written by one script that never lets an unfinished view
replace a finished one, nor anything but another ``node_lost`` view replace a
``node_lost`` mark, so a node that comes back from a pause cannot bring its sessions back
to life; when a live session of ours is refused that way, the node has been declared lost
and ``on_declared_lost`` says so. The room ledger is written only while the node is a
member (holds its lease): a fenced node's rooms are settled once, by ``fence.py``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis

from supervisor.cluster.link import Link
from supervisor.sessions.state import EndReason, SessionState

log = structlog.get_logger("supervisor.cluster")

FINISHED_TTL_S = 24 * 3600  # a finished session stays listed this long (SQLite keeps it for good)
RECENT_FINISHED = 200  # finished views a node keeps to re-publish after Redis restarted empty
PAGE = 200  # session ids read per round trip while listing

NODES = "cf:nodes"
SESSIONS = "cf:sessions"
FINISHED_STATES = frozenset(s.value for s in SessionState if s.finished)


def node_key(node_id: str) -> str:
    return f"cf:node:{node_id}"


def lease_key(node_id: str) -> str:
    return f"cf:lease:{node_id}"


def session_key(session_id: str) -> str:
    return f"cf:session:{session_id}"


def node_sessions_key(node_id: str) -> str:
    return f"cf:node:{node_id}:sessions"


def node_rooms_key(node_id: str) -> str:
    return f"cf:node:{node_id}:rooms"


def cleanup_key(node_id: str) -> str:
    return f"cf:cleanup:{node_id}"


def lost_key(node_id: str) -> str:
    """Left by the survivor that declared the node lost (until the node joins again)."""
    return f"cf:lost:{node_id}"


# KEYS: the session's view, the node's set of unfinished sessions. ARGV: the view (JSON),
# "1" when it is finished, its end_reason, the finished TTL, the session id.
# Returns 1 written, 0 refused (a finished view is final), -1 refused an unfinished view
# over a node_lost mark (the node writing it has been declared lost).
PUBLISH_VIEW = """
local old = redis.call('GET', KEYS[1])
if old then
  local ok, prev = pcall(cjson.decode, old)
  if ok and type(prev) == 'table' and (prev.state == 'ended' or prev.state == 'failed') then
    local lost = prev.end_reason == 'node_lost'
    if ARGV[2] ~= '1' or (lost and ARGV[3] ~= 'node_lost') then
      redis.call('SREM', KEYS[2], ARGV[5])
      if lost and ARGV[2] ~= '1' then return -1 end
      return 0
    end
  end
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
  redis.call('SREM', KEYS[2], ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[5])
end
return 1
"""


class NodeInfo(msgspec.Struct, frozen=True):
    """A node as other nodes reach it."""

    node_id: str
    advertise_url: str


def fail_node_lost(view: dict[str, Any], node_id: str) -> dict[str, Any]:
    """``view`` as a session whose node went away: failed, ``node_lost``."""
    lost = f"node {node_id} was lost while the session was {view.get('state')}"
    return {**view, "state": SessionState.FAILED.value, "end_reason": EndReason.NODE_LOST.value,
            "end_detail": lost, "error": lost, "ended_at": time.time()}


def is_finished(view: dict[str, Any]) -> bool:
    return view.get("state") in FINISHED_STATES


def encode(view: dict[str, Any]) -> bytes:
    return msgspec.json.encode(view)


def decode(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        view = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return view if isinstance(view, dict) else None


class Directory:
    """This node's side of the directory, and the reads any node makes of it."""

    def __init__(self, link: Link, node_id: str, ledger: Callable[[], Iterable[str]]) -> None:
        self.link = link
        self.node_id = node_id
        self._ledger = ledger  # the Store's room ledger: the truth to re-publish from
        self._live: dict[str, dict[str, Any]] = {}  # this node's unfinished sessions, latest view
        self._recent: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()  # finished here
        self._dirty: dict[str, dict[str, Any]] = {}  # views not yet written
        self._indexed: set[str] = set()  # ids already in cf:sessions and the node's set: one write each
        self._rooms: dict[str, bool] = {}  # ledger changes not yet written: name -> present
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one pipeline at a time: a newer view never lands before an older one
        self._task: asyncio.Task[None] | None = None
        # Whether this node holds its lease: only a member writes its room ledger (fence.py).
        self.member = False
        self.published_rooms: set[str] = set()  # ledger entries Redis has from us: what a survivor could delete
        self.on_declared_lost: Callable[[], None] | None = None
        self.writes = 0  # pipelines sent, for tests and metrics

    # -- this node's writes (never block, never raise) ------------------------------------------

    def publish_session(self, view: dict[str, Any]) -> None:
        view = dict(view)
        view["node_id"] = self.node_id
        sid = str(view["session_id"])
        if is_finished(view):
            self._live.pop(sid, None)
            self._recent[sid] = view
            while len(self._recent) > RECENT_FINISHED:
                self._recent.popitem(last=False)
        else:
            self._live[sid] = view
        self._dirty[sid] = view
        self._wake.set()

    def room_remembered(self, name: str) -> None:
        self._rooms[name] = True
        self._wake.set()

    def room_forgotten(self, name: str) -> None:
        self._rooms[name] = False
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._writer(), name="cluster-directory")

    async def stop(self, flush_s: float = 1.0) -> None:
        """Write what is still noted (for up to ``flush_s``), then stop the writer."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.link.available and (self._dirty or self._rooms):
            try:
                await asyncio.wait_for(self.flush(), flush_s)
            except TimeoutError:
                log.warning("directory writes cut off at shutdown", sessions=len(self._dirty), rooms=len(self._rooms))

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.link.available:
                await self.flush()

    async def flush(self) -> bool:
        """Write everything noted in one pipeline; on failure keep it noted (re-published on
        reconnect). Returns whether it was written."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        member = self.member
        if not (self._dirty or (member and self._rooms)):
            return True
        views, self._dirty = self._dirty, {}
        # A fenced node's ledger changes wait: its rooms are settled once, when it joins again.
        rooms, self._rooms = (self._rooms, {}) if member else ({}, self._rooms)
        indexed: list[str] = []

        async def write(r: Redis) -> list[Any]:
            mine = node_sessions_key(self.node_id)
            async with r.pipeline(transaction=False) as p:
                for sid, view in views.items():
                    finished = is_finished(view)
                    # EVAL, not EVALSHA: nothing to reload when Redis comes back empty (the body is small).
                    p.eval(PUBLISH_VIEW, 2, session_key(sid), mine, encode(view), "1" if finished else "0",
                           view.get("end_reason") or "", FINISHED_TTL_S, sid)
                    if sid not in self._indexed:
                        p.zadd(SESSIONS, {sid: float(view.get("requested_at") or time.time())})
                        indexed.append(sid)
                added = [n for n, present in rooms.items() if present]
                gone = [n for n, present in rooms.items() if not present]
                if added:
                    p.sadd(node_rooms_key(self.node_id), *added)
                if gone:
                    p.srem(node_rooms_key(self.node_id), *gone)
                replies: list[Any] = await p.execute()
            return replies

        replies = await self.link.run(write, None)
        if replies is not None:
            self.writes += 1
            self._indexed.update(indexed)
            for name, present in rooms.items():
                (self.published_rooms.add if present else self.published_rooms.discard)(name)
            for sid in views:
                if sid not in self._live:
                    self._indexed.discard(sid)  # finished: no further writes expected
            if any(reply == -1 for reply in replies) and self.on_declared_lost is not None:
                self.on_declared_lost()
            return True
        # Not written: note it again unless something newer was noted meanwhile.
        self._dirty = {**views, **self._dirty}
        self._rooms = {**rooms, **self._rooms}
        return False

    async def republish(self) -> None:
        """After a (re)connection: write every session this node holds and, while it is a
        member, its whole room ledger again, since Redis may have restarted empty. Raises
        what Redis raises (the link's reconnect loop handles it)."""
        self._indexed.clear()
        if self.member:
            await self._fail_strays()
        for sid, view in [*self._recent.items(), *self._live.items()]:
            self._dirty.setdefault(sid, view)
        if self.member:
            names = list(self._ledger())
            self._rooms.clear()
            mine = node_rooms_key(self.node_id)
            async with self.link.client.pipeline(transaction=True) as p:
                p.delete(mine)
                if names:
                    p.sadd(mine, *names)
                await p.execute()
            self.published_rooms = set(names)
        await self.flush()

    @property
    def live_sessions(self) -> int:
        """This node's sessions whose last view is unfinished."""
        return len(self._live)

    def fail_live(self) -> int:
        """A fenced node's sessions still unfinished once it has ended what it could: they
        are lost to the cluster, so they are published ``node_lost`` (never live again).
        Returns how many."""
        left = list(self._live.values())
        for view in left:
            self.publish_session(fail_node_lost(view, self.node_id))
        return len(left)

    async def _fail_strays(self) -> None:
        """Sessions listed as this node's that it does not hold: left by its previous life
        (restarted under the same node_id before anyone judged it lost). They are failed
        like a lost node's, so the directory never shows a dead session as running."""
        mine = node_sessions_key(self.node_id)
        r = self.link.client
        strays = [s for s in (_text(m) for m in await r.smembers(mine))  # type: ignore[misc]
                  if s not in self._live and s not in self._recent]
        if not strays:
            return
        raws = await r.mget([session_key(s) for s in strays])
        async with r.pipeline(transaction=False) as p:
            for sid, raw in zip(strays, raws, strict=True):
                view = decode(raw)
                if view is not None and not is_finished(view):
                    p.set(session_key(sid), encode(fail_node_lost(view, self.node_id)), ex=FINISHED_TTL_S)
            p.srem(mine, *strays)
            await p.execute()
        log.warning("sessions a previous run of this node left in the directory marked failed", sessions=len(strays))

    # -- reads any node makes --------------------------------------------------------------------

    async def view_of(self, session_id: str) -> dict[str, Any] | None:
        """The latest published view of any node's session; None if unknown or Redis is down."""
        async def get(r: Redis) -> dict[str, Any] | None:
            return decode(await r.get(session_key(session_id)))

        return await self.link.run(get, None)

    async def node(self, node_id: str) -> NodeInfo | None:
        """A member node's address; None once it has left the cluster, or while Redis is down."""
        async def url(r: Redis) -> Any:
            return await r.hget(node_key(node_id), "advertise_url")  # type: ignore[misc]

        advertise = await self.link.run(url, None)
        return None if advertise is None else NodeInfo(node_id=node_id, advertise_url=_text(advertise))

    async def owner_of(self, session_id: str) -> NodeInfo | None:
        """The node running an unfinished session; None if unknown, finished or Redis is down."""
        view = await self.view_of(session_id)
        if view is None or is_finished(view) or not view.get("node_id"):
            return None
        node_id = str(view["node_id"])

        async def url(r: Redis) -> Any:
            return await r.hget(node_key(node_id), "advertise_url")  # type: ignore[misc]

        advertise = await self.link.run(url, None)
        if advertise is None:
            return None
        return NodeInfo(node_id=node_id, advertise_url=_text(advertise))

    async def all_sessions(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Every node's published views, newest request first; ``limit`` <= 0 is no limit.
        Empty while Redis is down."""
        want = limit if limit > 0 else None

        async def read(r: Redis) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            start = 0
            while want is None or len(found) < want:
                ids = [_text(i) for i in await r.zrevrange(SESSIONS, start, start + PAGE - 1)]
                if not ids:
                    break
                raws = await r.mget([session_key(i) for i in ids])
                expired = []
                for sid, raw in zip(ids, raws, strict=True):
                    view = decode(raw)
                    if view is None:
                        expired.append(sid)
                    elif state is None or view.get("state") == state:
                        found.append(view)
                if expired:
                    await r.zrem(SESSIONS, *expired)  # their views expired: drop them from the index
                start += PAGE - len(expired)
            return found if want is None else found[:want]

        return await self.link.run(read, [])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
