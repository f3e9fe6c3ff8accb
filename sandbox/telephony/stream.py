"""The phone's end of one bidirectional Media Stream (``<Connect><Stream>``), over a socket
already open: ``connected`` and ``start``, then every 20 ms of the phone's clock one
``media`` chunk out and 20 ms of the server's audio played, ``mark`` echoes, and ``stop``
when the phone ends it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import itertools
from collections.abc import Callable

import aiohttp

from sandbox.telephony import media_streams as m
from sandbox.telephony.earpiece import Earpiece
from sandbox.telephony.mouth import CHUNK_MS, Mouth

TICK_S = CHUNK_MS / 1000


class StreamEnd(enum.Enum):
    PHONE = "phone"  # the phone sent stop and closed it
    SERVER = "server"  # the server closed the socket


class MediaStream:
    """One Media Stream of call ``call_sid``: what ``mouth`` says goes out, what the server
    sends plays through ``earpiece``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, account_sid: str, call_sid: str, stream_sid: str,
                 parameters: dict[str, str], mouth: Mouth, earpiece: Earpiece, clock: Callable[[], float]) -> None:
        self.ws = ws
        self.account_sid, self.call_sid, self.stream_sid = account_sid, call_sid, stream_sid
        self.parameters = parameters
        self.mouth, self.earpiece, self.clock = mouth, earpiece, clock
        self._sequence = itertools.count(1)  # ``connected`` has none; ``start`` is 1
        self.chunks_sent = 0
        self.marks_echoed = 0
        self.ignored = 0  # server messages that were not media, mark or clear of this stream
        self.stopping = False

    async def run(self) -> StreamEnd:
        """Speak the protocol until the socket closes; say who closed it.

        Raises ``ConnectionResetError`` if the socket is lost before ``start`` is sent."""
        await self._send(m.Connected())
        await self._send(m.Start(self._next(), m.StartInfo(
            account_sid=self.account_sid, stream_sid=self.stream_sid, call_sid=self.call_sid, tracks=["inbound"],
            custom_parameters=self.parameters, media_format=m.MediaFormat()), self.stream_sid))
        pacer = asyncio.create_task(self._pace())
        try:
            async for message in self.ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await self._heard(message.data)
                elif message.type is aiohttp.WSMsgType.ERROR:
                    break
                else:
                    self.ignored += 1  # Twilio speaks text frames only
        except ConnectionResetError:
            pass  # lost while echoing a mark: the stream is over all the same
        finally:
            pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pacer
        return StreamEnd.PHONE if self.stopping else StreamEnd.SERVER

    async def stop(self) -> None:
        """Hang up: ``stop``, then close the socket (a no-op once it is closed)."""
        if self.stopping:
            return
        self.stopping = True  # from here the pacer sends nothing: stop is the last message
        with contextlib.suppress(ConnectionResetError):
            await self._send(m.Stop(self._next(), self.stream_sid, m.StopInfo(self.account_sid, self.call_sid)))
        await self.ws.close()

    async def press(self, digits: str) -> None:
        """Key presses, one ``dtmf`` message each (none once the phone has hung up)."""
        for digit in digits:
            if self.stopping:
                return
            await self._send(m.Dtmf(self._next(), self.stream_sid, m.Digit("inbound_track", digit)))

    # -- the clock ---------------------------------------------------------------------------

    async def _pace(self) -> None:
        """One tick per 20 ms of the clock, counted from the start: a late loop catches up,
        it never runs ahead."""
        started = self.clock()
        ticks = 0
        try:
            while not self.stopping and not self.ws.closed:
                due = int((self.clock() - started) / TICK_S) + 1
                while ticks < due and not self.stopping and not self.ws.closed:
                    await self._tick()
                    ticks += 1
                await asyncio.sleep(max(0.0, started + ticks * TICK_S - self.clock()))
        except ConnectionResetError:
            pass  # the socket closed under us: run() sees it end

    async def _tick(self) -> None:
        chunk = self.mouth.next_chunk()
        self.chunks_sent += 1
        n = self.chunks_sent
        media = m.InboundMedia(track="inbound", chunk=str(n), timestamp=str((n - 1) * CHUNK_MS),
                               payload=base64.b64encode(chunk).decode())
        await self._send(m.Media(self._next(), media, self.stream_sid))
        await self._echo(self.earpiece.play())

    # -- what the server says ------------------------------------------------------------------

    async def _heard(self, data: str) -> None:
        message = m.decode_server(data)
        if message is None or message.stream_sid != self.stream_sid:
            self.ignored += 1
        elif isinstance(message, m.ServerMedia):
            try:
                self.earpiece.receive(base64.b64decode(message.media.payload, validate=True))
            except binascii.Error:
                self.ignored += 1
        elif isinstance(message, m.ServerMark):
            await self._echo(self.earpiece.mark(message.mark.name))
        else:
            await self._echo(self.earpiece.clear())

    async def _echo(self, names: list[str]) -> None:
        if self.stopping:
            return  # nothing follows stop
        for name in names:
            await self._send(m.Mark(self._next(), self.stream_sid, m.MarkName(name)))
            self.marks_echoed += 1

    def _next(self) -> str:
        return str(next(self._sequence))

    async def _send(self, message: m.Connected | m.Start | m.Media | m.Mark | m.Dtmf | m.Stop) -> None:
        await self.ws.send_str(m.encoder.encode(message).decode())
