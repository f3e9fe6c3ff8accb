"""The session registry: creates session actors, routes to them, and answers for
sessions that have finished (from the store). It owns no session state itself.

Also the start-up reconciliation of sessions a crashed daemon left unfinished.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from supervisor.daily_rest import DailyAPIError, DailyREST
from supervisor.sessions import EndReason, Services, Session, SessionState, StartRequest, describe_record
from supervisor.store import Store

log = structlog.get_logger("supervisor.registry")


class Registry:
    """Creates session actors and routes to them; keeps recent history in memory."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.live: dict[str, Session] = {}

    def start(self, request: StartRequest) -> Session:
        """Start a session; raises ``PoolFull`` when no worker can be promised."""
        session = Session(self.s, request)
        session.worker = self.s.pool.acquire(session.id, session)
        self.live[session.id] = session
        session.start()
        assert session.task is not None
        session.task.add_done_callback(lambda _t: self.live.pop(session.id, None))
        return session

    def get(self, session_id: str) -> Session | None:
        return self.live.get(session_id)

    def describe(self, session_id: str) -> dict[str, Any] | None:
        session = self.live.get(session_id)
        if session is not None:
            return session.describe()
        record = self.s.store.get(session_id)
        return describe_record(record) if record else None

    def list(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        live = [s.describe() for s in self.live.values()]
        if state:
            live = [d for d in live if d["state"] == state]
        seen = {d["session_id"] for d in live}
        history = [describe_record(r) for r in self.s.store.recent(limit, state) if r.id not in seen]
        return (live + history)[:limit] if limit else live + history

    async def stop_all(self, reason: EndReason, timeout_s: float) -> None:
        sessions = list(self.live.values())
        for session in sessions:
            session.stop(reason)
        if sessions:
            await asyncio.wait([asyncio.ensure_future(s.finished.wait()) for s in sessions], timeout=timeout_s)
        for session in list(self.live.values()):
            if session.task is not None:
                session.task.cancel()
        if self.live:
            await asyncio.wait([asyncio.ensure_future(s.finished.wait()) for s in list(self.live.values())], timeout=5)


async def reconcile_store(store: Store, rest: DailyREST) -> list[str]:
    """On start-up: sessions left unfinished by a crashed daemon get their rooms deleted and
    are marked failed (``supervisor_lost``). Returns their ids."""
    fixed = []
    for record in store.unfinished():
        if record.room_created and record.room_name:
            try:
                await rest.delete_room_by_name(record.room_name)
            except DailyAPIError as exc:
                record.extra["room_delete_error"] = str(exc)
                log.error("could not delete a crashed session's room", session_id=record.id, error=str(exc))
        record.end_reason = EndReason.SUPERVISOR_LOST.value
        record.error = f"the supervisor stopped while the session was {record.state}"
        record.state = SessionState.FAILED.value
        record.ended_at = time.time()
        store.save(record)
        fixed.append(record.id)
    return fixed
