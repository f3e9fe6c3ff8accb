"""The two events a session sends, built from its detail as the API shows it.

Body: ``{"type": "session.ended", "id": "evt_…", "created_at": "2026-12-06T22:30:00.123Z",
"data": {…}}``. The id is derived from the session id and the type, so it is the same on
every retry and from whichever node of a cluster sends it.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Any

import msgspec

# uuid5 namespace for event ids: callfleet's own, fixed forever (ids must not change across versions).
_EVENT_IDS = uuid.UUID("6a1f4f0e-5d7b-4b8e-9a53-2f0c3e8d1b77")

# Keys of the session detail copied into both events when present.
_COMMON = ("session_id", "profile", "kind", "room_url", "requested_at")
# Copied into session.ended when the detail has them: how it ended in a line, and Pipecat's
# turn figures and usage.
_WHEN_PRESENT = ("end_detail", "turns", "usage")


class EventType(enum.Enum):
    SESSION_STARTED = "session.started"  # the bot joined its call
    SESSION_ENDED = "session.ended"  # the session ended or failed, whatever the reason


class WebhookEvent(msgspec.Struct, frozen=True):
    """One event as POSTed (its JSON is the body)."""

    type: EventType
    id: str
    created_at: str  # ISO 8601, UTC
    data: dict[str, Any]

    @property
    def session_id(self) -> str:
        return str(self.data["session_id"])


def event_id(session_id: str, kind: EventType) -> str:
    """The event's id: one per (session, type), the same wherever and whenever it is built."""
    return "evt_" + uuid.uuid5(_EVENT_IDS, f"{session_id}/{kind.value}").hex


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(kind: EventType, data: dict[str, Any]) -> WebhookEvent:
    return WebhookEvent(type=kind, id=event_id(str(data["session_id"]), kind), created_at=_now_iso(), data=data)


def started(detail: dict[str, Any]) -> WebhookEvent:
    """``session.started`` from a joined session's detail."""
    data = {key: detail.get(key) for key in _COMMON}
    data["started_at"] = detail.get("joined_at")
    return _event(EventType.SESSION_STARTED, data)


def ended(detail: dict[str, Any]) -> WebhookEvent:
    """``session.ended`` from a finished session's detail: its end reason, when it started
    (null if the bot never joined) and ended, how long the bot was in the call, its frame
    counters, and its turn figures and usage when the detail has them."""
    started_at, ended_at = detail.get("joined_at"), detail.get("ended_at")
    data = {key: detail.get(key) for key in _COMMON}
    data.update(
        state=detail.get("state"),
        end_reason=detail.get("end_reason"),
        error=detail.get("error"),
        started_at=started_at,
        ended_at=ended_at,
        duration_s=None if started_at is None or ended_at is None else round(max(0.0, ended_at - started_at), 3),
        frames=detail.get("frames"),
        failovers=detail.get("failovers", 0),
    )
    data.update({key: detail[key] for key in _WHEN_PRESENT if key in detail})
    return _event(EventType.SESSION_ENDED, data)
