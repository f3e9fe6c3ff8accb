"""A Twilio-like phone that places one inbound call: it posts the voice webhook, follows the
TwiML, and talks over the Media Stream the TwiML connects, until someone hangs up.

In-process use (tests, the bench)::

    phone = Phone(PhoneOptions(webhook_url, carrier=sandbox.phones,
                               transcripts=LocalTranscripts(sandbox.ai.script)))
    await phone.dial()                       # returns once the stream is open, or the call is over
    await phone.say(await voice.from_text("what time is it"), text="what time is it")
    report = await phone.hang_up()           # or: await phone.ended()
    pcm = phone.heard_pcm()                  # 8 kHz 16-bit PCM of what it heard

``PhoneOptions.carrier`` is the network the call is on (``sandbox.phones`` in-process,
``RemoteCarrier(sandbox_url)`` from elsewhere): Twilio's REST API there can hang it up.
Without one the call has a CallSid nothing else knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import msgspec

from sandbox.telephony import mulaw, signature, twiml, webhook
from sandbox.telephony.earpiece import Earpiece
from sandbox.telephony.mouth import CHUNK_MS, Mouth
from sandbox.telephony.network import ACCOUNT_SID, Carrier, new_sid
from sandbox.telephony.stream import MediaStream, StreamEnd
from sandbox.telephony.transcripts import Transcripts

MAX_MESSAGE_BYTES = 1 << 20  # far above any Media Stream message; a bigger one is a broken server
CONNECT_TIMEOUT_S = 10.0  # for the stream's socket to open


class HungUpBy(enum.Enum):
    PHONE = "phone"  # the phone hung up
    API = "api"  # the server, through Twilio's REST API (Status=completed)
    SERVER = "server"  # the server: it closed the stream and the TwiML ran out, or said <Hangup/>
    REJECTED = "rejected"  # the TwiML said <Reject>
    FAILED = "failed"  # no TwiML to follow: the webhook failed, or the stream could not be opened


class CallReport(msgspec.Struct):
    """What happened on the call, as the phone saw it."""

    call_sid: str = ""
    stream_sid: str | None = None
    webhook_status: int | None = None
    verbs: list[str] = []  # the TwiML's verbs, in order
    said: list[str] = []  # what <Say> said
    skipped: list[str] = []  # verbs the phone does not follow
    stream_url: str | None = None
    parameters: dict[str, str] = {}
    stream_opened: bool = False
    seconds_sent: float = 0.0  # streamed to the server, silence included
    seconds_spoken: float = 0.0  # of that, speech
    seconds_heard: float = 0.0  # the server's audio, played out
    seconds_cleared: float = 0.0  # the server's audio dropped by clear before it was played
    seconds_dropped: float = 0.0  # the server's audio beyond what a phone buffers (a runaway sender)
    marks_echoed: int = 0
    clears: int = 0
    ignored_messages: int = 0
    hung_up_by: HungUpBy | None = None
    reason: str = ""


@dataclass
class PhoneOptions:
    webhook_url: str
    from_number: str = "+15550100"
    to_number: str = "+15550199"
    account_sid: str = ACCOUNT_SID
    auth_token: str = ""  # signs the webhook and the stream's handshake when set
    carrier: Carrier | None = None
    transcripts: Transcripts | None = None  # where what the phone says is declared
    plain_ws: bool = False  # reach a wss:// Stream url as ws:// (a local server without TLS)
    clock: Callable[[], float] = field(default=time.monotonic)  # paces the stream


class Phone:
    """One call, from dialling to hanging up (``dial`` once)."""

    def __init__(self, options: PhoneOptions) -> None:
        self.options = options
        self.report = CallReport()
        self.mouth = Mouth()
        self.earpiece = Earpiece()
        self.stream: MediaStream | None = None
        self._opened = asyncio.Event()
        self._hung_up = asyncio.Event()  # by the phone or the API: no TwiML is followed after it
        self._call: asyncio.Task[CallReport] | None = None
        self._hang_ups: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        """Whether the Media Stream is open."""
        return self.stream is not None and not self.stream.ws.closed

    async def dial(self) -> None:
        """Place the call: returns once the stream is open or the call is over (``report``
        says which, and why).

        Raises ``RuntimeError`` if this phone has dialled before, and what the carrier raises
        if it cannot put the call on its network (``lines.LineError``)."""
        if self._call is not None:
            raise RuntimeError("a Phone places one call")
        self._call = asyncio.create_task(self._place())
        opened = asyncio.ensure_future(self._opened.wait())
        try:
            await asyncio.wait({opened, self._call}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
        if self._call.done():
            self._call.result()  # the carrier's error, if it refused the call

    async def say(self, ulaw: bytes, text: str | None = None) -> bool:
        """Say ``ulaw`` (8 kHz μ-law, ``sandbox.telephony.voice``) after what is being said,
        declaring ``text`` to the transcripts first; whether all of it was said before the
        call ended (False at once if it is over, or not placed)."""
        if self._call is None or self._call.done():
            return False
        if text and self.options.transcripts is not None:
            await self.options.transcripts.declare(text)
        said = self.mouth.say(ulaw)
        await asyncio.wait({said})
        return not said.cancelled()

    async def press(self, digits: str) -> None:
        """Press keys (DTMF) on the open stream."""
        if self.stream is not None:
            await self.stream.press(digits)

    async def hang_up(self) -> CallReport:
        """The phone hangs up (mid-sentence if it is speaking) and the call's report."""
        await self._end(HungUpBy.PHONE, "the phone hung up")
        return await self.ended()

    async def ended(self) -> CallReport:
        """Wait for the call to end, however it does, and answer its report."""
        if self._call is None:
            return self.report
        return await asyncio.shield(self._call)

    def heard_pcm(self) -> bytes:
        """What the phone heard, played out in real time, as 8 kHz 16-bit PCM."""
        return mulaw.decode(bytes(self.earpiece.heard))

    # -- the call ------------------------------------------------------------------------------

    async def _place(self) -> CallReport:
        opts = self.options
        try:
            if opts.carrier is not None:
                self.report.call_sid = await opts.carrier.connect(opts.account_sid, opts.from_number, opts.to_number,
                                                                  self._hung_up_by_api)
            else:
                self.report.call_sid = new_sid("CA")
            async with aiohttp.ClientSession() as session:
                instructions = await self._answer(session)
                if instructions is not None:
                    await self._follow(session, instructions)
        finally:
            self.mouth.hush()
            self._tally()
            if opts.carrier is not None and self.report.call_sid:
                await opts.carrier.disconnect(self.report.call_sid)
        return self.report

    async def _answer(self, session: aiohttp.ClientSession) -> list[twiml.Instruction] | None:
        """The webhook's TwiML, or None (the call failed) if there is none to follow."""
        opts = self.options
        params = webhook.voice_params(opts.account_sid, self.report.call_sid, opts.from_number, opts.to_number)
        try:
            status, body = await webhook.post(session, opts.webhook_url, params, opts.auth_token)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._ended(HungUpBy.FAILED, f"the webhook could not be reached: {exc or type(exc).__name__}")
            return None
        self.report.webhook_status = status
        if not 200 <= status < 300:
            self._ended(HungUpBy.FAILED, f"the webhook answered HTTP {status}")
            return None
        try:
            return twiml.parse(body)
        except twiml.TwimlError as exc:
            self._ended(HungUpBy.FAILED, f"the webhook's answer is not TwiML: {exc}")
            return None

    async def _follow(self, session: aiohttp.ClientSession, instructions: list[twiml.Instruction]) -> None:
        """Each verb in turn, as Twilio does; when the TwiML runs out, the call ends."""
        for instruction in instructions:
            if self._hung_up.is_set():
                return
            self.report.verbs.append(instruction.name)
            if instruction.verb is twiml.Verb.SAY:
                self.report.said.append(instruction.text)
            elif instruction.verb is twiml.Verb.PAUSE:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hung_up.wait(), instruction.seconds)
            elif instruction.verb is twiml.Verb.REJECT:
                self._ended(HungUpBy.REJECTED, f"rejected: {instruction.reason}")
                return
            elif instruction.verb is twiml.Verb.HANGUP:
                self._ended(HungUpBy.SERVER, "the TwiML said <Hangup/>")
                return
            elif instruction.verb is twiml.Verb.STREAM:
                if not await self._stream(session, instruction):
                    return
            else:
                self.report.skipped.append(instruction.name)
        self._ended(HungUpBy.SERVER, "the server closed the stream" if self.report.stream_opened
                    else "the TwiML ran out")

    async def _stream(self, session: aiohttp.ClientSession, instruction: twiml.Instruction) -> bool:
        """Talk over the stream until it closes; whether the TwiML goes on (the server closed it)."""
        opts = self.options
        url = instruction.url
        if opts.plain_ws and url.startswith("wss://"):
            url = "ws://" + url[len("wss://"):]
        self.report.stream_url, self.report.parameters = url, dict(instruction.parameters)
        headers = {signature.HEADER: signature.sign(opts.auth_token, instruction.url)} if opts.auth_token else {}
        try:
            ws = await asyncio.wait_for(session.ws_connect(url, headers=headers, max_msg_size=MAX_MESSAGE_BYTES),
                                        CONNECT_TIMEOUT_S)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._ended(HungUpBy.FAILED, f"the stream could not be opened: {exc or type(exc).__name__}")
            return False
        if self._hung_up.is_set():  # hung up while the socket was opening
            await ws.close()
            return False
        stream_sid = new_sid("MZ")
        self.report.stream_sid = stream_sid
        self.stream = MediaStream(ws, account_sid=opts.account_sid, call_sid=self.report.call_sid,
                                  stream_sid=stream_sid, parameters=dict(instruction.parameters), mouth=self.mouth,
                                  earpiece=self.earpiece, clock=opts.clock)
        self.report.stream_opened = True
        self._opened.set()
        try:
            how = await self.stream.run()
        except ConnectionResetError:
            how = StreamEnd.SERVER
        finally:
            await ws.close()
        return how is StreamEnd.SERVER and not self._hung_up.is_set()

    # -- hanging up ----------------------------------------------------------------------------

    def _hung_up_by_api(self) -> None:
        # Called by the carrier, on this loop: Twilio sends stop and closes the stream.
        task = asyncio.get_running_loop().create_task(self._end(HungUpBy.API, "hung up through the REST API"))
        self._hang_ups.add(task)
        task.add_done_callback(self._hang_ups.discard)

    async def _end(self, by: HungUpBy, reason: str) -> None:
        if self.report.hung_up_by is not None:
            return
        self._ended(by, reason)
        self._hung_up.set()
        self.mouth.hush()
        # Before the stream opens there is nothing to stop: the TwiML is followed no further.
        if self.stream is not None:
            await self.stream.stop()

    def _ended(self, by: HungUpBy, reason: str) -> None:
        if self.report.hung_up_by is None:
            self.report.hung_up_by, self.report.reason = by, reason

    def _tally(self) -> None:
        r, stream = self.report, self.stream
        r.seconds_spoken = self.mouth.spoken_bytes / mulaw.RATE
        r.seconds_heard = self.earpiece.heard_bytes / mulaw.RATE
        r.seconds_cleared = self.earpiece.cleared_bytes / mulaw.RATE
        r.seconds_dropped = self.earpiece.dropped_bytes / mulaw.RATE
        r.clears = self.earpiece.clears
        if stream is not None:
            r.seconds_sent = stream.chunks_sent * CHUNK_MS / 1000
            r.marks_echoed = stream.marks_echoed
            r.ignored_messages = stream.ignored
