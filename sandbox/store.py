"""What the sandbox remembers: rooms, recordings, pending dial-in calls (in memory), and the
wall clock their times are judged by."""

from __future__ import annotations

import enum
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

# Room properties the sandbox understands, with their JSON types (Daily rejects others).
ROOM_PROPERTIES: dict[str, tuple[type, ...]] = {
    "exp": (int, float),
    "nbf": (int, float),
    "max_participants": (int,),
    "eject_at_room_exp": (bool,),
    "eject_after_elapsed": (int,),
    "enable_dialout": (bool,),
    "enable_recording": (str,),
    "enable_transcription": (bool, str),
    "enable_chat": (bool,),
    "enable_prejoin_ui": (bool,),
    "enable_emoji_reactions": (bool,),
    "enable_knocking": (bool,),
    "enable_screenshare": (bool,),
    "start_video_off": (bool,),
    "start_audio_off": (bool,),
    "owner_only_broadcast": (bool,),
    "lang": (str,),
    "geo": (str,),
    "sip": (dict,),
    "sip_uri": (dict,),
    "dialout_config": (dict,),
    "permissions": (dict,),
}
SIP_KEYS = {"display_name", "video", "sip_mode", "num_endpoints", "codecs", "provider"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def validate_room_properties(props: Any) -> dict[str, Any]:
    """Raises ValueError(info) for an unknown property or a wrong type."""
    if not isinstance(props, dict):
        raise ValueError("properties must be an object")
    for key, value in props.items():
        types = ROOM_PROPERTIES.get(key)
        if types is None:
            raise ValueError(f"{key} is not a valid room property")
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"{key} must be of type {types[0].__name__}")
    sip = props.get("sip")
    if sip is not None:
        unknown = set(sip) - SIP_KEYS
        if unknown:
            raise ValueError(f"sip.{sorted(unknown)[0]} is not a valid sip property")
        if sip.get("sip_mode", "dial-in") != "dial-in":
            raise ValueError("sip.sip_mode must be 'dial-in'")
    return props


@dataclass
class Room:
    name: str
    created_at: float  # wall-clock, the store's clock
    privacy: str = "public"
    properties: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    seq: int = 0  # creation order, for pagination

    def expired(self, now: float) -> bool:
        """Whether the room's ``exp`` has passed at ``now`` (wall-clock seconds)."""
        exp = self.properties.get("exp")
        return exp is not None and now >= exp

    @property
    def sip_endpoint(self) -> str | None:
        if "sip" not in self.properties:
            return None
        return f"{self.name}.0@sandbox.sip.callfleet.invalid"

    def to_json(self, base_url: str) -> dict[str, Any]:
        config = dict(self.properties)
        if self.sip_endpoint:
            config["sip_uri"] = {"endpoint": self.sip_endpoint}
        return {
            "id": self.id,
            "name": self.name,
            "api_created": True,
            "privacy": self.privacy,
            "url": f"{base_url}/{self.name}",
            "created_at": iso(self.created_at),
            "config": config,
        }


class RecordingStatus(enum.Enum):
    """Where a recording is; the value is Daily's ``status``."""

    IN_PROGRESS = "in-progress"
    FINISHED = "finished"
    CANCELED = "canceled"


@dataclass
class Recording:
    id: str
    room_name: str
    start_ts: float
    mtg_session_id: str
    status: RecordingStatus = RecordingStatus.IN_PROGRESS
    duration: int = 0
    max_participants: int = 0
    path: Path | None = None
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room_name": self.room_name,
            "start_ts": int(self.start_ts),
            "status": self.status.value,
            "max_participants": self.max_participants,
            "duration": self.duration,
            "share_token": None,
            "s3key": f"sandbox/{self.room_name}/{self.id}.wav",
            "mtgSessionId": self.mtg_session_id,
            "tracks": [],
        }


@dataclass
class DialinCall:
    call_id: str
    call_domain: str
    from_number: str
    to_number: str
    webhook_url: str
    say: str | None = None
    tone_hz: float = 440.0
    room_name: str | None = None  # set by pinlessCallUpdate
    participant_id: str | None = None


class Store:
    """The sandbox's memory. ``clock`` gives wall-clock seconds (``time.time`` unless a test
    moves time by hand): rooms' ``exp`` and ``nbf`` are Unix times, judged on it."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.rooms: dict[str, Room] = {}
        self.recordings: dict[str, Recording] = {}
        self.dialins: dict[str, DialinCall] = {}
        self._seq = 0
        self.rooms_created = 0  # every successful POST /rooms, for duplicate checks
        self.call_domain = str(uuid.uuid4())

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add_room(self, name: str | None, privacy: str, properties: dict[str, Any]) -> Room:
        """Raises ValueError(info) for a bad or taken name."""
        if name is None:
            name = secrets.token_urlsafe(15).replace("-", "x").replace("_", "y")[:20]
        if not isinstance(name, str) or not ROOM_NAME.match(name):
            raise ValueError("name must be 1-128 characters of A-Z, a-z, 0-9, '-' and '_'")
        now = self.clock()
        existing = self.rooms.get(name)
        if existing is not None and not existing.expired(now):
            raise ValueError(f"a room named {name} already exists")
        room = Room(name=name, created_at=now, privacy=privacy, properties=properties, seq=self.next_seq())
        self.rooms[name] = room
        self.rooms_created += 1
        return room

    def live_room(self, name: str) -> Room | None:
        """The room ``name``, unless there is none or it has expired."""
        room = self.rooms.get(name)
        return None if room is None or room.expired(self.clock()) else room

    def live_rooms(self) -> list[Room]:
        """Non-expired rooms, newest first."""
        now = self.clock()
        return sorted(
            (r for r in self.rooms.values() if not r.expired(now)), key=lambda r: -r.seq
        )
