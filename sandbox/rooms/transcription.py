"""Transcription in a room: an owner starts and stops it; while it runs, what a synthetic
caller declares it is saying (the ``say`` request) reaches everyone as a transcript."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sandbox.rooms.endpoint import RoomEndpoint
from sandbox.rooms.participants import LiveRoom, Participant, RoomError
from sandbox.store import iso


class Transcription:
    """The transcription operations; ``clock`` (wall-clock) stamps the transcripts."""

    def __init__(self, endpoint: RoomEndpoint, clock: Callable[[], float]) -> None:
        self.endpoint = endpoint
        self.clock = clock

    def op_start_transcription(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if not p.owner:
            raise RoomError("only meeting owners can start transcription")
        if live.transcription_by is not None:
            raise RoomError("transcription is already running")
        live.transcription_by = p.id
        settings = args.get("settings") or {}
        status = {
            "transcriptId": str(uuid.uuid4()),
            "language": settings.get("language", "en"),
            "model": settings.get("model", "nova-2-general"),
            "startedBy": p.id,
        }
        self.endpoint.broadcast(live, "on_transcription_started", status)

    def op_stop_transcription(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if live.transcription_by is None:
            raise RoomError("transcription is not running")
        live.transcription_by = None
        self.endpoint.broadcast(live, "on_transcription_stopped", p.id, False)

    def op_update_transcription(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if live.transcription_by is None:
            raise RoomError("transcription is not running")
        self.endpoint.broadcast(live, "on_transcription_updated", {"participants": args.get("participants")})

    def op_say(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> dict[str, bool]:
        """A synthetic caller declares the text of what it is saying; ``heard``: whether the
        room's transcription was running to take it (else it is gone, as speech is)."""
        if live.transcription_by is None:
            return {"heard": False}
        final = bool(args.get("is_final", True))
        message = {
            "participantId": p.id,
            "text": str(args.get("text", "")),
            "timestamp": iso(self.clock()),
            "is_final": final,
            "rawResponse": {"is_final": final},
        }
        self.endpoint.broadcast(live, "on_transcription_message", message)
        return {"heard": True}
