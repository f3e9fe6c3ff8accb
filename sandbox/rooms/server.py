"""The room server: who is in which room, and what they hear and are told.

One ZeroMQ ROUTER on loopback (``RoomEndpoint``); each participant is a DEALER
(``sandbox.client`` or a synthetic caller) or a ``Phone`` living inside this process. Joins
are validated the way Daily validates them (``Admission``), and every change is pushed as the
event ``daily.EventHandler`` would receive. Audio frames are routed to every participant that
set a renderer for the sender, resampled to the renderer's rate (``AudioRouter``). Every other
request is one operation, answered by the part whose job it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from sandbox.rooms.admission import Admission
from sandbox.rooms.endpoint import RoomEndpoint
from sandbox.rooms.expiry import sweep_forever
from sandbox.rooms.membership import Membership
from sandbox.rooms.messages import Messages
from sandbox.rooms.participants import LiveRoom, Participant, RoomError
from sandbox.rooms.recordings import Recordings
from sandbox.rooms.routing import AudioRouter
from sandbox.rooms.telephony import Telephony
from sandbox.rooms.transcription import Transcription
from sandbox.store import Store
from sandbox.tokens import TokenSigner
from sandbox.wire import AudioHead, Beat, Req, Resp, decoder, encoder

log = structlog.get_logger("sandbox.rooms")

# A request from a participant in a call: (who, their room, the request's args) -> the answer.
Operation = Callable[[Participant, LiveRoom, dict[str, Any]], Any]

# Live-stream operations all answer like a domain without the feature.
LIVE_STREAM_OPS = (
    "start_live_stream_with_endpoints",
    "start_live_stream_with_rtmp_urls",
    "update_live_stream",
    "stop_live_stream",
    "add_live_streaming_endpoints",
    "remove_live_streaming_endpoints",
)


def refuse_live_stream(p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
    """Raises ``RoomError``: live streaming is not enabled for the sandbox's domain."""
    raise RoomError("Live streaming is not enabled for this domain")


class RoomServer:
    """The parts, put together; ``start()`` on the loop that will run it, ``await close()``."""

    def __init__(self, store: Store, signer: TokenSigner, *, recordings_dir: Path, host: str = "127.0.0.1") -> None:
        self.store = store
        self.endpoint = RoomEndpoint(host)
        self.recordings = Recordings(store, self.endpoint, recordings_dir)
        self.members = Membership(self.endpoint, on_empty=self.recordings.end)
        self.admission = Admission(store, signer, self.members, self.endpoint)
        self.router = AudioRouter(self.members, self.endpoint)
        self.messages = Messages(self.endpoint)
        self.transcription = Transcription(self.endpoint, store.clock)
        self.telephony = Telephony(store, self.members, self.endpoint, self.router)
        self.operations: dict[str, Operation] = {
            "leave": self.members.op_leave,
            "set_user_name": self.members.op_set_user_name,
            "update_mic": self.members.op_update_mic,
            "eject": self.members.op_eject,
            "update_remote_participants": self.members.op_update_remote_participants,
            "set_renderer": self.router.op_set_renderer,
            "app_message": self.messages.op_app_message,
            "send_prebuilt_chat_message": self.messages.op_send_prebuilt_chat_message,
            "start_recording": self.recordings.op_start_recording,
            "stop_recording": self.recordings.op_stop_recording,
            "update_recording": self.recordings.op_update_recording,
            "start_transcription": self.transcription.op_start_transcription,
            "stop_transcription": self.transcription.op_stop_transcription,
            "update_transcription": self.transcription.op_update_transcription,
            "say": self.transcription.op_say,
            "start_dialout": self.telephony.op_start_dialout,
            "stop_dialout": self.telephony.op_stop_dialout,
            "send_dtmf": self.telephony.op_send_dtmf,
            "sip_call_transfer": self.telephony.op_sip_call_transfer,
            "sip_refer": self.telephony.op_sip_refer,
            **{name: refuse_live_stream for name in LIVE_STREAM_OPS},
        }
        self.bad_frames = 0
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start reading the socket and sweeping, on the running loop."""
        self.endpoint.start(self._received)
        self._tasks = [asyncio.get_running_loop().create_task(sweep_forever(self.store, self.members))]

    async def close(self) -> None:
        """Tell everyone the server is going, and stop."""
        for room in list(self.members.rooms.values()):
            for p in list(room.participants.values()):
                self.members.remove(p, notify_self="server shutting down")
        for task in self._tasks:
            task.cancel()
        self.endpoint.close()

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
                self.router.from_peer(peer, msg, parts[2].bytes)
            return
        participant = self.members.by_peer.get(peer)
        if participant is not None:
            participant.last_beat = time.monotonic()
        if isinstance(msg, Beat):
            if participant is not None:
                self.endpoint.send(participant, Beat())
            return
        if isinstance(msg, Req):
            try:
                reply = Resp(msg.rid, None, self._request(peer, participant, msg))
            except RoomError as exc:
                reply = Resp(msg.rid, str(exc), None)
            except Exception as exc:  # never let one bad request take the server down
                log.exception("request failed", op=msg.op)
                reply = Resp(msg.rid, f"internal error: {exc}", None)
            self.endpoint.send_parts([peer, encoder.encode(reply)])

    def _request(self, peer: bytes, p: Participant | None, req: Req) -> Any:
        if req.op == "join":
            if p is not None:
                raise RoomError("already joined")
            return self.admission.join(peer, req.args)
        if p is None:
            raise RoomError("not in a call")
        operation = self.operations.get(req.op)
        if operation is None:
            raise RoomError(f"unsupported operation {req.op}")
        return operation(p, self.members.rooms[p.room], req.args)
