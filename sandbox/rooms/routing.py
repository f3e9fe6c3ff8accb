"""Audio in a room: each frame goes to every participant rendering its sender, resampled to
that renderer's rate, into the room's recording, and past the active-speaker detector."""

from __future__ import annotations

import time
from typing import Any

from callfleet.audio import resample, rms
from sandbox.rooms.endpoint import RoomEndpoint
from sandbox.rooms.membership import Membership
from sandbox.rooms.participants import LiveRoom, Participant, RoomError
from sandbox.wire import AudioHead, encoder

SPEAKER_RMS = 500.0  # above this a frame counts as speech for active-speaker detection
SPEAKER_HOLD_S = 0.3
RENDER_RATES = (8000, 16000, 24000, 32000, 44100, 48000)


class AudioRouter:
    """Routes frames and counts them (``frames_routed``, ``frames_dropped``)."""

    def __init__(self, members: Membership, endpoint: RoomEndpoint) -> None:
        self.members = members
        self.endpoint = endpoint
        self.frames_routed = 0
        self.frames_dropped = 0

    def from_peer(self, peer: bytes, head: AudioHead, pcm: bytes) -> None:
        """A frame a client sent; ignored from a peer in no room."""
        p = self.members.by_peer.get(peer)
        if p is None:
            return
        p.last_beat = time.monotonic()
        self.route(p, head.source, pcm, head.sample_rate, head.channels, head.seq)

    def route(self, sender: Participant, source: str, pcm: bytes, rate: int, channels: int, seq: int) -> None:
        """Deliver one frame to everyone rendering ``sender``'s ``source``."""
        room = self.members.rooms.get(sender.room)
        if room is None or not sender.mic_on:
            return
        sender.frames_sent += 1
        if room.recorder is not None:
            room.recorder.add(sender.id, pcm, rate, channels)
        self._track_speaker(room, sender, pcm)
        # Resampled audio and its header depend only on the destination's rate: made once each.
        converted: dict[int, tuple[bytes, bytes]] = {}
        for other in room.participants.values():
            if other is sender:
                continue
            want = other.renderers.get((sender.id, source)) or other.renderers.get(("*", source))
            if want is None:
                continue
            made = converted.get(want)
            if made is None:
                made = converted[want] = (resample(pcm, rate, want, channels),
                                          encoder.encode(AudioHead(sender.id, source, seq, want, channels)))
            out, head = made
            other.frames_received += 1
            if other.phone is not None:
                other.phone.hear(out)
                self.frames_routed += 1
                continue
            assert other.peer is not None
            if self.endpoint.send_parts([other.peer, head, out]):
                self.frames_routed += 1
            else:
                self.frames_dropped += 1

    def _track_speaker(self, room: LiveRoom, sender: Participant, pcm: bytes) -> None:
        if room.active_speaker == sender.id or sender.frames_sent % 5:
            return  # sample every 5th frame: detection, not measurement
        now = time.monotonic()
        if now - room.speaker_since < SPEAKER_HOLD_S or rms(pcm) < SPEAKER_RMS:
            return
        room.active_speaker, room.speaker_since = sender.id, now
        self.endpoint.broadcast(room, "on_active_speaker_changed", sender.view())

    def op_set_renderer(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        rate = int(args.get("sample_rate", 16000))
        if rate not in RENDER_RATES:
            raise RoomError(f"unsupported sample rate {rate}")
        p.renderers[(str(args["participant_id"]), str(args.get("source", "microphone")))] = rate
