"""Cloud recording of a room: started and stopped by an owner, ended when the room empties;
the file is the mix of everyone's audio (``sandbox.rooms.recorder``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sandbox.rooms.endpoint import RoomEndpoint
from sandbox.rooms.participants import LiveRoom, Participant, RoomError
from sandbox.rooms.recorder import Recorder
from sandbox.store import Recording, RecordingStatus, Store


class Recordings:
    """Records rooms into ``directory`` and keeps each recording in the store."""

    def __init__(self, store: Store, endpoint: RoomEndpoint, directory: Path) -> None:
        self.store = store
        self.endpoint = endpoint
        self.directory = directory

    def op_start_recording(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        room_rec = self.store.rooms.get(live.name)
        if room_rec is None or not room_rec.properties.get("enable_recording"):
            raise RoomError("Recording is not enabled for this room")
        if not p.owner:
            raise RoomError("only meeting owners can start a recording")
        if live.recorder is not None and not args.get("force_new"):
            raise RoomError("a recording is already in progress")
        self.end(live)
        rec_id = str(uuid.uuid4())
        live.recorder = Recorder(self.directory / f"{rec_id}.wav")
        for other in live.participants.values():
            live.recorder.participants.add(other.id)
        stream = str(args.get("stream_id") or rec_id)
        live.recording_stream = stream
        live.recording = Recording(
            id=rec_id,
            room_name=live.name,
            start_ts=self.store.clock(),
            mtg_session_id=live.session_id,
            max_participants=len(live.participants),
            seq=self.store.next_seq(),
        )
        self.store.recordings[rec_id] = live.recording
        status = {"recordingId": rec_id, "streamId": stream, "startedBy": p.id, "type": "cloud"}
        self.endpoint.broadcast(live, "on_recording_started", status)

    def op_stop_recording(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if live.recorder is None:
            raise RoomError("no recording in progress")
        self.end(live)

    def op_update_recording(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if live.recorder is None:
            raise RoomError("no recording in progress")

    def end(self, live: LiveRoom) -> None:
        """Finish ``live``'s recording, if any: write its file and tell the room."""
        if live.recorder is None or live.recording is None:
            return
        recorder, rec, stream = live.recorder, live.recording, live.recording_stream
        live.recorder = live.recording = live.recording_stream = None
        try:
            rec.duration = round(recorder.finish())
            rec.path = recorder.path
            rec.status = RecordingStatus.FINISHED
        except OSError as exc:
            rec.status = RecordingStatus.CANCELED
            self.endpoint.broadcast(live, "on_recording_error", stream, f"could not write recording: {exc}")
            return
        self.endpoint.broadcast(live, "on_recording_stopped", stream)
