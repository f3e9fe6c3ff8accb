"""The bench's phones for ``callfleet bench --transport twilio``: each speaks Twilio's Media
Streams protocol (``sandbox.telephony.media_streams``) straight to a stream URL, as Twilio
does once the TwiML's ``<Connect><Stream>`` names it, and times the bot's echo.

Every 20 ms (paced by the clock from the stream's start, a late loop catching up) the phone
sends one ``media`` chunk of 160 μ-law bytes whose first 7 bytes are a marker: 4 magic codes
and the chunk's sequence number in 3 base-64 digits. μ-law → 16-bit PCM → μ-law gives every
code back but 0x7F (none is used), and an 8 kHz bot resamples nothing, so the marker comes
back as it went whatever chunks the bot's transport cuts its audio into: the phone scans
what it hears for it.

* start latency: from sending the start request (callfleet's ``POST /start``, the runner's
  ``POST /``) to the first echoed chunk heard (the bot's stream started and its audio flows);
* round trip: from sending a marked chunk to hearing it;
* lost: chunks sent in the window whose echo had not come back half a second after it.

``direct_rtt_ms`` is the phone network alone: the same phones against ``EchoServer``, a
loopback Media Streams server in the bench's process that sends every ``media`` payload
straight back, no bot and no host in between.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import random
import time
from typing import Any

import aiohttp
from aiohttp import web

from bench.progress import Progress
from bench.talk import FRAME_S, Talk, Window
from sandbox.telephony import media_streams as m
from sandbox.telephony.network import ACCOUNT_SID, new_sid

CHUNK = 160  # 20 ms of 8 kHz μ-law
MAGIC = bytes([0x13, 0x37, 0xC5, 0x5A])
DIGITS = 3  # base 64: 262144 chunks, 87 minutes of one call
FILL = 0xE0  # a quiet non-silent code
FIRST_ECHO_TIMEOUT_S = 60.0


def marked_chunk(seq: int) -> bytes:
    digits = bytes(0x80 + ((seq >> (6 * i)) & 0x3F) for i in range(DIGITS))
    return (MAGIC + digits).ljust(CHUNK, bytes([FILL]))


def read_markers(buffer: bytearray) -> list[int]:
    """The sequence numbers of every whole marker in ``buffer``, removing what was read (a
    marker cut between two messages stays for the next)."""
    found: list[int] = []
    pos = 0
    while True:
        at = buffer.find(MAGIC, pos)
        if at < 0 or at + len(MAGIC) + DIGITS > len(buffer):
            keep = at if at >= 0 else max(pos, len(buffer) - len(MAGIC) + 1)
            del buffer[:keep]
            return found
        digits = buffer[at + len(MAGIC): at + len(MAGIC) + DIGITS]
        found.append(sum((d - 0x80) << (6 * i) for i, d in enumerate(digits)))
        pos = at + len(MAGIC) + DIGITS


class BenchPhone:
    """One call's phone over an open Media Stream."""

    def __init__(self, url: str, requested_at: float) -> None:
        self.url = url
        self.requested_at = requested_at  # monotonic: the start request was sent
        self.call_sid, self.stream_sid = new_sid("CA"), new_sid("MZ")
        self.session_id: str | None = None  # the host's, where it names one
        self.first_echo_at: float | None = None
        self.first_echo = asyncio.get_running_loop().create_future()
        self.sent_at: dict[int, float] = {}
        self.rtts_ms: list[float] = []
        self.measuring = False
        self.count_sends = True
        self.sent = self.received = 0  # in the measured window
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._seq = itertools.count(1)
        self._heard = bytearray()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def start_latency_ms(self) -> float:
        assert self.first_echo_at is not None
        return (self.first_echo_at - self.requested_at) * 1000

    async def open(self, http: aiohttp.ClientSession) -> None:
        """Open the stream, say ``connected`` and ``start``, and speak from now on."""
        self.ws = await http.ws_connect(self.url, max_msg_size=1 << 20)
        await self._send(m.Connected())
        await self._send(m.Start(self._next(), m.StartInfo(
            account_sid=ACCOUNT_SID, stream_sid=self.stream_sid, call_sid=self.call_sid, tracks=["inbound"],
            custom_parameters={}, media_format=m.MediaFormat()), self.stream_sid))
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._speak())]

    async def wait_first_echo(self) -> float:
        """The start latency in ms, once the first echo is heard; raises ``TimeoutError``."""
        await asyncio.wait_for(asyncio.shield(self.first_echo), FIRST_ECHO_TIMEOUT_S)
        return self.start_latency_ms

    def measure(self, on: bool) -> None:
        if on:
            self.sent_at.clear()
        self.measuring = on

    async def hang_up(self) -> None:
        """``stop``, then close the socket."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await self._send(m.Stop(self._next(), self.stream_sid, m.StopInfo(ACCOUNT_SID, self.call_sid)))
            await self.ws.close()

    async def _speak(self) -> None:
        await asyncio.sleep(random.uniform(0, FRAME_S))  # independent speakers, not in lockstep
        started = time.monotonic()
        chunk_no = 0
        while not self._stopping:
            due = int((time.monotonic() - started) / FRAME_S) + 1
            while chunk_no < due and not self._stopping:
                seq = chunk_no % (1 << (6 * DIGITS))
                chunk_no += 1
                now = time.monotonic()
                if self.measuring and self.count_sends:
                    self.sent_at[seq] = now
                    self.sent += 1
                media = m.InboundMedia(track="inbound", chunk=str(chunk_no), timestamp=str((chunk_no - 1) * 20),
                                       payload=base64.b64encode(marked_chunk(seq)).decode())
                await self._send(m.Media(self._next(), media, self.stream_sid))
            await asyncio.sleep(max(0.0, started + chunk_no * FRAME_S - time.monotonic()))

    async def _listen(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            heard = m.decode_server(message.data)
            if not isinstance(heard, m.ServerMedia):
                continue
            now = time.monotonic()
            self._heard += base64.b64decode(heard.media.payload)
            for seq in read_markers(self._heard):
                if self.first_echo_at is None:
                    self.first_echo_at = now
                    self.first_echo.set_result(None)
                sent = self.sent_at.pop(seq, None)
                if sent is not None and self.measuring:
                    self.rtts_ms.append((now - sent) * 1000)
                    self.received += 1

    def _next(self) -> str:
        return str(next(self._seq))

    async def _send(self, message: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(m.encoder.encode(message).decode())


class EchoServer:
    """A loopback Media Streams server: what the phone says comes straight back."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/ws"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data.get("event") == "media":
                await ws.send_str(json.dumps({"event": "media", "streamSid": data["streamSid"],
                                              "media": {"payload": data["media"]["payload"]}}))
            elif data.get("event") == "stop":
                break
        return ws


async def phone_talk(http: aiohttp.ClientSession, phones: list[BenchPhone], seconds: float, window: Window,
                     progress: Progress, prefix: str) -> Talk:
    """Beside the hosts' ``phones`` (open, echoing), as many phones on the loopback echo;
    measure all of them for ``seconds`` and hang every one up."""
    n = len(phones)
    progress(f"{prefix}: {n} direct phones on the loopback echo")
    echo = EchoServer()
    await echo.start()
    direct = [BenchPhone(echo.url, time.monotonic()) for _ in range(n)]
    everyone = phones + direct
    try:
        for phone in direct:
            await phone.open(http)
        await asyncio.gather(*(p.wait_first_echo() for p in direct))
        progress(f"{prefix}: speaking for {seconds:g} s on {n} calls and {n} direct lines")
        await window.begin()
        started = time.monotonic()
        for phone in everyone:
            phone.measure(True)
        await asyncio.sleep(seconds / 2)  # memory mid-window: a long run reads it settled (page merging takes ~20 s)
        await window.middle()
        while time.monotonic() - started < seconds:
            progress(f"{prefix}: speaking... {time.monotonic() - started:.0f}/{seconds:g} s")
            await window.tick()
            await asyncio.sleep(max(0.0, min(1.0, started + seconds - time.monotonic())))
        for phone in everyone:
            phone.count_sends = False  # the calls go on; what is sent from here is not measured
        await asyncio.sleep(0.5)  # the last echoes in flight
        elapsed = time.monotonic() - started
        for phone in everyone:
            phone.measure(False)
        await window.end()
    finally:
        await asyncio.gather(*(p.hang_up() for p in everyone), return_exceptions=True)
        await echo.stop()
    return Talk(echo_rtts=[r for p in phones for r in p.rtts_ms], direct_rtts=[r for p in direct for r in p.rtts_ms],
                sent=sum(p.sent for p in phones), received=sum(p.received for p in phones), window_s=elapsed)

