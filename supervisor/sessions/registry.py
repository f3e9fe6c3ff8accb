"""The session registry: creates session actors, routes to them, and answers for
sessions that have finished (from the store). It owns no session state itself."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import structlog

from supervisor.pool.lanes import lane_of
from supervisor.sessions.requests import StartRequest
from supervisor.sessions.services import Services
from supervisor.sessions.session import Session
from supervisor.sessions.state import EndReason, SessionState
from supervisor.sessions.view import describe_record

log = structlog.get_logger("supervisor.registry")

STOP_GRACE_S = 1.0  # past its cleanup deadline, how long an actor gets before it is cancelled


class Registry:
    """Creates session actors and routes to them; keeps recent history in memory."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.live: dict[str, Session] = {}
        self._by_daily_key: dict[str, Session] = {}
        self.empty = asyncio.Event()  # set while no session is live (a drain waits on it)
        self.empty.set()
        # Every view names its node (where a cluster sends the session's requests): [cluster] node_id, or the host's name.
        self.node_id = services.config.cluster.node_id or socket.gethostname()

    def start(self, request: StartRequest) -> Session:
        """Start a session; raises ``PoolFull`` when no worker can be promised."""
        session = Session(self.s, request)
        session.worker = self.s.pool.acquire(session.id, session, lane_of(request.kind))
        self.live[session.id] = session
        self.empty.clear()
        self._by_daily_key[session.daily_key] = session
        session.start()
        assert session.task is not None
        session.task.add_done_callback(lambda _t: self._forget(session))
        return session

    def _forget(self, session: Session) -> None:
        self.live.pop(session.id, None)
        self._by_daily_key.pop(session.daily_key, None)
        if not self.live:
            self.empty.set()

    def by_daily_key(self, key: str) -> Session | None:
        """The live session whose bots hold this Daily proxy key."""
        return self._by_daily_key.get(key) if key else None

    def get(self, session_id: str) -> Session | None:
        return self.live.get(session_id)

    def describe(self, session_id: str) -> dict[str, Any] | None:
        session = self.live.get(session_id)
        if session is not None:
            return self.view(session)
        record = self.s.store.get(session_id)
        return describe_record(record, node_id=self.node_id) if record else None

    def view(self, session: Session) -> dict[str, Any]:
        """A live session as the API shows it, with this node's id."""
        return {**session.describe(), "node_id": self.node_id}

    def list(self, state: SessionState | None = None, limit: int = 100) -> list[dict[str, Any]]:
        live = [self.view(s) for s in self.live.values() if state is None or s.record.state == state]
        seen = {d["session_id"] for d in live}
        history = [describe_record(r, node_id=self.node_id) for r in self.s.store.recent(limit, state) if r.id not in seen]
        return (live + history)[:limit] if limit else live + history

    async def stop_all(self, reason: EndReason, deadline: float, detail: str | None = None) -> None:
        """Stop every session, each cleaning up by ``deadline`` (monotonic): a room it cannot
        delete by then stays in the ledger for the next start. An actor still running a
        little after the deadline is cancelled; it writes its record on the way out."""
        sessions = list(self.live.values())
        for session in sessions:
            session.stop(reason, detail, cleanup_by=deadline)
        await _wait_finished(sessions, deadline + STOP_GRACE_S)
        stuck = list(self.live.values())
        for session in stuck:
            if session.task is not None:
                session.task.cancel()
        await _wait_finished(stuck, time.monotonic() + STOP_GRACE_S)

    async def fence(self, detail: str, deadline: float) -> None:
        """Cluster fencing (this node lost its lease): every session ends ``node_lost`` and its bot leaves,
        but deletes no room: the rooms stay in the ledger for the cluster to settle once,
        since a survivor that declared this node lost may be deleting them now."""
        for session in self.live.values():
            session.room.created = False  # no longer the session's to delete
        await self.stop_all(EndReason.NODE_LOST, deadline, detail)


async def _wait_finished(sessions: list[Session], deadline: float) -> None:
    if sessions:
        waits = [asyncio.ensure_future(s.finished.wait()) for s in sessions]
        await asyncio.wait(waits, timeout=max(0.0, deadline - time.monotonic()))
        for wait in waits:
            wait.cancel()
