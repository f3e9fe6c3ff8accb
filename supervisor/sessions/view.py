"""A session as the API and ``ctl`` show it, from its record (live or from the store).

Its ``end_detail`` is one scrubbed line whatever the record holds: records written elsewhere
(the start-up reconcile, a survivor marking a lost node's sessions) or by an older version too.
The same line is its ``error`` only when the end is a failure: an ordinary hang-up is not an error.
"""

from __future__ import annotations

from typing import Any

from callfleet import scrub
from supervisor.sessions.resources import empty_resources
from supervisor.sessions.state import EndReason
from supervisor.sessions.turns import empty_turns, empty_usage
from supervisor.store import SessionRecord


def describe_record(r: SessionRecord, participants: list[dict[str, Any]] | None = None,
                    bot_id: str | None = None, node_id: str | None = None, bot_name: str = "bot") -> dict[str, Any]:
    detail = scrub.one_line(r.error)  # the record keeps how the session ended, failure or not
    people = list(participants or [])
    if bot_id:
        people.insert(0, {"id": bot_id, "name": bot_name, "is_bot": True})
    return {
        "session_id": r.id,
        "state": r.state.value,
        "profile": r.profile,
        "kind": r.kind,
        "transport": transport(r),
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
        "end_detail": detail,
        "error": detail if _failed(r.end_reason) else None,
        # in: routed to the bot; out/dropped: the bot's voice as the supervisor sent or
        # dropped it; worker_out/worker_dropped: as the worker played it out or dropped it.
        "frames": {"in": r.frames_in, "out": r.frames_out, "dropped": r.frames_dropped,
                   "worker_out": r.worker_frames_out, "worker_dropped": r.worker_frames_dropped},
        "failovers": r.failovers,
        "failover_gap_ms": r.failover_gap_ms,
        "max_duration_s": r.max_duration_s,
        # What Pipecat measured (voice-to-voice, TTFB per service, usage) and the worker's
        # CPU and memory, kept in the record (supervisor.sessions.turns, .resources).
        "turns": r.extra.get("turns") or empty_turns(),
        "usage": r.extra.get("usage") or empty_usage(),
        "resources": r.extra.get("resources") or empty_resources(),
        "node_id": node_id,  # the supervisor that runs (or ran) it: where a cluster sends its requests
    }


def transport(r: SessionRecord) -> str:
    """How the bot meets its caller: ``daily`` (a room), ``phone`` (a provider's WebSocket) or
    ``webrtc`` (a browser over SmallWebRTC, joined through ``/talk?session=ID``)."""
    if r.extra.get("transport") == "webrtc":
        return "webrtc"
    return "phone" if "phone" in r.extra else "daily"


def _failed(end_reason: str | None) -> bool:
    """Whether the session ended in a failure; a reason this version does not know (a record
    written by another one) counts as one, so that its detail is not hidden."""
    if end_reason is None:
        return False
    try:
        return EndReason(end_reason).failure
    except ValueError:
        return True
