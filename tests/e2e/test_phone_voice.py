"""Daily Bots' ``twilio_ws_voice_2024_09`` talks over a phone call, offline, on a real
supervisor: the voice pipeline of ``voice_2024_10`` over a Twilio Media Stream.

``examples/pipecat_phone.py`` (a Pipecat voice bot built with ``create_transport``, its
services configured from its environment: the profile's secrets) talks the same way on a
Twilio call and greets a caller in a Daily room.

The sandbox plays the phone network (``sandbox.telephony``: a phone that follows TwiML,
streams μ-law in real time, hears the bot and declares what it says to the stand-in STT)
and the AI services (``sandbox.ai``: Deepgram live STT, an OpenAI-compatible LLM and TTS,
and the log of every request they answered). ``/bots/start`` answers the session's
WebSocket URL and TwiML; a small webhook here hands that TwiML to the phone, as a Twilio
number's webhook would.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from sandbox.ai.replies import GREETING
from sandbox.caller import CallerOptions
from sandbox.telephony import voice
from sandbox.telephony.lines import RemoteCarrier
from sandbox.telephony.network import ACCOUNT_SID
from sandbox.telephony.phone import HungUpBy, Phone, PhoneOptions
from sandbox.telephony.transcripts import RemoteTranscripts
from tests.conftest import REPO, SandboxProcess
from tests.rtvi_client import RTVIClient
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("deepgram") is None,
    reason="pipecat-ai[websocket] and the deepgram extra are not installed")

PROFILE = "twilio_ws_voice_2024_09"
AUTH_TOKEN = "test-twilio-auth-token"
INSTRUCTIONS = "You are a helpful phone assistant. Introduce yourself first."
SENTENCE = "What is the capital of France?"
EXAMPLE = "pipecat_phone"
EXAMPLE_BOT = "examples/pipecat_phone.py:bot"
EXAMPLE_ENV = ("DEEPGRAM_API_KEY", "DEEPGRAM_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "TWILIO_ACCOUNT_SID",
               "TWILIO_AUTH_TOKEN")


class Fleet:
    def __init__(self, sup: SupervisorProcess, sandbox: SandboxProcess) -> None:
        self.sup = sup
        self.sandbox = sandbox

    @property
    def ai(self) -> str:
        return self.sandbox.base_url + "/ai"

    def body(self) -> dict[str, Any]:
        return {
            "services": {"stt": "deepgram", "llm": "openai", "tts": "openai_tts"},
            "config": [{"service": "llm", "options": [
                {"name": "model", "value": "stand-in"},
                {"name": "initial_messages", "value": [{"role": "system", "content": INSTRUCTIONS}]}]},
                {"service": "tts", "options": [{"name": "voice", "value": "nova"}]}],
            "service_options": {"deepgram": {"base_url": self.ai + "/deepgram", "api_key": "sandbox"},
                                "openai": {"base_url": self.ai + "/openai/v1", "api_key": "sandbox"},
                                "openai_tts": {"base_url": self.ai + "/openai/v1", "api_key": "sandbox"}},
        }

    async def requests(self, suffix: str) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as s, s.get(self.ai + "/requests", params={"path": suffix}) as resp:
            assert resp.status == 200
            return list((await resp.json())["requests"])

    async def chats(self) -> list[dict[str, Any]]:
        return await self.requests("/chat/completions")

    async def speech_inputs(self) -> list[str]:
        return [r["body"].get("input", "") for r in await self.requests("/audio/speech")]

    def phone(self, webhook_url: str) -> Phone:
        return Phone(PhoneOptions(webhook_url, carrier=RemoteCarrier(self.sandbox.base_url),
                                  transcripts=RemoteTranscripts(self.sandbox.base_url)))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp: Path = tmp_path_factory.mktemp("phone-voice")
    sandbox = SandboxProcess("--no-rate-limits")
    # The shipped profiles, the example's given its variables as secrets (as its comment says).
    shipped = (REPO / "configs" / "profiles.toml").read_text()
    example = f'bot = "{EXAMPLE_BOT}"\n'
    assert example in shipped
    profiles = tmp / "profiles.toml"
    profiles.write_text(shipped.replace(example, example + f"secrets = {list(EXAMPLE_ENV)!r}\n".replace("'", '"')))
    ai = sandbox.base_url + "/ai"
    sup = SupervisorProcess(tmp, sandbox.port, supervisor={"profiles": str(profiles)},
                            telephony={"twilio_profile": PROFILE},
                            sessions={"idle_timeout_s": 60, "join_timeout_s": 20},
                            env={"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                                 "DEEPGRAM_API_KEY": "sandbox", "DEEPGRAM_BASE_URL": ai + "/deepgram",
                                 "OPENAI_API_KEY": "sandbox", "OPENAI_BASE_URL": ai + "/openai/v1"})
    try:
        sup.start(timeout=60)
    except BaseException:
        sandbox.stop()
        raise
    try:
        yield Fleet(sup, sandbox)
    finally:
        sup.stop()
        sandbox.stop()


class Webhook:
    """A Twilio number's voice webhook answering the TwiML ``/bots/start`` gave."""

    def __init__(self) -> None:
        self.twiml = ""
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(text=self.twiml, content_type="application/xml")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/voice", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/voice"


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    await hook.start()
    yield hook
    assert hook.runner is not None
    await hook.runner.cleanup()


def loud_seconds(pcm: bytes) -> float:
    """How much of 8 kHz PCM is sound rather than silence, in 20 ms chunks."""
    samples = np.frombuffer(pcm[: len(pcm) // 320 * 320], dtype="<i2").astype(np.float64).reshape(-1, 160)
    return float(np.sum(np.sqrt(np.mean(samples**2, axis=1)) > 1000)) * 0.02


def quiet_tail(pcm: bytes, seconds: float) -> bool:
    tail = pcm[-int(seconds * 16000):]
    return len(tail) >= int(seconds * 16000) and loud_seconds(tail) == 0


async def call(fleet: Fleet, webhook: Webhook) -> tuple[str, Phone]:
    """A call to the Daily Bots phone profile, started with ``/bots/start``."""
    status, started, _ = await fleet.sup.http("POST", "/bots/start", json={"bot_profile": PROFILE, **fleet.body()})
    assert status == 200, started
    assert set(started) == {"session_id", "websocket_url", "twiml"}
    sid, url = started["session_id"], started["websocket_url"]
    assert url.startswith(fleet.sup.url.replace("http://", "ws://") + f"/ws/{PROFILE}/{sid}.")
    assert f'<Connect><Stream url="{url}">' in started["twiml"]
    return await dial(fleet, webhook, sid, started["twiml"])


async def dial(fleet: Fleet, webhook: Webhook, sid: str, twiml: str) -> tuple[str, Phone]:
    detail = await fleet.sup.session(sid)
    assert detail["state"] == "assigned" and detail["room_url"] is None  # waiting for its call
    webhook.twiml = twiml
    phone = fleet.phone(webhook.url)
    await phone.dial()
    assert phone.report.stream_opened, phone.report
    return sid, phone


async def greeting_spoken(fleet: Fleet, since: tuple[int, int], prompt: str) -> None:
    """The bot's first chat completion started with ``prompt`` and its greeting reached the TTS."""
    chats = await wait_until(fleet.chats, 30, "the greeting's chat completion", until=lambda c: len(c) > since[0])
    assert chats[since[0]]["body"]["messages"][0] == {"role": "system", "content": prompt}
    await wait_until(fleet.speech_inputs, 15, "the greeting at the TTS",
                     until=lambda s: GREETING in " ".join(s[since[1]:]))


async def greeted(fleet: Fleet, phone: Phone, since: tuple[int, int], prompt: str = INSTRUCTIONS) -> None:
    """The LLM ran on the bot's first messages, its greeting reached the TTS, and the phone
    heard it. ``since``: how many chats and speeches the stand-ins had answered before."""
    await greeting_spoken(fleet, since, prompt)
    await wait_until(lambda: loud_seconds(phone.heard_pcm()), 15, "the greeting on the phone",
                     until=lambda s: s >= 1.0)


async def counts(fleet: Fleet) -> tuple[int, int]:
    """How many chats and speeches the stand-ins have answered (earlier tests' calls)."""
    return len(await fleet.chats()), len(await fleet.speech_inputs())


async def a_turn_and_a_hang_up(fleet: Fleet, sid: str, phone: Phone, since: tuple[int, int],
                               prompt: str = INSTRUCTIONS) -> None:
    """The phone is greeted, says its sentence and hears the answer, then hangs up, which
    ends the session."""
    try:
        await greeted(fleet, phone, since, prompt)
        await wait_until(phone.heard_pcm, 30, "the greeting to end", until=lambda pcm: quiet_tail(pcm, 1.0))
        detail = await fleet.sup.session(sid)
        assert detail["state"] == "joined", detail
        chats_before = len(await fleet.chats())
        assert await phone.say(await voice.from_text(SENTENCE), SENTENCE)
        heard_at = len(phone.heard_pcm())
        said_at = time.monotonic()

        def answered(chats: list[dict[str, Any]]) -> bool:
            users = [m for c in chats[chats_before:] for m in c["body"]["messages"] if m.get("role") == "user"]
            return any(SENTENCE in str(m.get("content")) for m in users)

        # The sentence, heard by the stand-in Deepgram, reached the LLM ...
        chats = await wait_until(fleet.chats, 20, "the sentence at the LLM", until=answered)
        assert chats[-1]["at"] >= said_at - 5
        # ... its words ("You said: …", the stand-in's quote of the sentence) reached the TTS ...
        await wait_until(fleet.speech_inputs, 15, "the LLM's answer at the TTS",
                         until=lambda s: any(f"You said: {SENTENCE.rstrip('?')}" in i for i in s[since[1]:]))
        # ... and the phone heard them after the sentence.
        await wait_until(lambda: loud_seconds(phone.heard_pcm()[heard_at:]), 20, "the answer on the phone",
                         until=lambda s: s >= 1.0)
    finally:
        report = await phone.hang_up()
    assert report.hung_up_by is HungUpBy.PHONE
    ended = await fleet.sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=20)
    assert ended["end_reason"] == "participant_left", ended


async def test_a_twilio_call_talks_to_the_voice_pipeline_and_hanging_up_ends_it(
        fleet: Fleet, webhook: Webhook) -> None:
    since = await counts(fleet)
    sid, phone = await call(fleet, webhook)
    await a_turn_and_a_hang_up(fleet, sid, phone, since)


async def test_deleting_the_session_hangs_the_phone_up(fleet: Fleet, webhook: Webhook) -> None:
    since = await counts(fleet)
    sid, phone = await call(fleet, webhook)
    await greeted(fleet, phone, since)
    status, _, _ = await fleet.sup.http("DELETE", f"/sessions/{sid}")
    assert status == 200
    report = await asyncio.wait_for(phone.ended(), 20)
    assert report.hung_up_by in (HungUpBy.API, HungUpBy.SERVER), report
    # the bot's TwilioFrameSerializer hung up at the sandbox's Twilio API with the operator's credentials
    await wait_until(lambda: f"Successfully terminated Twilio call {report.call_sid}" in fleet.sup.log_path.read_text(),
                     10, "the bot's hang-up through Twilio's API")
    ended = await fleet.sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=20)
    assert ended["end_reason"] == "stopped", ended


async def test_bots_start_refuses_daily_transcription_and_a_room_for_the_phone_profile(fleet: Fleet) -> None:
    body = fleet.body()
    status, reply, _ = await fleet.sup.http("POST", "/bots/start", json={
        "bot_profile": PROFILE, **body, "services": {**body["services"], "stt": "daily"}})
    assert status == 422 and "services.stt" in reply["info"], reply
    status, reply, _ = await fleet.sup.http("POST", "/bots/start", json={
        "bot_profile": PROFILE, **body, "room_url": "https://example.daily.co/room"})
    assert status == 400 and "room_url" in reply["info"], reply


async def test_the_example_bot_talks_on_a_twilio_call(fleet: Fleet, webhook: Webhook) -> None:
    from supervisor.http.phone import twiml

    since = await counts(fleet)
    status, started, _ = await fleet.sup.http("POST", "/start", json={"transport": "websocket", "profile": EXAMPLE})
    assert status == 200, started
    sid = started["sessionId"]
    _, phone = await dial(fleet, webhook, sid, twiml(started["wsUrl"], {"session_id": sid}))
    await a_turn_and_a_hang_up(fleet, sid, phone, since, prompt=example_prompt())


async def test_the_example_bot_greets_a_caller_in_a_daily_room(fleet: Fleet) -> None:
    since = await counts(fleet)
    status, started, _ = await fleet.sup.http("POST", "/start", json={"profile": EXAMPLE, "createDailyRoom": True})
    assert status == 200, started
    sid = started["sessionId"]
    caller = RTVIClient(CallerOptions(room_url=started["dailyRoom"], token=started["dailyToken"], tone_hz=None,
                                      markers=False))
    await caller.join()
    try:
        await greeting_spoken(fleet, since, example_prompt())
        await wait_until(lambda: len(caller.loud_at), 15, "the greeting in the room", until=lambda n: n >= 10)
    finally:
        await caller.leave()
    ended = await fleet.sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=20)
    assert ended["state"] == "ended", ended


def example_prompt() -> str:
    spec = importlib.util.spec_from_file_location("pipecat_phone_example", REPO / "examples" / "pipecat_phone.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.SYSTEM_PROMPT)
