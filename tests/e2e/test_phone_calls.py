"""Phone calls over WebSockets, end to end: the sandbox's phone network calls the real
supervisor, whose workers run a real Pipecat bot (``tests/bots/phone_echo.py``) that builds
its transport with Pipecat's own ``create_transport``.

The phone is the sandbox's (``sandbox.telephony``): it posts Twilio's voice webhook, follows
the TwiML, streams μ-law in real time and hears the bot; Twilio's REST API for its calls is
the sandbox's, where the bot's ``TwilioFrameSerializer`` hangs calls up. Bad streams are
played by a bare Twilio Media Streams client (``MediaClient``).

Most tests share one supervisor (``fleet``); those that need Twilio's signature, a hang-up
API that fails or a pool of 8 share a second one (``strict``).
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from sandbox.telephony import voice
from sandbox.telephony.lines import RemoteCarrier
from sandbox.telephony.network import ACCOUNT_SID
from sandbox.telephony.phone import CallReport, HungUpBy, Phone, PhoneOptions
from sandbox.telephony.signature import sign
from tests.conftest import SandboxProcess, dropped
from tests.supervisor_harness import SupervisorProcess, alive
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fastapi") is None,
                                reason="pipecat-ai[websocket] is not installed (the pipecat extra)")

RECORD_ENV = "CALLFLEET_TEST_BOT_RECORD"
AUTH_TOKEN = "test-twilio-auth-token"
PROFILES = """
[profiles.phone_echo]
kind = "pipecat"
bot = "tests/bots/phone_echo.py:bot"
secrets = ["CALLFLEET_TEST_BOT_RECORD", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]

[profiles.phone_deaf]
kind = "pipecat"
bot = "tests/bots/phone_echo.py:bot_deaf"
secrets = ["CALLFLEET_TEST_BOT_RECORD"]

[profiles.echo]
kind = "echo"
"""
HANDSHAKE_TIMEOUT_S = 2
TTL_S = 6
MAX_QUEUED = 100


class Fleet:
    """A supervisor taking phone calls, the sandbox it uses (Daily's and the phone
    network's stand-in) and the test bots' record."""

    def __init__(self, sup: SupervisorProcess, sandbox: SandboxProcess, record: Path) -> None:
        self.sup = sup
        self.sandbox = sandbox
        self.record = record

    @property
    def webhook_url(self) -> str:
        return self.sup.url + "/telephony/twilio"

    def records(self, session_id: str, event: str | None = None) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        found = [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]
        return [r for r in found if r.get("session_id") == session_id and (event is None or r["event"] == event)]

    async def wait_record(self, session_id: str, event: str, timeout: float = 15) -> dict[str, Any]:
        await wait_until(lambda: bool(self.records(session_id, event)), timeout, f"a {event!r} record")
        return self.records(session_id, event)[0]

    def phone(self, **options: Any) -> Phone:
        return Phone(PhoneOptions(self.webhook_url, carrier=RemoteCarrier(self.sandbox.base_url), **options))

    async def ended(self, session_id: str, timeout: float = 20) -> dict[str, Any]:
        return await self.sup.wait_session(session_id, lambda d: d["state"] in ("ended", "failed"), timeout=timeout)

    async def session_of(self, report: CallReport) -> str:
        sid = report.parameters.get("session_id")
        assert sid, report
        return sid

    async def ws_start(self, profile: str = "phone_echo", body: Any = None) -> dict[str, Any]:
        status, reply, _ = await self.sup.http("POST", "/start", json={"transport": "websocket", "profile": profile,
                                                                       "body": body})
        assert status == 200, (status, reply)
        return dict(reply)

    def live_sessions(self) -> list[dict[str, Any]]:
        result = self.sup.ctl("--json", "sessions")
        assert result.returncode == 0, result.stderr
        return [s for s in json.loads(result.stdout) if s["state"] not in ("ended", "failed")]


def start_fleet(tmp: Path, record: Path, *, env: dict[str, str] | None = None, **overrides: Any
                ) -> tuple[SupervisorProcess, SandboxProcess]:
    sandbox = SandboxProcess("--no-rate-limits")
    profiles = tmp / "profiles.toml"
    profiles.write_text(PROFILES)
    overrides.setdefault("supervisor", {})["profiles"] = str(profiles)
    telephony = {"twilio_profile": "phone_echo", "handshake_timeout_s": HANDSHAKE_TIMEOUT_S, "ws_url_ttl_s": TTL_S,
                 "max_queued_messages": MAX_QUEUED, **overrides.pop("telephony", {})}
    sup = SupervisorProcess(tmp, sandbox.port, telephony=telephony,
                            env={RECORD_ENV: str(record), "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                                 "TWILIO_AUTH_TOKEN": AUTH_TOKEN, **(env or {})}, **overrides)
    try:
        sup.start(timeout=60)
    except BaseException:
        sandbox.stop()
        raise
    return sup, sandbox


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, drop_dir: Path) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("phone-fleet")
    record = dropped(drop_dir, "phone-bots.jsonl")
    sup, sandbox = start_fleet(tmp, record, pool={"min_idle": 2, "max_workers": 6},
                               sessions={"failover": True, "idle_timeout_s": 30})
    try:
        yield Fleet(sup, sandbox, record)
    finally:
        sup.stop()
        sandbox.stop()


def tone_ulaw(seconds: float, hz: float = 440.0) -> bytes:
    return voice.from_tone(hz, seconds)


def loud_seconds(pcm: bytes) -> float:
    """How much of 8 kHz PCM is sound rather than silence, in 20 ms chunks."""
    samples = np.frombuffer(pcm[: len(pcm) // 320 * 320], dtype="<i2").astype(np.float64).reshape(-1, 160)
    return float(np.sum(np.sqrt(np.mean(samples**2, axis=1)) > 1000)) * 0.02


async def in_conversation(phone: Phone) -> None:
    """Until the phone hears the bot: its pipeline runs (a bot cancelled before its pipeline
    started has no serializer to hang up with)."""
    await phone.say(tone_ulaw(0.5))
    await wait_until(lambda: loud_seconds(phone.heard_pcm()) >= 0.2, 10, "the bot's echo")


# -- a bare Twilio Media Streams client, for streams the sandbox's phone would never send ----------


class MediaClient:
    """A WebSocket that speaks as much Twilio Media Streams as a test asks of it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession) -> None:
        self.ws = ws
        self.session = session
        self.stream_sid = "MZ" + os.urandom(16).hex()
        self.call_sid = "CA" + os.urandom(16).hex()
        self.received: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str] | None = None) -> MediaClient:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, headers=headers, max_msg_size=1 << 22)
        except BaseException:
            await session.close()
            raise
        return cls(ws, session)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def start(self, **parameters: str) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send({"event": "start", "sequenceNumber": "1", "streamSid": self.stream_sid,
                         "start": {"accountSid": ACCOUNT_SID, "streamSid": self.stream_sid, "callSid": self.call_sid,
                                   "tracks": ["inbound"], "customParameters": parameters,
                                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})

    async def media(self, ulaw: bytes) -> None:
        for i in range(0, len(ulaw), 160):
            await self.send({"event": "media", "streamSid": self.stream_sid,
                             "media": {"track": "inbound", "payload": base64.b64encode(ulaw[i:i + 160]).decode()}})

    async def next_event(self, event: str, timeout: float = 10) -> dict[str, Any]:
        """Read until the server sends a message of ``event``; returns it."""
        async def read() -> dict[str, Any]:
            while True:
                msg = await self.ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                self.received.append(json.loads(msg.data))
                if self.received[-1].get("event") == event:
                    return self.received[-1]
        return await asyncio.wait_for(read(), timeout)

    async def closed(self, timeout: float = 15) -> tuple[int | None, str]:
        """Read until the server closes the socket: its close code and reason."""
        async def read() -> tuple[int | None, str]:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.received.append(json.loads(msg.data))
            return self.ws.close_code, (self.ws.close_message or b"").decode() if isinstance(
                getattr(self.ws, "close_message", None), bytes) else str(getattr(self.ws, "close_message", "") or "")
        return await asyncio.wait_for(read(), timeout)

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


async def refused(url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status a WebSocket handshake to ``url`` is refused with."""
    try:
        client = await MediaClient.connect(url, headers)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await client.close()
    raise AssertionError(f"{url} was not refused")


# -- a call, end to end ------------------------------------------------------------------------------


async def test_a_twilio_call_reaches_the_bots_create_transport_and_hears_itself(fleet: Fleet) -> None:
    phone = fleet.phone(from_number="+15550001111", to_number="+15550002222")
    await phone.dial()
    report = phone.report
    assert report.stream_opened, report
    assert report.verbs == ["Connect/Stream"] and report.stream_url.startswith(fleet.sup.url.replace("http", "ws"))
    sid = await fleet.session_of(report)
    started = await fleet.wait_record(sid, "start")
    # Pipecat's own detection, in the bot: WebSocketRunnerArguments, Twilio, the call's numbers and parameters
    assert started["args"] == "WebSocketRunnerArguments" and started["transport_type"] == "twilio"
    assert started["call_data"]["call_id"] == report.call_sid and started["call_data"]["stream_id"] == report.stream_sid
    assert (started["call_data"]["from"], started["call_data"]["to"]) == ("+15550001111", "+15550002222")
    assert started["body"]["CallSid"] == report.call_sid and started["body"]["From"] == "+15550001111"
    await phone.say(tone_ulaw(1.0))
    await wait_until(lambda: loud_seconds(phone.heard_pcm()) >= 0.8, 10, "the tone's echo")
    detail = await fleet.sup.wait_session(sid, lambda d: d["state"] == "joined")
    assert detail["worker_pid"] == started["pid"] and detail["room_url"] is None
    caller = [p for p in detail["participants"] if not p["is_bot"]]
    assert caller == [{"id": f"twilio:{report.call_sid}", "name": "+15550001111", "is_bot": False}]
    assert detail["frames"]["in"] >= 40 and detail["frames"]["out"] >= 20  # the call's audio messages, both ways
    report = await phone.hang_up()
    ended = await fleet.ended(sid)
    assert ended["end_reason"] == "participant_left"
    await fleet.wait_record(sid, "disconnected")  # the bot heard the call end, as on Twilio
    stored = fleet.sup.stored(sid)
    assert stored.extra["phone"]["closed_by"] == "phone" and stored.extra["phone"]["provider"] == "twilio"


async def test_the_phone_hanging_up_mid_sentence_ends_the_session_and_frees_its_worker(fleet: Fleet) -> None:
    phone = fleet.phone()
    await phone.dial()
    sid = await fleet.session_of(phone.report)
    started = await fleet.wait_record(sid, "start")
    speaking = asyncio.ensure_future(phone.say(tone_ulaw(5.0)))
    await wait_until(lambda: loud_seconds(phone.heard_pcm()) >= 0.3, 10, "the bot echoing the sentence")
    report = await phone.hang_up()
    assert not await speaking  # cut off mid-sentence
    assert report.hung_up_by is HungUpBy.PHONE
    ended = await fleet.ended(sid)
    assert ended["end_reason"] == "participant_left" and ended["end_detail"] == "the caller hung up"
    await fleet.wait_record(sid, "disconnected")
    await wait_until(lambda: not alive(started["pid"]), 15, "the call's worker to exit (sessions_per_worker = 1)")


async def test_a_session_that_ends_first_hangs_the_call_up_through_twilios_api(fleet: Fleet) -> None:
    phone = fleet.phone()
    await phone.dial()
    sid = await fleet.session_of(phone.report)
    await in_conversation(phone)
    status, _, _ = await fleet.sup.http("DELETE", f"/sessions/{sid}")
    assert status == 200
    report = await asyncio.wait_for(phone.ended(), 15)
    # Pipecat's TwilioFrameSerializer, cancelled with its bot, ended the call at the sandbox's Twilio API; the
    # phone hears of it from the sandbox, maybe after the supervisor closed the call's socket.
    assert report.hung_up_by in (HungUpBy.API, HungUpBy.SERVER), report
    await wait_until(lambda: f"Successfully terminated Twilio call {report.call_sid}" in fleet.sup.log_path.read_text(),
                     10, "the bot's hang-up through Twilio's API")
    ended = await fleet.ended(sid)
    assert ended["end_reason"] == "stopped"


async def test_start_with_the_websocket_transport_answers_a_url_good_for_one_call(fleet: Fleet) -> None:
    started = await fleet.ws_start(body={"tenant": "t1"})
    sid, url = started["sessionId"], started["wsUrl"]
    assert url.startswith(fleet.sup.url.replace("http://", "ws://") + "/ws/phone_echo/" + sid + ".")
    detail = await fleet.sup.session(sid)
    assert detail["state"] == "assigned" and detail["room_url"] is None  # waiting for its call, no room
    client = await MediaClient.connect(url)
    try:
        await client.start(tenant_call="c7")
        args = await fleet.wait_record(sid, "start")
        assert args["transport_type"] == "twilio" and args["body"] == {"tenant": "t1"}
        assert args["call_data"]["body"] == {"tenant_call": "c7"}
        assert await refused(url) == 410  # used: each URL is good for one call
        assert await refused(url.replace(f"{sid}.", f"{sid}.x")) == 401  # not its token
        await client.media(tone_ulaw(0.5))
        echo = await client.next_event("media")  # the bot's echo, as Twilio's media message
        assert echo["streamSid"] == client.stream_sid and base64.b64decode(echo["media"]["payload"])
    finally:
        await client.close()
    ended = await fleet.ended(sid)
    assert ended["end_reason"] == "participant_left"


async def test_the_websocket_start_takes_only_hosted_bots_and_bodies_up_to_4_kb(fleet: Fleet) -> None:
    status, reply, _ = await fleet.sup.http("POST", "/start", json={"transport": "websocket", "profile": "echo"})
    assert status == 422 and "only kind" in reply["info"]
    status, reply, _ = await fleet.sup.http("POST", "/start", json={"transport": "websocket", "profile": "phone_echo",
                                                                     "body": {"blob": "x" * 4100}})
    assert status == 413 and "4 KB" in reply["info"]
    status, reply, _ = await fleet.sup.http("POST", "/start", json={"transport": "carrier-pigeon", "profile": "echo"})
    assert status == 400 and "transport" in reply["info"]
    assert not [s for s in fleet.live_sessions() if s["profile"] == "echo"]


async def test_an_unused_url_expires_with_its_session(fleet: Fleet) -> None:
    started = await fleet.ws_start()
    ended = await fleet.ended(started["sessionId"], timeout=TTL_S + 10)
    assert ended["end_reason"] == "join_failed" and f"within {TTL_S} s" in ended["error"]
    assert await refused(started["wsUrl"]) == 410


async def test_a_stream_for_a_session_that_already_ended_is_refused(fleet: Fleet) -> None:
    started = await fleet.ws_start()
    await fleet.sup.http("DELETE", f"/sessions/{started['sessionId']}")
    await fleet.ended(started["sessionId"])
    assert await refused(started["wsUrl"]) == 410


async def test_a_browser_origin_is_refused(fleet: Fleet) -> None:
    started = await fleet.ws_start()
    assert await refused(started["wsUrl"], {"Origin": "https://evil.example"}) == 403
    await fleet.sup.http("DELETE", f"/sessions/{started['sessionId']}")


@pytest.mark.parametrize(("first", "code", "reason"), [
    ([{"event": "connected", "protocol": "Call", "version": "1.0.0"}], 4008, "no start message"),
    (["this is not json"], 1007, "not JSON"),
    ([{"event": "connected"}, {"event": "start", "start": {"streamSid": "MZ1"}}], 4000, "unknown telephony provider"),
    (["x" * (70 * 1024)], 1009, "max_message_bytes"),
], ids=["never-starts", "garbage", "unknown-provider", "oversized"])
async def test_a_stream_that_does_not_start_properly_is_closed_with_a_reason_and_its_session_ends(
        fleet: Fleet, first: list[Any], code: int, reason: str) -> None:
    started = await fleet.ws_start()
    client = await MediaClient.connect(started["wsUrl"])
    try:
        for message in first:
            await client.ws.send_str(message if isinstance(message, str) else json.dumps(message))
        closed_code, _ = await client.closed(timeout=HANDSHAKE_TIMEOUT_S + 10)
    finally:
        await client.close()
    assert closed_code == code
    ended = await fleet.ended(started["sessionId"])
    assert ended["state"] == "failed" and ended["end_reason"] == "join_failed" and reason in ended["error"]
    assert not fleet.records(started["sessionId"])  # no bot ever saw it


async def test_a_bot_that_stops_reading_its_call_has_the_call_closed_with_a_reason(fleet: Fleet) -> None:
    started = await fleet.ws_start("phone_deaf")
    client = await MediaClient.connect(started["wsUrl"])
    try:
        await client.start()
        await fleet.wait_record(started["sessionId"], "start")
        await client.media(voice.silence((MAX_QUEUED + 50) * 0.02))  # more than it may leave unread
        code, _ = await client.closed()
    finally:
        await client.close()
    assert code == 1008
    ended = await fleet.ended(started["sessionId"])
    assert ended["end_reason"] == "call_ended" and "did not read its call" in ended["end_detail"]


async def test_a_worker_lost_mid_call_ends_the_call_since_a_phone_socket_cannot_be_rejoined(fleet: Fleet) -> None:
    phone = fleet.phone()
    await phone.dial()
    sid = await fleet.session_of(phone.report)
    started = await fleet.wait_record(sid, "start")
    os.kill(started["pid"], signal.SIGKILL)
    report = await asyncio.wait_for(phone.ended(), 15)
    assert report.hung_up_by is HungUpBy.SERVER  # the supervisor closed the call's socket
    ended = await fleet.ended(sid)
    assert ended["state"] == "failed" and ended["end_reason"] == "worker_crashed"
    assert "cannot be rejoined" in ended["error"] and ended["failovers"] == 0


# -- the worker's socket, as Pipecat uses it -------------------------------------------------------


def relayed(max_queued: int = 10) -> tuple[Any, list[Any]]:
    from protocol.messages import WebSocketCall
    from worker.phone_socket import RelayedSocket

    sent: list[Any] = []
    call = WebSocketCall(socket=7, path="/ws/p", headers=[("host", "x"), ("origin", "")], max_queued=max_queued)
    return RelayedSocket(call, sent.append), sent


async def test_the_relayed_socket_is_a_starlette_websocket_pipecat_parses_reads_and_writes() -> None:
    from pipecat.runner.utils import parse_telephony_websocket
    from starlette.websockets import WebSocketDisconnect, WebSocketState

    from protocol.messages import SocketClose, SocketText

    socket, sent = relayed()
    for message in PROVIDER_STARTS["twilio"]:
        socket.feed(SocketText(socket=7, text=json.dumps(message)))
    await socket.accept()
    ws = socket.websocket
    assert ws.client_state is WebSocketState.CONNECTED and ws.application_state is WebSocketState.CONNECTED
    provider, call = await parse_telephony_websocket(ws)
    assert provider == "twilio" and call.call_id == "CA1" and call.from_number == "+1"
    await ws.send_text('{"event": "media", "media": {"payload": ""}}')
    assert sent == [SocketText(socket=7, text='{"event": "media", "media": {"payload": ""}}')] and socket.media_out == 1
    socket.feed(SocketClose(socket=7, code=1000, reason="the phone hung up"))
    with pytest.raises(WebSocketDisconnect):
        await ws.receive_text()
    with pytest.raises(WebSocketDisconnect):  # Starlette's answer to sending on a socket whose peer is gone
        await ws.send_text("late")
    socket.finish()
    assert sent[-1] == SocketClose(socket=7, code=1000, reason="the bot ended")


async def test_a_bot_that_leaves_its_call_unread_has_it_closed_with_a_reason() -> None:
    from protocol.messages import SocketClose, SocketText

    socket, sent = relayed(max_queued=10)
    await socket.accept()
    for n in range(11):
        socket.feed(SocketText(socket=7, text=f'{{"event": "media", "n": {n}}}'))
    assert sent == [SocketClose(socket=7, code=1008, reason="the bot did not read its call: 11 messages waiting")]
    message = await socket.websocket.receive()
    assert message["type"] == "websocket.disconnect" and message["code"] == 1008


# -- the provider's rules, as Pipecat's ------------------------------------------------------------


PROVIDER_STARTS = {
    "twilio": [{"event": "connected"}, {"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1",
                                                                    "customParameters": {"from_number": "+1"}}}],
    "telnyx": [{"event": "connected"}, {"event": "start", "stream_id": "s1",
                                        "start": {"call_control_id": "cc1", "from": "+1", "to": "+2"}}],
    "plivo": [{"event": "start", "start": {"streamId": "s1", "callId": "c1"}}],
    "exotel": [{"event": "connected"}, {"event": "start", "start": {"stream_sid": "s1", "call_sid": "c1",
                                                                    "account_sid": "a1", "from": "+1"}}],
}


@pytest.mark.parametrize("provider", sorted(PROVIDER_STARTS))
def test_the_supervisor_detects_each_provider_as_pipecat_does(provider: str) -> None:
    from pipecat.runner.utils import _detect_transport_type_from_message

    from supervisor.sessions.phone_handshake import detect

    for message in PROVIDER_STARTS[provider]:
        ours = detect(message)
        assert (ours.provider.value if ours else "unknown") == _detect_transport_type_from_message(message)
    call = detect(PROVIDER_STARTS[provider][-1])
    assert call is not None and call.call_id in ("CA1", "cc1", "c1")


# -- Twilio's signature, a hang-up API that fails, and a burst of calls ------------------------------


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, drop_dir: Path) -> Iterator[Fleet]:
    """A supervisor that checks Twilio's signature, whose Twilio API answers nothing, with 8 workers."""
    tmp = tmp_path_factory.mktemp("phone-strict")
    record = dropped(drop_dir, "phone-strict.jsonl")
    sup, sandbox = start_fleet(tmp, record, pool={"min_idle": 2, "max_workers": 8},
                               telephony={"auth_token_env": "TWILIO_AUTH_TOKEN", "twilio_api_url": "http://127.0.0.1:9"})
    try:
        yield Fleet(sup, sandbox, record)
    finally:
        sup.stop()
        sandbox.stop()


async def test_the_twilio_webhook_takes_only_calls_signed_with_the_auth_token_each_once(strict: Fleet) -> None:
    form = {"CallSid": "CA" + "1" * 32, "From": "+15550001111", "To": "+15550002222", "AccountSid": ACCOUNT_SID}
    status, reply, _ = await strict.sup.http("POST", "/telephony/twilio", data=form)
    assert status == 401 and "X-Twilio-Signature missing" in reply["info"]
    forged = sign("not-the-token", strict.webhook_url, form.items())
    status, reply, _ = await strict.sup.http("POST", "/telephony/twilio", data=form,
                                             headers={"X-Twilio-Signature": forged})
    assert status == 401 and "does not match" in reply["info"]
    signed = {"X-Twilio-Signature": sign(AUTH_TOKEN, strict.webhook_url, form.items())}
    status, twiml, _ = await strict.sup.http("POST", "/telephony/twilio", data=form, headers=signed)
    assert status == 200 and "<Connect><Stream url=" in twiml  # no bearer key needed: Twilio's signature is its proof
    status, reply, _ = await strict.sup.http("POST", "/telephony/twilio", data=form, headers=signed)
    assert status == 401 and "already taken" in reply["info"]  # a replayed webhook starts nothing
    assert len([s for s in strict.live_sessions()]) == 1
    for session in strict.live_sessions():
        await strict.sup.http("DELETE", f"/sessions/{session['session_id']}")


async def test_a_hang_up_api_that_fails_is_logged_and_the_session_still_ends(strict: Fleet) -> None:
    phone = strict.phone(auth_token=AUTH_TOKEN)
    await phone.dial()
    sid = await strict.session_of(phone.report)
    await in_conversation(phone)
    await strict.sup.http("DELETE", f"/sessions/{sid}")
    report = await asyncio.wait_for(phone.ended(), 15)
    assert report.hung_up_by is HungUpBy.SERVER  # Twilio's API was unreachable: the supervisor closed the socket
    assert (await strict.ended(sid))["end_reason"] == "stopped"
    await wait_until(lambda: "Failed to hang up Twilio call" in strict.sup.log_path.read_text(), 10,
                     "the failed hang-up in the log")


async def test_100_calls_on_8_workers_are_answered_or_told_busy_and_nothing_leaks(strict: Fleet) -> None:
    before = len(strict.sup.descendants())
    phones = [strict.phone(auth_token=AUTH_TOKEN) for _ in range(100)]
    await asyncio.gather(*(phone.dial() for phone in phones))
    connected = [p for p in phones if p.report.stream_opened]
    busy = [p for p in phones if p.report.hung_up_by is HungUpBy.REJECTED]
    assert 1 <= len(connected) <= 8 and len(connected) + len(busy) == 100, [p.report for p in phones]
    assert all(p.report.reason == "rejected: busy" for p in busy)
    await asyncio.gather(*(p.hang_up() for p in connected))
    for phone in connected:
        assert (await strict.ended(await strict.session_of(phone.report)))["end_reason"] == "participant_left"
    assert strict.live_sessions() == []
    await strict.sup.workers(lambda ws: len(ws) <= 8 and all(w["session_id"] is None for w in ws))
    await wait_until(lambda: len(strict.sup.descendants()) <= before, 30, "the processes to settle back")
