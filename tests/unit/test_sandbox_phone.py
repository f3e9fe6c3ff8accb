"""The sandbox plays the phone network: a Twilio-like phone calls a voice webhook, follows
the TwiML, talks Twilio Media Streams in real time, and Twilio's REST API hangs it up.

The far end is a small Twilio-speaking server of the tests' own (``tests.doubles.twilio_server``),
which checks the phone's messages as plain JSON against Twilio's documented shapes; one test
puts Pipecat's own Twilio code (its provider detection and ``TwilioFrameSerializer``) there.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import warnings
from collections.abc import AsyncIterator, Callable, MutableMapping
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from aiohttp import WSMsgType, web

from callfleet.audio import rms
from sandbox.telephony import mulaw, twiml, voice
from sandbox.telephony.lines import LineError, RemoteCarrier
from sandbox.telephony.network import ACCOUNT_SID
from sandbox.telephony.phone import HungUpBy, Phone, PhoneOptions
from sandbox.telephony.signature import sign
from sandbox.telephony.transcripts import LocalTranscripts, RemoteTranscripts
from tests.doubles.twilio_server import TwilioServer, connect_twiml, hang_up


class ManualClock:
    """The phone's clock, moved by the test: what the phone sends and plays follows it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[TwilioServer]:
    srv = TwilioServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def b64_ulaw(ulaw: bytes) -> str:
    return base64.b64encode(ulaw).decode()


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.01)
    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise TimeoutError(f"never: {what}") from None


# -- the pieces --------------------------------------------------------------------------------

def test_mulaw_codes_every_sample_and_every_code_as_g711_does() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # the reference: deprecated, still in 3.11
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert mulaw.encode(every_sample) == audioop.lin2ulaw(every_sample, 2)
    assert mulaw.decode(bytes(range(256))) == audioop.ulaw2lin(bytes(range(256)), 2)
    assert mulaw.encode(bytes(2)) == bytes([mulaw.SILENCE])


def test_the_signature_is_twilios_for_its_documented_example() -> None:
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    assert sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twiml_verbs_are_followed_in_order_with_the_streams_parameters() -> None:
    document = ('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Connecting you</Say><Pause length="2"/>'
                '<Connect><Stream url="wss://bot.example/ws"><Parameter name="tenant" value="t1"/>'
                '<Parameter name="lang" value="en"/></Stream></Connect><Gather/><Hangup/></Response>')
    verbs = twiml.parse(document)
    assert [v.name for v in verbs] == ["Say", "Pause", "Connect/Stream", "Gather", "Hangup"]
    assert verbs[0].text == "Connecting you" and verbs[1].seconds == 2.0
    assert verbs[2].url == "wss://bot.example/ws" and verbs[2].parameters == {"tenant": "t1", "lang": "en"}
    assert verbs[3].verb is twiml.Verb.OTHER
    assert twiml.parse('<Response><Reject reason="busy"/></Response>')[0].reason == "busy"


@pytest.mark.parametrize("document", ["busy", "<Html/>", "<Response><Connect><Stream/></Connect></Response>"])
def test_anything_but_a_response_with_usable_verbs_is_not_twiml(document: str) -> None:
    with pytest.raises(twiml.TwimlError):
        twiml.parse(document)


# -- the webhook -------------------------------------------------------------------------------

async def test_the_phone_posts_twilios_voice_webhook_signed_with_the_auth_token(server: TwilioServer) -> None:
    server.twiml = "<Response><Hangup/></Response>"
    phone = Phone(PhoneOptions(server.webhook_url, from_number="+15551230001", to_number="+15559870002",
                               auth_token="secret-token"))
    await phone.dial()
    report = await phone.ended()
    (form, headers), = server.webhooks
    assert form["AccountSid"] == ACCOUNT_SID and form["CallSid"] == report.call_sid
    assert report.call_sid.startswith("CA") and len(report.call_sid) == 34
    assert (form["From"], form["To"], form["Caller"], form["Called"]) == ("+15551230001", "+15559870002",
                                                                          "+15551230001", "+15559870002")
    assert (form["CallStatus"], form["Direction"], form["ApiVersion"]) == ("ringing", "inbound", "2010-04-01")
    assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    # Twilio's algorithm, by hand: the full URL, then each name and value sorted by name.
    payload = server.webhook_url + "".join(k + v for k, v in sorted(form.items()))
    expected = base64.b64encode(hmac.new(b"secret-token", payload.encode(), hashlib.sha1).digest()).decode()
    assert headers["X-Twilio-Signature"] == expected
    assert report.hung_up_by is HungUpBy.SERVER and report.verbs == ["Hangup"]


async def test_an_unsigned_call_carries_no_signature(server: TwilioServer) -> None:
    server.twiml = "<Response/>"
    phone = Phone(PhoneOptions(server.webhook_url))
    await phone.dial()
    assert (await phone.ended()).reason == "the TwiML ran out"
    assert "X-Twilio-Signature" not in server.webhooks[0][1]


@pytest.mark.parametrize(("twiml_answer", "status", "by", "reason"), [
    ('<Response><Reject reason="busy"/></Response>', 200, HungUpBy.REJECTED, "rejected: busy"),
    ("<Response><Say>Goodbye</Say><Hangup/></Response>", 200, HungUpBy.SERVER, "the TwiML said <Hangup/>"),
    ("<Response/>", 500, HungUpBy.FAILED, "the webhook answered HTTP 500"),
    ("it is not XML", 200, HungUpBy.FAILED, "the webhook's answer is not TwiML"),
])
async def test_what_the_webhook_answers_is_reported(server: TwilioServer, twiml_answer: str, status: int,
                                                     by: HungUpBy, reason: str) -> None:
    server.twiml, server.status = twiml_answer, status
    phone = Phone(PhoneOptions(server.webhook_url))
    await phone.dial()
    report = await phone.ended()
    assert report.hung_up_by is by and report.reason.startswith(reason)
    assert report.webhook_status == status and not report.stream_opened


async def test_an_unreachable_webhook_fails_the_call() -> None:
    phone = Phone(PhoneOptions("http://127.0.0.1:9/voice"))
    await phone.dial()
    report = await phone.ended()
    assert report.hung_up_by is HungUpBy.FAILED and "could not be reached" in report.reason


# -- the Media Stream ----------------------------------------------------------------------------

async def test_the_stream_opens_with_connected_and_start_carrying_the_twiml_parameters(server: TwilioServer) -> None:
    phone = Phone(PhoneOptions(server.webhook_url, auth_token="secret-token"))
    await phone.dial()
    assert phone.connected
    await server.until(lambda: len(server.of("media")) >= 1, "media")
    connected, start = server.received[0], server.received[1]
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    call_sid, stream_sid = phone.report.call_sid, start["streamSid"]
    assert stream_sid.startswith("MZ") and len(stream_sid) == 34
    assert start == {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
        "accountSid": ACCOUNT_SID, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
        "customParameters": {"tenant": "t1", "lang": "en"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
    # The handshake is signed too: the Stream's URL, no parameters.
    assert server.handshake_headers["X-Twilio-Signature"] == sign("secret-token", server.stream_url)
    report = await phone.hang_up()
    assert report.stream_url == server.stream_url and report.parameters == {"tenant": "t1", "lang": "en"}


async def test_media_goes_out_in_20_ms_chunks_one_per_20_ms_of_the_phones_clock(server: TwilioServer) -> None:
    clock = ManualClock()
    phone = Phone(PhoneOptions(server.webhook_url, clock=clock))
    await phone.dial()
    await server.until(lambda: len(server.of("media")) == 1, "the first chunk")
    await asyncio.sleep(0.2)  # ten chunks' worth of real time: the phone's clock has not moved
    assert len(server.of("media")) == 1
    clock.now = 1.0
    await server.until(lambda: len(server.of("media")) == 51, "a second of chunks")
    await asyncio.sleep(0.2)
    assert len(server.of("media")) == 51  # not one ahead of its clock
    await phone.hang_up()
    media = server.of("media")
    assert [m["media"]["chunk"] for m in media] == [str(n) for n in range(1, 52)]
    assert [m["media"]["timestamp"] for m in media] == [str(20 * n) for n in range(51)]
    assert {m["media"]["track"] for m in media} == {"inbound"}
    assert {len(base64.b64decode(m["media"]["payload"])) for m in media} == {160}
    assert {m["streamSid"] for m in media} == {server.stream_sid}
    numbers = [int(m["sequenceNumber"]) for m in server.received[1:]]
    assert numbers == list(range(1, len(numbers) + 1))  # every message after connected, counted


async def test_what_the_server_sends_is_played_out_at_8_khz_and_marks_echo_once_played(server: TwilioServer) -> None:
    clock = ManualClock()
    phone = Phone(PhoneOptions(server.webhook_url, clock=clock))
    await phone.dial()
    await server.until(lambda: server.of("media"), "media")
    said = voice.from_tone(440, 1.0)
    # Faster than real time, as Pipecat sends: a second of audio at once, then a mark.
    for at in range(0, len(said), 800):
        await server.send({"event": "media", "streamSid": server.stream_sid, "media": {"payload": b64_ulaw(said[at:at + 800])}})
    await server.send({"event": "mark", "streamSid": server.stream_sid, "mark": {"name": "greeting"}})
    await asyncio.sleep(0.2)
    assert server.of("mark") == []  # not played yet: the phone's clock has not moved
    clock.now = 0.5
    await asyncio.sleep(0.2)
    assert server.of("mark") == []  # half of it played
    clock.now = 1.1
    await server.until(lambda: server.of("mark"), "the mark echoed")
    mark = server.of("mark")[0]
    assert mark["mark"] == {"name": "greeting"} and mark["streamSid"] == server.stream_sid
    report = await phone.hang_up()
    assert report.seconds_heard == 1.0 and report.marks_echoed == 1
    heard = phone.heard_pcm()
    assert rms(heard[: 8000 * 2]) > 3000  # the tone, from the start of the stream (8 kHz, 16-bit)


async def test_a_mark_with_nothing_buffered_is_echoed_at_once(server: TwilioServer) -> None:
    phone = Phone(PhoneOptions(server.webhook_url, clock=ManualClock()))
    await phone.dial()
    await server.until(lambda: server.of("media"), "media")
    await server.send({"event": "mark", "streamSid": server.stream_sid, "mark": {"name": "nothing-said"}})
    await server.until(lambda: server.of("mark"), "the mark echoed")
    await phone.hang_up()


async def test_clear_drops_what_is_not_yet_played_and_echoes_the_pending_marks(server: TwilioServer) -> None:
    clock = ManualClock()
    phone = Phone(PhoneOptions(server.webhook_url, clock=clock))
    await phone.dial()
    await server.until(lambda: server.of("media"), "media")
    await server.send({"event": "media", "streamSid": server.stream_sid, "media": {"payload": b64_ulaw(voice.from_tone(300, 2.0))}})
    await server.send({"event": "mark", "streamSid": server.stream_sid, "mark": {"name": "sentence-1"}})
    clock.now = 0.5
    await until(lambda: phone.earpiece.heard_bytes >= 4000, "half a second played")
    await server.send({"event": "clear", "streamSid": server.stream_sid})
    await server.until(lambda: server.of("mark"), "the pending mark echoed")
    clock.now = 3.0
    await until(lambda: phone.stream is not None and phone.stream.chunks_sent >= 151, "three seconds of stream")
    report = await phone.hang_up()
    assert report.clears == 1 and server.of("mark")[0]["mark"]["name"] == "sentence-1"
    assert report.seconds_heard + report.seconds_cleared == 2.0
    assert 0.5 <= report.seconds_heard < 1.0  # the rest was dropped, never played


async def test_the_phone_records_what_it_hears_and_the_server_hears_what_it_says(server: TwilioServer) -> None:
    server.echo = True
    phone = Phone(PhoneOptions(server.webhook_url))
    await phone.dial()
    assert await phone.say(voice.from_tone(440, 0.6))
    await until(lambda: phone.earpiece.heard_bytes >= 4800, "the echo played out")
    report = await phone.hang_up()
    assert report.seconds_spoken == 0.6 and report.seconds_heard >= 0.6
    sent = b"".join(base64.b64decode(m["media"]["payload"]) for m in server.of("media"))
    assert rms(mulaw.decode(sent)) > 1000
    assert rms(phone.heard_pcm()) > 1000


async def test_the_phone_hangs_up_mid_sentence_with_stop_as_its_last_message(server: TwilioServer) -> None:
    phone = Phone(PhoneOptions(server.webhook_url))
    await phone.dial()
    saying = asyncio.create_task(phone.say(voice.from_tone(220, 5.0)))
    await server.until(lambda: len(server.of("media")) >= 10, "ten chunks")
    report = await phone.hang_up()
    assert await saying is False  # cut off
    await asyncio.wait_for(server.closed.wait(), 5)
    assert server.received[-1] == {"event": "stop", "sequenceNumber": server.received[-1]["sequenceNumber"],
                                   "streamSid": server.stream_sid,
                                   "stop": {"accountSid": ACCOUNT_SID, "callSid": report.call_sid}}
    assert report.hung_up_by is HungUpBy.PHONE and 0 < report.seconds_spoken < 5.0


async def test_the_phone_presses_keys_as_dtmf_events(server: TwilioServer) -> None:
    phone = Phone(PhoneOptions(server.webhook_url))
    await phone.dial()
    await phone.press("1#")
    await server.until(lambda: len(server.of("dtmf")) == 2, "two key presses")
    assert [m["dtmf"] for m in server.of("dtmf")] == [{"track": "inbound_track", "digit": "1"},
                                                      {"track": "inbound_track", "digit": "#"}]
    await phone.hang_up()


async def test_when_the_server_closes_the_stream_the_twiml_goes_on_then_the_call_ends(server: TwilioServer) -> None:
    server.twiml = connect_twiml(server.stream_url, after="<Say>Goodbye</Say>")
    phone = Phone(PhoneOptions(server.webhook_url))
    await phone.dial()
    await server.until(lambda: server.of("media"), "media")
    await server.close()
    report = await asyncio.wait_for(phone.ended(), 5)
    assert report.verbs == ["Connect/Stream", "Say"] and report.said == ["Goodbye"]
    assert report.hung_up_by is HungUpBy.SERVER and report.reason == "the server closed the stream"
    assert server.of("stop") == []  # the server hung up: nothing to tell it


async def test_a_stream_that_cannot_be_opened_fails_the_call(server: TwilioServer) -> None:
    server.twiml = connect_twiml("ws://127.0.0.1:9/nowhere")
    phone = Phone(PhoneOptions(server.webhook_url))
    await phone.dial()
    report = await phone.ended()
    assert report.hung_up_by is HungUpBy.FAILED and "could not be opened" in report.reason


# -- Twilio's REST API, served by the sandbox ------------------------------------------------------

async def test_the_rest_api_hangs_the_call_up_and_the_phone_sends_stop(server: TwilioServer, sandbox: Any) -> None:
    phone = Phone(PhoneOptions(server.webhook_url, carrier=sandbox.phones))
    await phone.dial()
    await server.until(lambda: server.of("media"), "media")
    call_sid = phone.report.call_sid
    assert call_sid in sandbox.phones.calls
    status, call = await hang_up(sandbox.twilio_api_url, ACCOUNT_SID, call_sid)
    assert status == 200
    assert (call["sid"], call["account_sid"], call["status"], call["direction"]) == (call_sid, ACCOUNT_SID, "completed",
                                                                                     "inbound")
    assert call["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json"
    report = await asyncio.wait_for(phone.ended(), 5)
    assert report.hung_up_by is HungUpBy.API
    await asyncio.wait_for(server.closed.wait(), 5)
    assert server.received[-1]["event"] == "stop"
    assert call_sid not in sandbox.phones.calls
    status, error = await hang_up(sandbox.twilio_api_url, ACCOUNT_SID, call_sid)
    assert status == 404 and error["code"] == 20404 and error["status"] == 404  # what Pipecat takes as "already ended"


async def test_the_rest_api_takes_only_the_accounts_credentials_and_a_status(server: TwilioServer, sandbox: Any) -> None:
    sandbox.phones.auth_token = "the-token"
    phone = Phone(PhoneOptions(server.webhook_url, carrier=sandbox.phones))
    await phone.dial()
    call_sid = phone.report.call_sid
    status, error = await hang_up(sandbox.twilio_api_url, ACCOUNT_SID, call_sid, auth=(ACCOUNT_SID, "wrong"))
    assert status == 401 and error["code"] == 20003
    other_account = "AC" + "1" * 32
    status, error = await hang_up(sandbox.twilio_api_url, other_account, call_sid, auth=(other_account, "the-token"))
    assert status == 404  # the token is good, but the call is not that account's
    status, error = await hang_up(sandbox.twilio_api_url, ACCOUNT_SID, call_sid, auth=(ACCOUNT_SID, "the-token"),
                                  status="ringing")
    assert status == 400
    status, call = await hang_up(sandbox.twilio_api_url, ACCOUNT_SID, call_sid, auth=(ACCOUNT_SID, "the-token"),
                                 status="canceled")
    assert status == 200 and call["status"] == "in-progress"  # canceled leaves an answered call alone
    assert phone.connected
    status, call = await hang_up(sandbox.twilio_api_url, ACCOUNT_SID, call_sid, auth=(ACCOUNT_SID, "the-token"))
    assert status == 200 and (await asyncio.wait_for(phone.ended(), 5)).hung_up_by is HungUpBy.API


async def test_a_phone_in_another_process_is_hung_up_over_its_line(server: TwilioServer, sandbox: Any) -> None:
    phone = Phone(PhoneOptions(server.webhook_url, carrier=RemoteCarrier(sandbox.base_url)))
    await phone.dial()
    call_sid = phone.report.call_sid
    assert list(sandbox.phones.calls) == [call_sid]
    assert server.webhooks[0][0]["CallSid"] == call_sid
    status, _ = await hang_up(sandbox.twilio_api_url, ACCOUNT_SID, call_sid)
    assert status == 200
    report = await asyncio.wait_for(phone.ended(), 5)
    assert report.hung_up_by is HungUpBy.API
    await until(lambda: not sandbox.phones.calls, "the line closed")


async def test_a_call_ended_by_the_phone_leaves_the_network(server: TwilioServer, sandbox: Any) -> None:
    phone = Phone(PhoneOptions(server.webhook_url, carrier=RemoteCarrier(sandbox.base_url)))
    await phone.dial()
    await phone.hang_up()
    await until(lambda: not sandbox.phones.calls, "the line closed")
    status, error = await hang_up(sandbox.twilio_api_url, ACCOUNT_SID, phone.report.call_sid)
    assert status == 404 and error["code"] == 20404


async def test_no_line_to_a_sandbox_that_is_not_there_is_an_error(server: TwilioServer) -> None:
    phone = Phone(PhoneOptions(server.webhook_url, carrier=RemoteCarrier("http://127.0.0.1:9")))
    with pytest.raises(LineError):
        await phone.dial()
    assert server.webhooks == []  # no call placed


# -- what the phone says reaches the stand-in speech-to-text ----------------------------------------

async def test_the_text_the_phone_says_is_declared_to_the_sandboxs_transcripts(server: TwilioServer, sandbox: Any) -> None:
    phone = Phone(PhoneOptions(server.webhook_url, transcripts=LocalTranscripts(sandbox.ai.script)))
    await phone.dial()
    sentence = voice.silence(0.1)
    assert await phone.say(sentence, text="what is the weather")
    assert sandbox.ai.script.pending() == ["what is the weather"]
    await phone.hang_up()
    remote = Phone(PhoneOptions(server.webhook_url, transcripts=RemoteTranscripts(sandbox.base_url)))
    await remote.dial()
    assert await remote.say(sentence, text="and tomorrow")
    assert sandbox.ai.script.pending() == ["what is the weather", "and tomorrow"]
    await remote.hang_up()


async def test_a_sentence_is_spoken_by_espeak_as_8_khz_mulaw() -> None:
    ulaw = await voice.from_text("Hello, this is a phone call.")
    assert len(ulaw) > 8000  # over a second of speech
    assert rms(mulaw.decode(ulaw)) > 500


# -- Pipecat's own Twilio code at the far end ----------------------------------------------------------

class StarletteText:
    """The part of a Starlette WebSocket that ``parse_telephony_websocket`` reads."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def iter_text(self) -> AsyncIterator[str]:
        async for message in self.ws:
            yield message.data


class PipecatEcho:
    """A bot's end of the call built from Pipecat's Twilio pieces: it detects the provider as
    Pipecat's runner does, and echoes what it hears through ``TwilioFrameSerializer``, whose
    hang-up goes to the sandbox's REST API."""

    def __init__(self, twilio_api_url: str) -> None:
        self.twilio_api_url = twilio_api_url
        self.detected: tuple[str, Any] | None = None
        self.serializer: Any = None
        self.ws: web.WebSocketResponse | None = None
        self.frames_in = 0
        self.digits: list[str] = []
        self.closed = asyncio.Event()

    async def media(self, request: web.Request) -> web.WebSocketResponse:
        from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame, OutputAudioRawFrame
        from pipecat.processors.frame_processor import FrameProcessorSetup
        from pipecat.runner.utils import parse_telephony_websocket
        from pipecat.serializers.twilio import TwilioFrameSerializer

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        transport, call = await parse_telephony_websocket(cast(Any, StarletteText(ws)))
        self.detected = (transport, call)
        self.serializer = TwilioFrameSerializer(call["stream_id"], call["call_id"], account_sid=ACCOUNT_SID,
                                                auth_token="any-token", base_url=self.twilio_api_url)
        await self.serializer.setup(cast(FrameProcessorSetup, SimpleNamespace(audio_in_sample_rate=16000)))
        async for message in ws:
            frame = await self.serializer.deserialize(message.data)
            if isinstance(frame, InputAudioRawFrame):
                self.frames_in += 1
                out = await self.serializer.serialize(OutputAudioRawFrame(frame.audio, frame.sample_rate, 1))
                if out:
                    await ws.send_str(out)
            elif isinstance(frame, InputDTMFFrame):
                self.digits.append(frame.button.value)
        self.closed.set()
        return ws

    async def interrupt(self) -> None:
        from pipecat.frames.frames import InterruptionFrame

        assert self.ws is not None
        await self.ws.send_str(await self.serializer.serialize(InterruptionFrame()))

    async def end(self) -> None:
        from pipecat.frames.frames import EndFrame

        assert await self.serializer.serialize(EndFrame()) is None  # it hangs up instead


async def test_pipecat_takes_the_phone_for_twilio_and_its_serializer_talks_and_hangs_up(sandbox: Any) -> None:
    bot = PipecatEcho(sandbox.twilio_api_url)
    app = web.Application()
    server = TwilioServer()  # answers the webhook; the stream goes to Pipecat's end
    app.router.add_get("/ws", bot.media)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await server.start()
    server.twiml = connect_twiml(f"ws://127.0.0.1:{port}/ws", {"from_number": "+15551230001", "user": "u1"})
    try:
        phone = Phone(PhoneOptions(server.webhook_url, carrier=sandbox.phones))
        await phone.dial()
        saying = asyncio.create_task(phone.say(voice.from_tone(440, 3.0)))
        await until(lambda: phone.earpiece.heard_bytes >= 4000, "Pipecat's echo played out")
        assert bot.detected is not None
        transport, call = bot.detected
        assert transport == "twilio"
        assert (call.stream_id, call.call_id) == (phone.report.stream_sid, phone.report.call_sid)
        assert call.body == {"from_number": "+15551230001", "user": "u1"} and call.from_number == "+15551230001"
        await phone.press("7")
        await until(lambda: bot.digits == ["7"], "Pipecat's DTMF frame")
        await bot.interrupt()
        await until(lambda: phone.earpiece.clears == 1, "Pipecat's clear")
        await bot.end()  # EndFrame: Pipecat POSTs Status=completed to the sandbox
        report = await asyncio.wait_for(phone.ended(), 5)
        assert report.hung_up_by is HungUpBy.API
        assert await saying is False
        await asyncio.wait_for(bot.closed.wait(), 5)
        assert bot.frames_in > 0 and rms(phone.heard_pcm()) > 1000  # the tone, there and back
    finally:
        await server.stop()
        await runner.cleanup()


class AsgiWebSocket:
    """An aiohttp WebSocket seen as ASGI (``scope``, ``receive``, ``send``), so that a real
    Starlette ``WebSocket`` -- what Pipecat's FastAPIWebsocketTransport takes -- runs on a
    real socket without an ASGI server."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.ws = web.WebSocketResponse()
        self._connected = False

    def scope(self) -> dict[str, Any]:
        return {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": self.request.path,
                "raw_path": self.request.path.encode(), "query_string": self.request.query_string.encode(),
                "headers": [(k.lower().encode(), v.encode()) for k, v in self.request.headers.items()],
                "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0), "subprotocols": []}

    async def receive(self) -> dict[str, Any]:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        message = await self.ws.receive()
        if message.type is WSMsgType.TEXT:
            return {"type": "websocket.receive", "text": message.data}
        if message.type is WSMsgType.BINARY:
            return {"type": "websocket.receive", "bytes": message.data}
        return {"type": "websocket.disconnect", "code": self.ws.close_code or 1000}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            await self.ws.prepare(self.request)
        elif message["type"] == "websocket.send":
            if message.get("text") is not None:
                await self.ws.send_str(message["text"])
            else:
                await self.ws.send_bytes(message["bytes"])
        elif message["type"] == "websocket.close":
            await self.ws.close(code=message.get("code", 1000))


async def test_a_pipecat_bot_on_fastapis_websocket_transport_talks_with_the_phone_and_hangs_it_up(sandbox: Any) -> None:
    pytest.importorskip("fastapi", reason="Pipecat's FastAPIWebsocketTransport needs fastapi (pipecat-ai[websocket])")
    from pipecat.frames.frames import EndFrame, InputAudioRawFrame, OutputAudioRawFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.runner.utils import parse_telephony_websocket
    from pipecat.serializers.twilio import TwilioFrameSerializer
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
    from pipecat.workers.runner import WorkerRunner
    from starlette.websockets import WebSocket

    class Echo(FrameProcessor):
        async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, InputAudioRawFrame):
                frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                            num_channels=frame.num_channels)
            await self.push_frame(frame, direction)

    workers: list[PipelineWorker] = []
    detected: list[str] = []

    async def bot(request: web.Request) -> web.WebSocketResponse:
        # What a Pipecat bot.py does with WebSocketRunnerArguments for a Twilio call.
        asgi = AsgiWebSocket(request)
        websocket = WebSocket(asgi.scope(), asgi.receive, asgi.send)
        await websocket.accept()
        transport_type, call = await parse_telephony_websocket(websocket)
        detected.append(transport_type)
        serializer = TwilioFrameSerializer(call.stream_id, call.call_id, account_sid=ACCOUNT_SID,
                                           auth_token="any-token", base_url=sandbox.twilio_api_url)
        transport = FastAPIWebsocketTransport(websocket, FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, serializer=serializer, allowed_origins=[]))
        worker = PipelineWorker(Pipeline([transport.input(), Echo(), transport.output()]),
                                params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
                                idle_timeout_secs=None)
        workers.append(worker)

        @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator]
        async def on_client_disconnected(transport: Any, websocket: Any) -> None:
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()
        return asgi.ws

    app = web.Application()
    app.router.add_get("/ws", bot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = TwilioServer()  # answers the webhook; the stream goes to the bot
    await server.start()
    server.twiml = connect_twiml(f"ws://127.0.0.1:{port}/ws")
    try:
        phone = Phone(PhoneOptions(server.webhook_url, carrier=sandbox.phones))
        await phone.dial()
        saying = asyncio.create_task(phone.say(voice.from_tone(440, 3.0)))
        await until(lambda: phone.earpiece.heard_bytes >= 4000, "the bot's echo played out")
        assert detected == ["twilio"]
        await workers[0].queue_frame(EndFrame())  # the bot is done: Pipecat hangs the call up
        report = await asyncio.wait_for(phone.ended(), 10)
        assert report.hung_up_by is HungUpBy.API
        assert await saying is False
        assert rms(phone.heard_pcm()) > 1000  # its own tone, through Pipecat and back
    finally:
        await server.stop()
        await runner.cleanup()
