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
  with NAME one of ``COMMANDS`` below (or ``leave``). Commands run concurrently: replies
  come in the order commands complete, each with its command's ``id``.
* engine -> server, binary: the bot's voice, raw 16-bit PCM at the session's rate,
  ideally 20 ms per message and paced in real time (up to 1 s is buffered).

Events that arrive while no engine is attached are kept (the last 500) and delivered after
the config message, before any live event; audio is not kept.

An engine that reads slowly never holds up the call. Audio waiting for it is capped at
``AUDIO_QUEUE`` frames, the oldest dropped (counted in ``frames_dropped``). Text waiting for
it (events, replies, errors) is capped at ``CONTROL_QUEUE`` messages: past that the engine
is disconnected with close code 1008 and the reason "engine not reading: N control messages
backlogged", the events it had not been sent are kept again, and the next engine that
connects gets them.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Protocol

import msgspec
import structlog
from aiohttp import WSCloseCode, WSMessage, WSMsgType

from protocol import messages as m
from protocol.audio import AudioIn
from supervisor.bots.base import Bot, BotContext

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
# Text waiting for the engine: far above the bursts a live engine falls behind by (a call
# emits tens of events a second), small enough that a stuck engine costs a few MB at most.
CONTROL_QUEUE = 1000
COMMANDS_IN_FLIGHT = 100  # an engine that floods commands gets errors, not unbounded tasks
CLOSE_TIMEOUT_S = 2.0  # an engine that does not read holds a close no longer than this
NOT_READING = WSCloseCode.POLICY_VIOLATION  # 1008: the engine broke the protocol by not reading


class EngineBusy(Exception):
    """An engine is already attached to this session."""


class EngineSocket(Protocol):
    """What the bridge needs of the engine's WebSocket (``web.WebSocketResponse`` has it)."""

    @property
    def closed(self) -> bool: ...

    async def send_str(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...

    def __aiter__(self) -> AsyncIterator[WSMessage]: ...


class Outgoing(msgspec.Struct):
    """One text message queued for the engine; an event is kept again if the engine goes."""

    text: str
    is_event: bool = False


def event_name(event: m.Event) -> str:
    return event.callback.removeprefix("on_")


def _text(body: dict[str, Any]) -> str:
    return msgspec.json.encode(body).decode()


class _Engine:
    """One attached engine: its socket, what waits to be sent to it, and the tasks that
    read it, write to it and run its commands."""

    def __init__(self, ws: EngineSocket) -> None:
        self.ws = ws
        self.control: collections.deque[Outgoing] = collections.deque()
        self.audio: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.writer: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.commands: set[asyncio.Task[None]] = set()
        self.dropped = False  # the bot let go of it: nothing more is read or sent
        self.closing = False  # the session is ending: send the text that waits, then stop

    def cancel_tasks(self) -> None:
        current = asyncio.current_task()
        for task in (self.writer, self.reader, *self.commands):
            if task is not None and task is not current:
                task.cancel()


class StreamBot(Bot):
    kind: ClassVar[str] = "stream"

    def __init__(self, ctx: BotContext, config: dict[str, Any]) -> None:
        super().__init__(ctx, config)
        self.engine: _Engine | None = None
        self.kept: collections.deque[str] = collections.deque(maxlen=KEPT_EVENTS)
        self.frames_to_engine = 0
        self.frames_dropped = 0
        self.frames_from_engine = 0
        self._closers: dict[int, asyncio.Task[None]] = {}  # id(ws) -> its close, for detach to wait on

    @property
    def ws(self) -> EngineSocket | None:
        """The attached engine's socket, or None while events are being kept."""
        return self.engine.ws if self.engine is not None else None

    # -- the engine's side ---------------------------------------------------------------------

    async def attach(self, ws: EngineSocket, first: dict[str, Any]) -> None:
        """Adopt an engine's WebSocket: config first, then the kept events, then live ones.

        Raises EngineBusy if another engine is attached.
        """
        if self._live_engine() is not None:
            raise EngineBusy("an engine is already attached to this session")
        engine = _Engine(ws)
        # All queued before anything can run, so no live event can overtake these.
        engine.control.append(Outgoing(_text(first)))
        engine.control.extend(Outgoing(text, is_event=True) for text in self.kept)
        self.kept.clear()
        self.engine = engine
        engine.writer = asyncio.get_running_loop().create_task(self._write(engine))
        engine.wake.set()

    async def detach(self, ws: EngineSocket) -> None:
        """The engine's socket is done; keep events again (unsent ones included)."""
        if self.engine is not None and self.engine.ws is ws:
            self._drop(self.engine)
        closer = self._closers.get(id(ws))
        if closer is not None:
            await asyncio.wait({closer})  # so the view returns only once the close code is out

    async def serve(self, ws: EngineSocket) -> None:
        """Read the engine's messages until it goes away or the bot lets go of it (a
        disconnect ends this even while the engine sends nothing); commands run in their
        own tasks."""
        engine = self.engine
        if engine is None or engine.ws is not ws:
            return
        reader = asyncio.get_running_loop().create_task(self._read(engine))
        engine.reader = reader
        try:
            await asyncio.wait({reader})
        finally:
            reader.cancel()
        if not reader.cancelled():
            reader.result()

    async def _read(self, engine: _Engine) -> None:
        async for msg in engine.ws:
            if engine.dropped:
                break
            if msg.type == WSMsgType.BINARY:
                self._engine_audio(engine, msg.data)
            elif msg.type == WSMsgType.TEXT:
                self._engine_text(engine, msg.data)
            elif msg.type == WSMsgType.ERROR:
                break

    def _engine_audio(self, engine: _Engine, data: bytes) -> None:
        if len(data) % (2 * self.ctx.channels):
            self._error(engine, f"audio message of {len(data)} bytes is not whole 16-bit samples")
            return
        self.frames_from_engine += 1
        self.ctx.send_audio(data, self.ctx.sample_rate, self.ctx.channels)

    def _engine_text(self, engine: _Engine, text: str) -> None:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            self._error(engine, f"not JSON: {exc}")
            return
        if not isinstance(msg, dict) or msg.get("type") != "command":
            self._error(engine, 'expected {"type": "command", "id": N, "command": NAME, "args": {...}}')
            return
        rid, name, args = msg.get("id"), msg.get("command"), msg.get("args") or {}
        if name == "leave":
            self._send(engine, Outgoing(_text({"type": "reply", "id": rid, "ok": True, "result": None})))
            self.ctx.end("the engine asked to leave")
            return
        cls = COMMANDS.get(name)  # type: ignore[arg-type]
        if cls is None:
            self._fail(engine, rid, f"unknown command {name!r}; known: leave, {', '.join(COMMANDS)}")
            return
        if not isinstance(args, dict):
            self._fail(engine, rid, "args must be an object")
            return
        try:
            cmd = msgspec.convert({**args, "id": self.ctx.next_id()}, cls)
        except msgspec.ValidationError as exc:
            self._fail(engine, rid, f"{name}: {exc}")
            return
        if len(engine.commands) >= COMMANDS_IN_FLIGHT:
            self._fail(engine, rid, f"{COMMANDS_IN_FLIGHT} commands are in flight; wait for their replies")
            return
        task = asyncio.get_running_loop().create_task(self._command(engine, rid, name, cmd))
        engine.commands.add(task)
        task.add_done_callback(engine.commands.discard)

    async def _command(self, engine: _Engine, rid: Any, name: str, cmd: m.Command) -> None:
        try:
            reply = await self.ctx.command(cmd)
        except Exception as exc:
            log.exception("stream command failed", session_id=self.ctx.session_id, command=name)
            reply = m.Err(cmd.id, m.ErrCode.INTERNAL, str(exc))
        self._reply(engine, rid, reply)

    def _reply(self, engine: _Engine, rid: Any, reply: m.Ok | m.Err) -> None:
        if isinstance(reply, m.Ok):
            self._send(engine, Outgoing(_text({"type": "reply", "id": rid, "ok": True, "result": reply.result})))
        else:
            self._fail(engine, rid, f"{reply.code}: {reply.message}")

    def _fail(self, engine: _Engine, rid: Any, error: str) -> None:
        self._send(engine, Outgoing(_text({"type": "reply", "id": rid, "ok": False, "error": error})))

    def _error(self, engine: _Engine, error: str) -> None:
        self._send(engine, Outgoing(_text({"type": "error", "error": error})))

    # -- the one path out to the engine ---------------------------------------------------------

    def _send(self, engine: _Engine, item: Outgoing) -> bool:
        """Queue text for the engine; False (and the engine disconnected) if its backlog is full."""
        if engine.dropped:
            return False
        if len(engine.control) >= CONTROL_QUEUE:
            self._disconnect(engine, NOT_READING, f"engine not reading: {len(engine.control)} control messages backlogged")
            return False
        engine.control.append(item)
        engine.wake.set()
        return True

    async def _write(self, engine: _Engine) -> None:
        """The engine's only writer: text in order first, then audio, until closing empties it."""
        ws = engine.ws
        try:
            while True:
                if engine.control:
                    await ws.send_str(engine.control[0].text)
                    engine.control.popleft()  # after the send: an event cut off by a drop is kept again
                elif engine.audio:
                    await ws.send_bytes(engine.audio.popleft())
                    self.frames_to_engine += 1
                elif engine.closing:
                    return
                else:
                    engine.wake.clear()
                    await engine.wake.wait()
        except (ConnectionError, RuntimeError) as exc:  # the socket went away under a send
            log.info("stream engine gone", session_id=self.ctx.session_id, error=str(exc))
            if not engine.closing:
                self._drop(engine)

    def _live_engine(self) -> _Engine | None:
        engine = self.engine
        if engine is not None and engine.ws.closed:
            self._drop(engine)  # gone before its reader noticed: keep events from here on
            return None
        return engine

    def _drop(self, engine: _Engine) -> None:
        """Let go of an engine: stop its tasks and keep, in order, the events it was not sent."""
        if engine.dropped:
            return
        engine.dropped = True
        engine.cancel_tasks()
        if self.engine is engine:
            self.engine = None
        unsent = [item.text for item in engine.control if item.is_event]
        self.kept = collections.deque([*unsent, *self.kept], maxlen=KEPT_EVENTS)
        engine.control.clear()
        engine.audio.clear()

    def _disconnect(self, engine: _Engine, code: int, reason: str) -> None:
        log.warning("stream engine disconnected", session_id=self.ctx.session_id, reason=reason)
        self._drop(engine)
        key = id(engine.ws)
        task = asyncio.get_running_loop().create_task(_close(engine, code, reason))
        self._closers[key] = task
        task.add_done_callback(lambda _: self._closers.pop(key, None))

    # -- the call's side ---------------------------------------------------------------------

    def on_audio(self, header: AudioIn, pcm: Any) -> None:
        engine = self.engine
        if engine is None or engine.dropped:
            return
        pid = header.participant_id.encode()[:255]
        engine.audio.append(bytes([len(pid)]) + pid + bytes(getattr(pcm, "buffer", pcm)))
        while len(engine.audio) > AUDIO_QUEUE:
            engine.audio.popleft()
            self.frames_dropped += 1
        engine.wake.set()

    async def on_event(self, event: m.Event) -> None:
        body = {"type": "event", "event": event_name(event), "data": msgspec.to_builtins(event)}
        body["data"].pop("type", None)
        text = _text(body)
        engine = self._live_engine()
        if engine is None or not self._send(engine, Outgoing(text, is_event=True)):
            self.kept.append(text)

    async def close(self) -> None:
        """The session is over: send the engine the text it is owed, then close with 1000."""
        engine = self.engine
        self.engine = None
        if engine is not None:
            engine.closing = True
            for task in engine.commands:
                task.cancel()
            engine.audio.clear()
            engine.wake.set()
            if engine.writer is not None:
                await asyncio.wait({engine.writer}, timeout=CLOSE_TIMEOUT_S)
            engine.dropped = True
            await _close(engine, WSCloseCode.OK, "session ended")
        closers = list(self._closers.values())
        for task in closers:
            task.cancel()
        await asyncio.gather(*closers, return_exceptions=True)


async def _close(engine: _Engine, code: int, reason: str) -> None:
    """Stop the engine's writer and close its socket; one that does not read is cut off
    after CLOSE_TIMEOUT_S."""
    engine.cancel_tasks()
    if engine.writer is not None:
        await asyncio.wait({engine.writer})  # one writer at a time, the close frame included
    if engine.ws.closed:
        return
    try:
        await asyncio.wait_for(engine.ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT_S)
    except TimeoutError:
        pass  # aiohttp closes the transport when a close is cancelled
    except (ConnectionError, RuntimeError) as exc:
        log.info("stream engine close failed", error=str(exc))
