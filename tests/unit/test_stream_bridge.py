"""The stream bridge between a session and an external engine cannot be wedged by either
side: a slow command does not stop the engine's audio, an engine that stops reading costs
the session actor nothing (its backlog is bounded, then it is disconnected), and events
reach the engine in the order they happened, kept ones first."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSMessage, WSMsgType

from protocol import messages as m
from protocol.audio import AudioIn
from supervisor.bots import stream
from supervisor.bots.stream import StreamBot
from tests.waiting import wait_until

GUARD_S = 5.0  # only so a regression fails instead of hanging; nothing here measures time


class FakeContext:
    """The session as the bot sees it; a command waits on a gate the test opens."""

    session_id = "s1"
    sample_rate = 16000
    channels = 1

    def __init__(self) -> None:
        self.audio: list[bytes] = []
        self.gates: dict[str, asyncio.Event] = {}  # app message text -> when its command may complete
        self.ended: list[str] = []
        self.running: list[m.Command] = []
        self._ids = 0

    def send_audio(self, pcm: Any, sample_rate: int, channels: int) -> bool:
        self.audio.append(bytes(pcm))
        return True

    async def command(self, cmd: m.Command, timeout_s: float = 10.0) -> m.Ok | m.Err:
        self.running.append(cmd)
        assert isinstance(cmd, m.SendAppMessage)
        gate = self.gates.get(cmd.message["text"])
        if gate is not None:
            await gate.wait()
        return m.Ok(cmd.id, result={"sent": cmd.message["text"]})

    def end(self, reason: str) -> None:
        self.ended.append(reason)

    def next_id(self) -> int:
        self._ids += 1
        return self._ids


class FakeEngineSocket:
    """The server end of an engine's WebSocket. ``reading`` cleared: every send waits, as a
    send does once the peer stops reading and the socket buffers are full."""

    def __init__(self, reading: bool = True) -> None:
        self.reading = asyncio.Event()
        if reading:
            self.reading.set()
        self.sent: list[str | bytes] = []
        self.closed = False
        self.close_code: int | None = None
        self.close_message = b""
        self._incoming: asyncio.Queue[WSMessage | None] = asyncio.Queue()

    # what the bridge calls
    async def send_str(self, data: str) -> None:
        await self._send(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(data)

    async def send_json(self, data: Any) -> None:
        await self._send(json.dumps(data))

    async def _send(self, data: str | bytes) -> None:
        await asyncio.sleep(0)  # a network write yields to the loop
        await self.reading.wait()
        if self.closed:
            raise ConnectionResetError("closed")
        self.sent.append(data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        if self.closed:
            return False
        self.closed, self.close_code, self.close_message = True, code, message
        self._incoming.put_nowait(None)
        return True

    def __aiter__(self) -> FakeEngineSocket:
        return self

    async def __anext__(self) -> WSMessage:
        msg = await self._incoming.get()
        if msg is None:
            raise StopAsyncIteration
        return msg

    # what the engine does
    def engine_sends_command(self, rid: int, text: str) -> None:
        body = {"type": "command", "id": rid, "command": "send_app_message", "args": {"message": {"text": text}}}
        self._incoming.put_nowait(WSMessage(WSMsgType.TEXT, json.dumps(body), None))

    def engine_sends_audio(self, pcm: bytes) -> None:
        self._incoming.put_nowait(WSMessage(WSMsgType.BINARY, pcm, None))

    def texts(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.sent if isinstance(x, str)]

    def replies(self) -> list[dict[str, Any]]:
        return [x for x in self.texts() if x["type"] == "reply"]


def finishes_without_waiting(coro: Coroutine[Any, Any, Any]) -> bool:
    """True if ``coro`` runs to its end without once suspending."""
    try:
        coro.send(None)
    except StopIteration:
        return True
    coro.close()
    return False


def event(n: int) -> m.AppMessage:
    return m.AppMessage(message={"n": n}, sender="caller")


def event_numbers(ws: FakeEngineSocket) -> list[int]:
    return [x["data"]["message"]["n"] for x in ws.texts() if x["type"] == "event"]


def frame(n: int) -> tuple[AudioIn, bytes]:
    return AudioIn(participant_id="caller", seq=n, sample_rate=16000, channels=1), n.to_bytes(2, "little") * 160


CONFIG = {"type": "config", "session_id": "s1"}


async def attached(bot: StreamBot, ws: FakeEngineSocket) -> asyncio.Task[None]:
    """Attach ``ws`` as the engine and start reading it, as the stream view does."""
    await asyncio.wait_for(bot.attach(ws, CONFIG), GUARD_S)  # type: ignore[arg-type]

    async def serve() -> None:
        try:
            await bot.serve(ws)  # type: ignore[arg-type]
        finally:
            await bot.detach(ws)  # type: ignore[arg-type]

    return asyncio.get_running_loop().create_task(serve())


async def test_a_slow_command_does_not_stop_the_engine_audio_and_replies_keep_their_ids() -> None:
    ctx = FakeContext()
    bot = StreamBot(ctx, {})
    ws = FakeEngineSocket()
    serving = await attached(bot, ws)
    ctx.gates["slow"] = asyncio.Event()
    ws.engine_sends_command(1, "slow")
    for n in range(5):
        ws.engine_sends_audio(n.to_bytes(2, "little") * 160)
    ws.engine_sends_command(2, "fast")
    await wait_until(lambda: len(ctx.audio) == 5, GUARD_S, "the engine's audio reached the call while a command was pending", interval=0.001)
    await wait_until(lambda: len(ws.replies()) == 1, GUARD_S, "the second command's reply", interval=0.001)
    assert ws.replies() == [{"type": "reply", "id": 2, "ok": True, "result": {"sent": "fast"}}]
    ctx.gates["slow"].set()
    await wait_until(lambda: len(ws.replies()) == 2, GUARD_S, "the first command's reply", interval=0.001)
    assert ws.replies()[1] == {"type": "reply", "id": 1, "ok": True, "result": {"sent": "slow"}}
    await bot.close()
    await asyncio.wait_for(serving, GUARD_S)


async def test_an_engine_that_does_not_read_never_blocks_events_and_is_disconnected_past_the_backlog() -> None:
    bot = StreamBot(FakeContext(), {})
    ws = FakeEngineSocket(reading=False)
    serving = await attached(bot, ws)
    sent = 0
    while not ws.closed and sent < stream.CONTROL_QUEUE + 10:
        assert finishes_without_waiting(bot.on_event(event(sent))), "on_event waited for the engine"
        sent += 1
        await asyncio.sleep(0)  # the disconnect runs in its own task
    await wait_until(lambda: ws.closed, GUARD_S, "the engine was disconnected", interval=0.001)
    assert ws.close_code in (1008, 1013)
    assert ws.close_message.decode() == f"engine not reading: {stream.CONTROL_QUEUE} control messages backlogged"
    assert bot.ws is None  # events are kept again, for the next engine
    await asyncio.wait_for(serving, GUARD_S)
    for n in range(sent, sent + 3):
        assert finishes_without_waiting(bot.on_event(event(n)))
    ws2 = FakeEngineSocket()
    serving = await attached(bot, ws2)
    last = sent + 3
    await wait_until(lambda: event_numbers(ws2)[-1:] == [last - 1], GUARD_S, "the kept events reached the next engine", interval=0.001)
    assert ws2.texts()[0] == CONFIG
    assert event_numbers(ws2) == list(range(last - stream.KEPT_EVENTS, last))
    await bot.close()
    await asyncio.wait_for(serving, GUARD_S)


async def test_audio_for_an_engine_that_does_not_read_is_dropped_oldest_first_and_counted() -> None:
    bot = StreamBot(FakeContext(), {})
    ws = FakeEngineSocket(reading=False)
    serving = await attached(bot, ws)
    total = stream.AUDIO_QUEUE + 30
    for n in range(total):
        bot.on_audio(*frame(n))
    assert bot.frames_dropped == 30
    ws.reading.set()
    await wait_until(lambda: bot.frames_to_engine == stream.AUDIO_QUEUE, GUARD_S, "the queued frames reached the engine", interval=0.001)
    frames = [x for x in ws.sent if isinstance(x, bytes)]
    heard = [int.from_bytes(f[1 + f[0] : 3 + f[0]], "little") for f in frames]
    assert heard == list(range(30, total))  # the newest survive, in order
    assert all(f[1 : 1 + f[0]] == b"caller" for f in frames)
    await bot.close()
    await asyncio.wait_for(serving, GUARD_S)


async def test_kept_events_and_events_during_attach_reach_the_engine_in_order() -> None:
    bot = StreamBot(FakeContext(), {})
    for n in range(5):
        await bot.on_event(event(n))
    ws = FakeEngineSocket()

    async def live_events() -> None:
        for n in range(5, 10):
            await bot.on_event(event(n))
            await asyncio.sleep(0)

    loop = asyncio.get_running_loop()
    attaching = loop.create_task(bot.attach(ws, CONFIG))  # type: ignore[arg-type]
    live = loop.create_task(live_events())
    await asyncio.wait_for(asyncio.gather(attaching, live), GUARD_S)
    await wait_until(lambda: len(ws.texts()) == 11, GUARD_S, "all events reached the engine", interval=0.001)
    assert ws.texts()[0] == CONFIG
    assert event_numbers(ws) == list(range(10))
    await bot.close()


async def test_close_cancels_pending_commands_and_ends_the_socket_with_session_ended() -> None:
    ctx = FakeContext()
    bot = StreamBot(ctx, {})
    ws = FakeEngineSocket()
    serving = await attached(bot, ws)
    ctx.gates["never"] = asyncio.Event()
    ws.engine_sends_command(1, "never")
    await wait_until(lambda: len(ctx.running) == 1, GUARD_S, "the command started", interval=0.001)
    await asyncio.wait_for(bot.close(), GUARD_S)
    assert ws.closed and ws.close_code == 1000 and ws.close_message == b"session ended"
    await asyncio.wait_for(serving, GUARD_S)
    assert ws.replies() == []  # the pending command was cancelled, not answered
    assert bot.ws is None
