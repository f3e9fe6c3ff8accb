"""Sessions a crashed daemon left unfinished, settled at the next start: each one's room is
deleted and its record marked failed (``supervisor_lost``)."""

from __future__ import annotations

import time

from supervisor.daily_rest import DailyREST
from supervisor.rooms.ledger import delete_room
from supervisor.sessions.state import EndReason, SessionState
from supervisor.store import Store


async def reconcile_store(store: Store, rest: DailyREST) -> list[str]:
    """On start-up: sessions left unfinished by a crashed daemon get their rooms deleted and
    are marked failed (``supervisor_lost``). Returns their ids."""
    fixed = []
    for record in store.unfinished():
        if record.room_created and record.room_name:
            # Also in the room ledger, unless an older version wrote the record.
            error = await delete_room(rest, store, record.room_name)
            if error is not None:
                record.extra["room_delete_error"] = error
        record.end_reason = EndReason.SUPERVISOR_LOST.value
        record.error = f"the supervisor stopped while the session was {record.state.value}"
        record.state = SessionState.FAILED
        record.ended_at = time.time()
        store.save(record)
        fixed.append(record.id)
    return fixed
