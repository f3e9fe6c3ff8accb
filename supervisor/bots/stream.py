"""``stream``: hands the session to an external bot engine over a WebSocket.

The engine connects to ``GET /sessions/{id}/stream?token=STREAM_TOKEN``. Wire format
(README, "Stream sessions"):

* server -> engine, text: first ``{"type": "config", ...}`` (session, profile, validated
  services/config/service_options, the runner ``body``, dial-in settings, audio format);
  then ``{"type": "event", "event": NAME, "data": {...}}`` for every call event and
  ``{"type": "reply", "id", "ok", "result" | "error"}`` for each command;
  ``{"type": "error", "error": TEXT}`` for anything it could not understand.
* server -> engine, binary: one participant's audio frame: 1 byte id length N, N bytes of
  participant id (UTF-8), then 16-bit PCM at the session's rate.
* engine -> server, text: ``{"type": "command", "id": N, "command": NAME, "args": {...}}``
  with NAME one of ``COMMANDS`` below (or ``leave``).
* engine -> server, binary: the bot's voice, raw 16-bit PCM at the session's rate,
  ideally 20 ms per message and paced in real time (up to 1 s is buffered).

Events that arrive while no engine is attached are kept (the last 500) and delivered after
the config message; audio is not.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, ClassVar

import msgspec
import structlog
from aiohttp import WSMsgType, web

from protocol import messages as m
from protocol.audio import AudioIn
from supervisor.bots.base import Bot

log = structlog.get_logger("supervisor.bots.stream")

COMMANDS: dict[str, type[m.Command]] = {
    "send_app_message": m.SendAppMessage,
    "send_dtmf": m.SendDtmf,
    "start_dialout": m.StartDialout,
    "stop_dialout": m.StopDialout,
    "sip_call_transfer": m.SipCallTransfer,
    "sip_refer": m.SipRefer,
    "start_recording": m.StartRecording,
    "stop_recording": m.StopRecording,
    "start_transcription": m.StartTranscription,
    "stop_transcription": m.StopTranscription,
    "update_transcription": m.UpdateTranscription,
    "eject_remote_participants": m.EjectRemoteParticipants,
    "update_remote_participants": m.UpdateRemoteParticipants,
    "send_prebuilt_chat_message": m.SendPrebuiltChatMessage,
    "get_participants": m.GetParticipants,
}
KEPT_EVENTS = 500
AUDIO_QUEUE = 50  # frames waiting for a slow engine before the oldest are dropped


class EngineBusy(Exception):
    """An engine is already attached to this session."""


def event_name(event: m.Event) -> str:
    return event.callback.removeprefix("on_")


class StreamBot(Bot):
    kind: ClassVar[str] = "stream"

    def __init__(self, ctx: Any, config: dict[str, Any]) -> None:
        super().__init__(ctx, config)
        self.ws: web.WebSocketResponse | None = None
        self.kept: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT_EVENTS)
        self.audio: collections.deque[bytes] = collections.deque()
        self.audio_ready = asyncio.Event()
        self.frames_to_engine = 0
        self.frames_dropped = 0
        self.frames_from_engine = 0
        self._sender: asyncio.Task[None] | None = None

    # -- the engine's side ---------------------------------------------------------------------

    async def attach(self, ws: web.WebSocketResponse, first: dict[str, Any]) -> None:
        """Adopt an engine's WebSocket: config first, then what it missed."""
        if self.ws is not None and not self.ws.closed:
            raise EngineBusy("an engine is already attached to this session")
        self.ws = ws
        await ws.send_json(first)
        while self.kept:
            await ws.send_json(self.kept.popleft())
        self.audio.clear()
        self._sender = asyncio.get_running_loop().create_task(self._send_audio(ws))

    async def detach(self, ws: web.WebSocketResponse) -> None:
        if self.ws is ws:
            self.ws = None
            if self._sender is not None:
                self._sender.cancel()

    async def serve(self, ws: web.WebSocketResponse) -> None:
        """Read the engine's messages until it goes away."""
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                self._engine_audio(ws, msg.data)
            elif msg.type == WSMsgType.TEXT:
                await self._engine_text(ws, msg.data)
            elif msg.type == WSMsgType.ERROR:
                break

    def _engine_audio(self, ws: web.WebSocketResponse, data: bytes) -> None:
        if len(data) % (2 * self.ctx.channels):
            asyncio.ensure_future(_error(ws, f"audio message of {len(data)} bytes is not whole 16-bit samples"))
            return
        self.frames_from_engine += 1
        self.ctx.send_audio(data, self.ctx.sample_rate, self.ctx.channels)

    async def _engine_text(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            await _error(ws, f"not JSON: {exc}")
            return
        if not isinstance(msg, dict) or msg.get("type") != "command":
            await _error(ws, 'expected {"type": "command", "id": N, "command": NAME, "args": {...}}')
            return
        rid, name, args = msg.get("id"), msg.get("command"), msg.get("args") or {}
        if name == "leave":
            await ws.send_json({"type": "reply", "id": rid, "ok": True, "result": None})
            self.ctx.end("the engine asked to leave")
            return
        cls = COMMANDS.get(name)  # type: ignore[arg-type]
        if cls is None:
            await ws.send_json({"type": "reply", "id": rid, "ok": False,
                                "error": f"unknown command {name!r}; known: leave, {', '.join(COMMANDS)}"})
            return
        if not isinstance(args, dict):
            await ws.send_json({"type": "reply", "id": rid, "ok": False, "error": "args must be an object"})
            return
        try:
            cmd = msgspec.convert({**args, "id": self.ctx.next_id()}, cls)
        except msgspec.ValidationError as exc:
            await ws.send_json({"type": "reply", "id": rid, "ok": False, "error": f"{name}: {exc}"})
            return
        reply = await self.ctx.command(cmd)
        if isinstance(reply, m.Ok):
            await ws.send_json({"type": "reply", "id": rid, "ok": True, "result": reply.result})
        else:
            await ws.send_json({"type": "reply", "id": rid, "ok": False, "error": f"{reply.code}: {reply.message}"})

    async def _send_audio(self, ws: web.WebSocketResponse) -> None:
        while not ws.closed:
            await self.audio_ready.wait()
            self.audio_ready.clear()
            while self.audio:
                await ws.send_bytes(self.audio.popleft())
                self.frames_to_engine += 1

    # -- the call's side ---------------------------------------------------------------------

    def on_audio(self, header: AudioIn, pcm: Any) -> None:
        if self.ws is None:
            return
        pid = header.participant_id.encode()[:255]
        self.audio.append(bytes([len(pid)]) + pid + bytes(getattr(pcm, "buffer", pcm)))
        while len(self.audio) > AUDIO_QUEUE:
            self.audio.popleft()
            self.frames_dropped += 1
        self.audio_ready.set()

    async def on_event(self, event: m.Event) -> None:
        body = {"type": "event", "event": event_name(event), "data": msgspec.to_builtins(event)}
        body["data"].pop("type", None)
        if self.ws is None or self.ws.closed:
            self.kept.append(body)
            return
        try:
            await self.ws.send_json(body)
        except (ConnectionError, RuntimeError):
            self.kept.append(body)

    async def close(self) -> None:
        ws = self.ws
        self.ws = None
        if self._sender is not None:
            self._sender.cancel()
        if ws is not None and not ws.closed:
            await ws.close(code=1000, message=b"session ended")


async def _error(ws: web.WebSocketResponse, text: str) -> None:
    if not ws.closed:
        await ws.send_json({"type": "error", "error": text})
