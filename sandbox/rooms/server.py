"""The room server: who is in which room, and what they hear and are told.

One ZeroMQ ROUTER on loopback; each participant is a DEALER (``sandbox.client`` or a
synthetic caller) or a ``Phone`` living inside this process. Joins are validated the way
Daily validates them (room exists and has not expired, token signed, for this room, in its
time window; private rooms need one), and every change is pushed as the event
``daily.EventHandler`` would receive. Audio frames are routed to every participant that set
a renderer for the sender, resampled to the renderer's rate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import zmq

from callfleet.audio import resample, rms
from callfleet.loop_socket import LoopSocket
from sandbox.phones import Phone
from sandbox.recording import Recorder
from sandbox.store import DialinCall, Recording, Room, Store, iso
from sandbox.tokens import TokenError, TokenSigner
from sandbox.wire import HEARTBEAT_TIMEOUT_S, AudioHead, Beat, Ev, Req, Resp, decoder, encoder

log = structlog.get_logger("sandbox.rooms")

SPEAKER_RMS = 500.0  # above this a frame counts as speech for active-speaker detection
SPEAKER_HOLD_S = 0.3
APP_MESSAGE_LIMIT = 4096


class RoomError(Exception):
    """A request the room refuses; the text is what the SDK's completion reports."""


@dataclass
class Participant:
    id: str
    room: str
    peer: bytes | None  # None for a phone
    user_name: str = ""
    user_id: str = ""
    owner: bool = False
    mic_on: bool = True
    joined_at: float = field(default_factory=time.time)
    joined_mono: float = field(default_factory=time.monotonic)
    last_beat: float = field(default_factory=time.monotonic)
    eject_at: float | None = None  # wall-clock time the token says to eject
    renderers: dict[tuple[str, str], int] = field(default_factory=dict)  # (from, source) -> rate
    phone: Phone | None = None
    dial: str | None = None  # "dialin" | "dialout"
    dialin_call: DialinCall | None = None
    frames_sent: int = 0
    frames_received: int = 0

    def view(self, local: bool = False) -> dict[str, Any]:
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


class RoomServer:
    def __init__(
        self,
        store: Store,
        signer: TokenSigner,
        *,
        recordings_dir: Path,
        host: str = "127.0.0.1",
    ) -> None:
        self.store = store
        self.signer = signer
        self.recordings_dir = recordings_dir
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 10000)
        self.sock.setsockopt(zmq.RCVHWM, 10000)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        port = self.sock.bind_to_random_port(f"tcp://{host}")
        self.endpoint = f"tcp://{host}:{port}"
        self.rooms: dict[str, LiveRoom] = {}
        self.by_peer: dict[bytes, Participant] = {}
        self.frames_routed = 0
        self.frames_dropped = 0
        self.bad_frames = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.io: LoopSocket | None = None
        self.on_dialout: Callable[[str, dict[str, Any]], None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.io = LoopSocket(self.sock)
        self.io.on_parts(self._received)
        self._tasks = [asyncio.get_running_loop().create_task(self._sweep())]

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            for p in list(room.participants.values()):
                self._remove(p, notify_self="server shutting down")
        for task in self._tasks:
            task.cancel()
        if self.io is not None:
            self.io.close()
        else:
            self.sock.close(0)
        self.ctx.term()

    # -- sending --------------------------------------------------------------------------

    def _send(self, p: Participant, msg: Any) -> None:
        if p.peer is None:
            return
        self._send_parts([p.peer, encoder.encode(msg)])

    def _send_parts(self, parts: list[Any]) -> bool:
        # A full queue or a peer that vanished drops the message: the sweeper removes dead
        # participants. After close(), sends are refused rather than raised.
        if self.io is None or self.io.closed:
            return False
        return self.io.try_send(parts, copy=False)

    def _event(self, p: Participant, callback: str, *args: Any) -> None:
        self._send(p, Ev(callback, list(args)))

    def _broadcast(self, room: LiveRoom, callback: str, *args: Any, skip: str | None = None) -> None:
        for other in room.participants.values():
            if other.id != skip:
                self._event(other, callback, *args)

    def _counts(self, room: LiveRoom) -> None:
        self._broadcast(room, "on_participant_counts_updated", {"present": len(room.participants), "hidden": 0})

    # -- the receive loop -----------------------------------------------------------------

    def _received(self, parts: list[Any]) -> None:
        """Every message from a participant, synchronously as the socket is drained."""
        if len(parts) < 2:
            self.bad_frames += 1
            return
        peer = parts[0].bytes
        try:
            msg = decoder.decode(parts[1].buffer)
        except Exception:
            self.bad_frames += 1
            return
        if isinstance(msg, AudioHead):
            if len(parts) == 3:
                self._audio_from_peer(peer, msg, parts[2].bytes)
            return
        participant = self.by_peer.get(peer)
        if participant is not None:
            participant.last_beat = time.monotonic()
        if isinstance(msg, Beat):
            if participant is not None:
                self._send(participant, Beat())
            return
        if isinstance(msg, Req):
            try:
                reply = Resp(msg.rid, None, self._request(peer, participant, msg))
            except RoomError as exc:
                reply = Resp(msg.rid, str(exc), None)
            except Exception as exc:  # never let one bad request take the server down
                log.exception("request failed", op=msg.op)
                reply = Resp(msg.rid, f"internal error: {exc}", None)
            self._send_parts([peer, encoder.encode(reply)])

    # -- audio ----------------------------------------------------------------------------

    def _audio_from_peer(self, peer: bytes, head: AudioHead, pcm: bytes) -> None:
        p = self.by_peer.get(peer)
        if p is None:
            return
        p.last_beat = time.monotonic()
        self.route_audio(p, head.source, pcm, head.sample_rate, head.channels, head.seq)

    def route_audio(self, sender: Participant, source: str, pcm: bytes, rate: int, channels: int, seq: int) -> None:
        """Deliver one frame to everyone rendering ``sender``'s ``source``."""
        room = self.rooms.get(sender.room)
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
            if self._send_parts([other.peer, head, out]):
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
        self._broadcast(room, "on_active_speaker_changed", sender.view())

    # -- requests -------------------------------------------------------------------------

    def _request(self, peer: bytes, p: Participant | None, req: Req) -> Any:
        if req.op == "join":
            if p is not None:
                raise RoomError("already joined")
            return self._join(peer, req.args)
        if p is None:
            raise RoomError("not in a call")
        handler = getattr(self, f"_op_{req.op}", None)
        if handler is None:
            raise RoomError(f"unsupported operation {req.op}")
        return handler(p, self.rooms[p.room], req.args)

    def _join(self, peer: bytes, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("room", ""))
        room_rec = self.store.rooms.get(name)
        if room_rec is None:
            raise RoomError("The meeting you're trying to join does not exist.")
        if room_rec.expired():
            raise RoomError("Meeting has ended")
        nbf = room_rec.properties.get("nbf")
        if nbf and time.time() < nbf:
            raise RoomError("Meeting has not started yet")
        token = args.get("token")
        props: dict[str, Any] = {}
        if token:
            try:
                props = self.signer.properties(token)
            except TokenError as exc:
                raise RoomError(str(exc)) from None
            if props.get("room_name") not in (None, name):
                raise RoomError("Meeting token is not valid for this room")
        elif room_rec.privacy == "private":
            raise RoomError("You are not allowed to join this meeting (private room; a meeting token is required)")
        live = self.rooms.setdefault(name, LiveRoom(name))
        limit = room_rec.properties.get("max_participants")
        if limit and len(live.participants) >= limit:
            raise RoomError("Meeting is full")
        pid = str(uuid.uuid4())
        p = Participant(
            id=pid,
            room=name,
            peer=peer,
            user_name=str(args.get("user_name") or props.get("user_name") or ""),
            user_id=str(props.get("user_id") or ""),
            owner=bool(props.get("is_owner", False)),
            mic_on=bool(args.get("mic", True)),
        )
        render_rate = args.get("render_all")
        if render_rate:  # subscribed to everyone from the first frame, as Daily's clients are
            p.renderers[("*", "microphone")] = int(render_rate)
        elapsed = props.get("eject_after_elapsed") or room_rec.properties.get("eject_after_elapsed")
        if elapsed:
            p.eject_at = time.time() + elapsed
        if props.get("eject_at_token_exp") and props.get("exp"):
            p.eject_at = min(p.eject_at or float("inf"), float(props["exp"]))
        self._admit(live, p)
        # Daily also tells a joiner about everyone already there, one participant-joined
        # each, after its join completes (Pipecat listens to a participant from that event).
        present = [o.view() for o in live.participants.values() if o.id != pid]
        if present:
            asyncio.get_running_loop().call_later(0.01, self._announce_present, p, present)
        if p.owner and room_rec.sip_endpoint:
            # Daily tells the owner the SIP endpoint is ready once it is in the room.
            asyncio.get_running_loop().call_later(0.05, self._event, p, "on_dialin_ready", room_rec.sip_endpoint)
        views = {"local": p.view(local=True)}
        views.update({o.id: o.view() for o in live.participants.values() if o.id != pid})
        return {"meetingSession": {"id": live.session_id}, "participants": views}

    def _announce_present(self, p: Participant, present: list[dict[str, Any]]) -> None:
        live = self.rooms.get(p.room)
        if live is None or p.id not in live.participants:
            return  # left already
        for view in present:
            if view["id"] in live.participants:
                self._event(p, "on_participant_joined", view)

    def _admit(self, live: LiveRoom, p: Participant) -> None:
        live.participants[p.id] = p
        if p.peer is not None:
            self.by_peer[p.peer] = p
        live.max_participants = max(live.max_participants, len(live.participants))
        if live.recording is not None:
            live.recording.max_participants = max(live.recording.max_participants, len(live.participants))
        self._broadcast(live, "on_participant_joined", p.view(), skip=p.id)
        self._counts(live)

    def _remove(self, p: Participant, *, notify_self: str | None = None, reason: str = "leftCall") -> None:
        live = self.rooms.get(p.room)
        if live is None or live.participants.pop(p.id, None) is None:
            return
        if p.peer is not None:
            self.by_peer.pop(p.peer, None)
            if notify_self:
                self._event(p, "_left", notify_self)
        if p.phone is not None:
            p.phone.stop()
            stopped = {"sessionId": p.id}
            if p.dial == "dialin" and p.dialin_call is not None:
                stopped.update(callId=p.dialin_call.call_id, callDomain=p.dialin_call.call_domain)
            self._broadcast(live, f"on_{p.dial}_stopped", stopped)
        for other in live.participants.values():
            for key in [k for k in other.renderers if k[0] == p.id]:
                del other.renderers[key]
        if live.active_speaker == p.id:
            live.active_speaker = None
        self._broadcast(live, "on_participant_left", p.view(), reason)
        self._counts(live)
        if not live.participants:
            self._end_recording(live)
            del self.rooms[p.room]

    def eject(self, room_name: str, ids: list[str], reason: str = "ejected") -> list[str]:
        live = self.rooms.get(room_name)
        if live is None:
            return []
        done = []
        for pid in ids:
            p = live.participants.get(pid)
            if p is not None:
                self._remove(p, notify_self=reason)
                done.append(pid)
        return done

    def disconnect(self, room_name: str) -> int:
        """Fault: drop every client connection in a room (``*``: all rooms) without a word.

        The server forgets them at once; each client notices the silence and leaves with
        a connection error, as after a network cut."""
        count = 0
        for live in list(self.rooms.values()):
            if room_name in ("*", live.name):
                for p in [p for p in live.participants.values() if p.peer is not None]:
                    self._remove(p)
                    count += 1
        return count

    def close_room(self, room_name: str, reason: str) -> None:
        live = self.rooms.get(room_name)
        if live is not None:
            self.eject(room_name, list(live.participants), reason)

    # -- operations (one per request op) --------------------------------------------------

    def _op_leave(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        self._remove(p)

    def _op_set_renderer(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        rate = int(args.get("sample_rate", 16000))
        if rate not in (8000, 16000, 24000, 32000, 44100, 48000):
            raise RoomError(f"unsupported sample rate {rate}")
        p.renderers[(str(args["participant_id"]), str(args.get("source", "microphone")))] = rate

    def _op_set_user_name(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        p.user_name = str(args.get("user_name", ""))
        self._broadcast(live, "on_participant_updated", p.view(), skip=p.id)

    def _op_update_mic(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        p.mic_on = bool(args.get("enabled", True))
        self._broadcast(live, "on_participant_updated", p.view(), skip=p.id)

    def _op_app_message(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        self.send_app_message(live, args.get("message"), args.get("recipient"), sender=p.id)

    def send_app_message(self, live: LiveRoom, message: Any, recipient: str | None, *, sender: str) -> None:
        if len(encoder.encode(message)) > APP_MESSAGE_LIMIT:
            raise RoomError(f"app message is larger than {APP_MESSAGE_LIMIT} bytes")
        if recipient in (None, "*"):
            self._broadcast(live, "on_app_message", message, sender, skip=sender)
            return
        target = live.participants.get(recipient)
        if target is None:
            raise RoomError(f"no participant {recipient} in the call")
        self._event(target, "on_app_message", message, sender)

    def _op_eject(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> list[str]:
        if not p.owner:
            raise RoomError("only meeting owners can eject participants")
        return self.eject(live.name, [str(i) for i in args.get("ids", [])])

    def _op_update_remote_participants(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if not p.owner:
            raise RoomError("only meeting owners can update remote participants")
        for pid, update in (args.get("remote_participants") or {}).items():
            target = live.participants.get(pid)
            if target is None:
                raise RoomError(f"no participant {pid} in the call")
            mic = ((update or {}).get("inputsEnabled") or {}).get("microphone")
            if mic is not None:
                target.mic_on = bool(mic)
            self._broadcast(live, "on_participant_updated", target.view())

    def _op_start_recording(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        room_rec = self.store.rooms.get(live.name)
        if room_rec is None or not room_rec.properties.get("enable_recording"):
            raise RoomError("Recording is not enabled for this room")
        if not p.owner:
            raise RoomError("only meeting owners can start a recording")
        if live.recorder is not None and not args.get("force_new"):
            raise RoomError("a recording is already in progress")
        self._end_recording(live)
        rec_id = str(uuid.uuid4())
        live.recorder = Recorder(self.recordings_dir / f"{rec_id}.wav")
        for other in live.participants.values():
            live.recorder.participants.add(other.id)
        stream = str(args.get("stream_id") or rec_id)
        live.recording_stream = stream
        live.recording = Recording(
            id=rec_id,
            room_name=live.name,
            start_ts=time.time(),
            mtg_session_id=live.session_id,
            max_participants=len(live.participants),
            seq=self.store.next_seq(),
        )
        self.store.recordings[rec_id] = live.recording
        status = {"recordingId": rec_id, "streamId": stream, "startedBy": p.id, "type": "cloud"}
        self._broadcast(live, "on_recording_started", status)

    def _op_stop_recording(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if live.recorder is None:
            raise RoomError("no recording in progress")
        self._end_recording(live)

    def _op_update_recording(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if live.recorder is None:
            raise RoomError("no recording in progress")

    def _end_recording(self, live: LiveRoom) -> None:
        if live.recorder is None or live.recording is None:
            return
        recorder, rec, stream = live.recorder, live.recording, live.recording_stream
        live.recorder = live.recording = live.recording_stream = None
        try:
            rec.duration = round(recorder.finish())
            rec.path = recorder.path
            rec.status = "finished"
        except OSError as exc:
            rec.status = "canceled"
            self._broadcast(live, "on_recording_error", stream, f"could not write recording: {exc}")
            return
        self._broadcast(live, "on_recording_stopped", stream)

    def _op_start_transcription(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
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
        self._broadcast(live, "on_transcription_started", status)

    def _op_stop_transcription(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if live.transcription_by is None:
            raise RoomError("transcription is not running")
        live.transcription_by = None
        self._broadcast(live, "on_transcription_stopped", p.id, False)

    def _op_update_transcription(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if live.transcription_by is None:
            raise RoomError("transcription is not running")
        self._broadcast(live, "on_transcription_updated", {"participants": args.get("participants")})

    def _op_say(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        """A synthetic caller declares the text of what it is saying."""
        if live.transcription_by is None:
            return
        final = bool(args.get("is_final", True))
        message = {
            "participantId": p.id,
            "text": str(args.get("text", "")),
            "timestamp": iso(time.time()),
            "is_final": final,
            "rawResponse": {"is_final": final},
        }
        self._broadcast(live, "on_transcription_message", message)

    def _op_start_dialout(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> dict[str, Any]:
        room_rec = self.store.rooms.get(live.name)
        if room_rec is None or not room_rec.properties.get("enable_dialout"):
            raise RoomError("Dial-out is not enabled for this room")
        if not p.owner:
            raise RoomError("only meeting owners can start a dial-out")
        settings = args.get("settings") or {}
        number = settings.get("phoneNumber") or settings.get("sipUri")
        if not number:
            raise RoomError("dial-out settings need a phoneNumber or a sipUri")
        sent: dict[str, Any] = {}

        def connected(phone: Participant) -> None:
            # Daily's order: dialout-connected, the phone joins, then dialout-answered.
            sent.update(sessionId=phone.id, userId=settings.get("userId") or phone.id)
            self._broadcast(live, "on_dialout_connected", dict(sent))

        phone = self.add_phone(live, str(number), dial="dialout", user_name=settings.get("displayName"), before_join=connected)
        asyncio.get_running_loop().call_later(0.1, self._answer_dialout, live.name, phone.id, sent)
        return {"sessionId": phone.id}

    def _answer_dialout(self, room: str, phone_id: str, data: dict[str, Any]) -> None:
        live = self.rooms.get(room)
        if live is not None and phone_id in live.participants:
            self._broadcast(live, "on_dialout_answered", data, skip=phone_id)

    def _op_stop_dialout(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        target = live.participants.get(str(args.get("participant_id")))
        if target is None or target.dial != "dialout":
            raise RoomError("no dial-out session with that participant id")
        self._remove(target)

    def _op_send_dtmf(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        settings = args.get("settings") or {}
        target = live.participants.get(str(settings.get("sessionId") or settings.get("participantId")))
        if target is None or target.phone is None:
            raise RoomError("send_dtmf needs the sessionId of a dial-out or dial-in call")
        tones = str(settings.get("tones", ""))
        if not tones or any(t not in "0123456789*#ABCDabcd" for t in tones):
            raise RoomError("tones must be DTMF digits (0-9, *, #, A-D)")
        target.phone.dtmf_heard += tones
        loop = asyncio.get_running_loop()
        for i, digit in enumerate(tones):
            loop.call_later(0.05 * (i + 1), self.press, live.name, target.id, digit)

    def press(self, room: str, phone_id: str, digit: str) -> None:
        """A phone presses a key: everyone else gets ``dtmf-event``."""
        live = self.rooms.get(room)
        if live is None or phone_id not in live.participants:
            return
        self._broadcast(live, "on_dtmf_event", {"tone": digit, "sessionId": phone_id, "participantId": phone_id}, skip=phone_id)

    def _op_sip_call_transfer(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        self._transfer(p, live, args, "sip_call_transfer")

    def _op_sip_refer(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        self._transfer(p, live, args, "sip_refer")

    def _transfer(self, p: Participant, live: LiveRoom, args: dict[str, Any], what: str) -> None:
        settings = args.get("settings") or {}
        target = live.participants.get(str(settings.get("sessionId")))
        if target is None or target.phone is None:
            raise RoomError(f"{what} needs the sessionId of a phone participant")
        if not (settings.get("toEndPoint") or settings.get("sipUri") or settings.get("to")):
            raise RoomError(f"{what} needs a toEndPoint")
        self._remove(target)  # the call now continues elsewhere

    def _op_live_stream(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        raise RoomError("Live streaming is not enabled for this domain")

    def _op_send_prebuilt_chat_message(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        message = {"event": "chat-msg", "message": args.get("message"), "name": args.get("user_name") or p.user_name, "room": "main-room"}
        self._broadcast(live, "on_app_message", message, p.id, skip=p.id)

    # -- phones ---------------------------------------------------------------------------

    def add_phone(self, live: LiveRoom, number: str, *, dial: str, user_name: str | None = None,
                  tone_hz: float = 440.0, before_join: Callable[[Participant], None] | None = None) -> Participant:
        pid = str(uuid.uuid4())
        participant = Participant(id=pid, room=live.name, peer=None, user_name=user_name or number, user_id=number)
        participant.dial = dial
        participant.renderers[("*", "microphone")] = 16000

        def speak(pcm: bytes, seq: int) -> None:
            self.route_audio(participant, "microphone", pcm, 16000, 1, seq)

        participant.phone = Phone(pid, number, speak=speak, tone_hz=tone_hz)
        if before_join is not None:
            before_join(participant)
        self._admit(live, participant)
        participant.phone.start()
        return participant

    def connect_dialin(self, call: DialinCall, room: Room) -> Participant:
        """``pinlessCallUpdate`` named this call: the phone joins the room."""
        live = self.rooms.setdefault(room.name, LiveRoom(room.name))

        def connected(phone: Participant) -> None:
            # Daily's order: dialin-connected, then the phone's participant-joined.
            phone.dialin_call = call
            call.room_name, call.participant_id = room.name, phone.id
            data = {"sessionId": phone.id, "callId": call.call_id, "callDomain": call.call_domain,
                    "sipFrom": call.from_number, "sipTo": call.to_number}
            self._broadcast(live, "on_dialin_connected", data)

        return self.add_phone(live, call.from_number, dial="dialin", tone_hz=call.tone_hz, before_join=connected)

    def hang_up(self, room: str, participant_id: str) -> bool:
        live = self.rooms.get(room)
        target = live.participants.get(participant_id) if live else None
        if target is None or target.phone is None:
            return False
        self._remove(target)
        return True

    # -- housekeeping ---------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Drop silent participants; eject at token or room expiry."""
        while True:
            await asyncio.sleep(0.25)
            now, mono = time.time(), time.monotonic()
            for live in list(self.rooms.values()):
                room_rec = self.store.rooms.get(live.name)
                if room_rec is not None and room_rec.expired(now) and room_rec.properties.get("eject_at_room_exp"):
                    self.close_room(live.name, "Meeting has ended (room expired)")
                    continue
                for p in list(live.participants.values()):
                    if p.peer is not None and mono - p.last_beat > HEARTBEAT_TIMEOUT_S:
                        log.info("participant timed out", room=live.name, participant=p.id)
                        self._remove(p)
                    elif p.eject_at is not None and now >= p.eject_at:
                        self._remove(p, notify_self="ejected (meeting token time is up)")

    def presence(self, room: str) -> list[dict[str, Any]]:
        live = self.rooms.get(room)
        if live is None:
            return []
        now = time.monotonic()
        return [
            {
                "room": room,
                "id": p.id,
                "userId": p.user_id or None,
                "userName": p.user_name,
                "joinTime": iso(p.joined_at),
                "duration": int(now - p.joined_mono),
            }
            for p in live.participants.values()
        ]

    def inspect(self, room: str) -> list[dict[str, Any]]:
        live = self.rooms.get(room)
        if live is None:
            return []
        return [
            {
                "id": p.id,
                "user_name": p.user_name,
                "owner": p.owner,
                "kind": p.dial or "client",
                "frames_sent": p.frames_sent,
                "frames_received": p.frames_received,
                "renders": sorted(f"{pid}/{source}" for pid, source in p.renderers),
                **(p.phone.inspect() if p.phone else {}),
            }
            for p in live.participants.values()
        ]


# Live-stream operations all answer like a domain without the feature.
for _name in (
    "start_live_stream_with_endpoints",
    "start_live_stream_with_rtmp_urls",
    "update_live_stream",
    "stop_live_stream",
    "add_live_streaming_endpoints",
    "remove_live_streaming_endpoints",
):
    setattr(RoomServer, f"_op_{_name}", RoomServer._op_live_stream)
