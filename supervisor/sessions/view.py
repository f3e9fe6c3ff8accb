"""A session as the API and ``ctl`` show it, from its record (live or from the store).

Its ``error`` is one scrubbed line whatever the record holds: records written elsewhere (the
start-up reconcile, a survivor marking a lost node's sessions) or by an older version too.
"""

from __future__ import annotations

from typing import Any

from callfleet import scrub
from supervisor.store import SessionRecord


def describe_record(r: SessionRecord, participants: list[dict[str, Any]] | None = None,
                    bot_id: str | None = None, node_id: str | None = None) -> dict[str, Any]:
    people = list(participants or [])
    if bot_id:
        people.insert(0, {"id": bot_id, "name": "bot", "is_bot": True})
    return {
        "session_id": r.id,
        "state": r.state.value,
        "profile": r.profile,
        "kind": r.kind,
        "room_url": r.room_url,
        "room_created": r.room_created,
        "worker_id": r.worker_id,
        "worker_pid": r.worker_pid,
        "participants": people,
        "requested_at": r.requested_at,
        "assigned_at": r.assigned_at,
        "joined_at": r.joined_at,
        "ended_at": r.ended_at,
        "end_reason": r.end_reason,
        "error": scrub.one_line(r.error),
        # in: routed to the bot; out/dropped: the bot's voice as the supervisor sent or
        # dropped it; worker_out/worker_dropped: as the worker played it out or dropped it.
        "frames": {"in": r.frames_in, "out": r.frames_out, "dropped": r.frames_dropped,
                   "worker_out": r.worker_frames_out, "worker_dropped": r.worker_frames_dropped},
        "failovers": r.failovers,
        "failover_gap_ms": r.failover_gap_ms,
        "max_duration_s": r.max_duration_s,
        "node_id": node_id,  # the supervisor that runs (or ran) it: where a cluster sends its requests
    }
