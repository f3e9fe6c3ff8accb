"""Who is in a room, as the room server keeps it: participants and the live rooms they are in."""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox.rooms.phone import Phone
from sandbox.rooms.recorder import Recorder
from sandbox.store import DialinCall, Recording, iso


class RoomError(Exception):
    """A request the room refuses; the text is what the SDK's completion reports."""


class Dial(enum.Enum):
    """How a phone participant came in; the value names Daily's events (``dialin-stopped``)."""

    DIALIN = "dialin"
    DIALOUT = "dialout"


@dataclass
class Participant:
    id: str
    room: str
    peer: bytes | None  # None for a phone
    joined_at: float  # wall-clock, the sandbox's clock
    user_name: str = ""
    user_id: str = ""
    owner: bool = False
    mic_on: bool = True
    joined_mono: float = field(default_factory=time.monotonic)
    last_beat: float = field(default_factory=time.monotonic)
    eject_at: float | None = None  # wall-clock time the token says to eject
    renderers: dict[tuple[str, str], int] = field(default_factory=dict)  # (from, source) -> rate
    phone: Phone | None = None
    dial: Dial | None = None
    dialin_call: DialinCall | None = None
    frames_sent: int = 0
    frames_received: int = 0

    def view(self, local: bool = False) -> dict[str, Any]:
        """The participant as Daily describes it in events and ``participants()``."""
        mic = "playable" if self.mic_on else "off"
        off: dict[str, Any] = {"state": "off", "subscribed": "unsubscribed", "offReasons": ["user"]}
        return {
            "id": self.id,
            "info": {
                "isLocal": local,
                "isOwner": self.owner,
                "joinedAt": iso(self.joined_at),
                "userId": self.user_id or self.id,
                "userName": self.user_name,
                "permissions": {
                    "hasPresence": True,
                    "canSend": True,
                    "canAdmin": ["participants", "streaming", "transcription"] if self.owner else [],
                },
            },
            "media": {
                "microphone": {
                    "state": mic,
                    "subscribed": "subscribed",
                    "offReasons": [] if self.mic_on else ["user"],
                },
                "camera": dict(off),
                "screenVideo": dict(off),
                "screenAudio": dict(off),
            },
        }


@dataclass
class LiveRoom:
    """A room with someone in it (it goes when the last participant leaves)."""

    name: str
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    participants: dict[str, Participant] = field(default_factory=dict)
    recorder: Recorder | None = None
    recording: Recording | None = None
    recording_stream: str | None = None
    transcription_by: str | None = None
    active_speaker: str | None = None
    speaker_since: float = 0.0
    max_participants: int = 0
