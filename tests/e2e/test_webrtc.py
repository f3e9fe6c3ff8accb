"""Talking to a bot from a browser over Pipecat's SmallWebRTC, end to end: a real supervisor
whose workers host a real Pipecat bot (``tests/bots/webrtc_echo.py``, ``create_transport``)
on a real aiortc peer, offline on 127.0.0.1 (host candidates only, no STUN).

The browser is played twice: by a Python aiortc client doing Pipecat Cloud's flow by hand
(``POST /start`` with ``transport: "webrtc"``, the offer to ``/sessions/{id}/api/offer``),
and by headless chromium running Pipecat's own prebuilt page from ``/client`` with a WAV of
espeak-ng's speech as its microphone. Either way the bot's VAD hears the speech and the
browser receives the bot's audio; the browser going away ends the session and its worker.
"""

from __future__ import annotations

import asyncio
import fractions
import importlib.util
import json
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser import browser_fixture  # noqa: F401
from tests.conftest import dropped
from tests.supervisor_harness import SupervisorProcess, alive
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("aiortc") is None,
                                reason="aiortc is not installed (pipecat-ai[webrtc])")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="Silero's VAD needs real speech: apt-get install espeak-ng")

RECORD_ENV = "CALLFLEET_TEST_BOT_RECORD"
PROFILES = """
[profiles.webrtc_echo]
kind = "pipecat"
bot = "tests/bots/webrtc_echo.py:bot"
secrets = ["CALLFLEET_TEST_BOT_RECORD"]

[profiles.echo]
kind = "echo"

[profiles.pipecat_talk]
kind = "pipecat"
bot = "examples/pipecat_talk.py:bot"

[profiles.voice_2024_10]
kind = "pipecat"
bot = "worker.daily_bots.voice:bot"
"""
RATE = 48000  # what WebRTC's Opus carries
SPEECH = "Hello bot. Can you hear me? I am talking to you from a browser, with no Daily account at all."
OFFER_TIMEOUT_S = 8


class Fleet:
    """A supervisor whose webrtc_echo bots report to ``record``."""

    def __init__(self, sup: SupervisorProcess, record: Path) -> None:
        self.sup = sup
        self.record = record

    def records(self, session_id: str, event: str) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        found = [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]
        return [r for r in found if r.get("session_id") == session_id and r["event"] == event]

    async def wait_record(self, session_id: str, event: str, timeout: float = 20) -> dict[str, Any]:
        await wait_until(lambda: bool(self.records(session_id, event)), timeout, f"a {event!r} record")
        return self.records(session_id, event)[-1]

    async def start(self, profile: str = "webrtc_echo", **extra: Any) -> dict[str, Any]:
        status, reply, _ = await self.sup.http("POST", "/start", json={"transport": "webrtc", "profile": profile,
                                                                       **extra})
        assert status == 200, (status, reply)
        return dict(reply)

    async def ended(self, session_id: str, timeout: float = 30) -> dict[str, Any]:
        return await self.sup.wait_session(session_id, lambda d: d["state"] in ("ended", "failed"), timeout=timeout)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, drop_dir: Path) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("webrtc-fleet")
    record = dropped(drop_dir, "webrtc-bots.jsonl")
    profiles = tmp / "profiles.toml"
    profiles.write_text(PROFILES)
    sup = SupervisorProcess(tmp, None, env={RECORD_ENV: str(record)},
                            supervisor={"profiles": str(profiles)}, pool={"min_idle": 2, "max_workers": 4},
                            sessions={"idle_timeout_s": 30, "join_timeout_s": 20},
                            webrtc={"offer_timeout_s": OFFER_TIMEOUT_S})
    sup.start(timeout=90)
    try:
        yield Fleet(sup, record)
    finally:
        sup.stop()


@pytest.fixture(scope="module")
def speech_pcm() -> bytes:
    """espeak-ng's speech, 16-bit mono at 48 kHz."""
    from sandbox.ai.synthesis import synthesize

    return asyncio.run(synthesize(SPEECH, RATE))


def loud_seconds(pcm: np.ndarray, rate: int) -> float:
    """How much of ``pcm`` (16-bit samples) is sound rather than silence, in 20 ms chunks."""
    chunk = rate // 50
    usable = pcm[: len(pcm) // chunk * chunk].astype(np.float64).reshape(-1, chunk)
    return float(np.sum(np.sqrt(np.mean(usable**2, axis=1)) > 500)) * 0.02


# -- a Python browser: aiortc, Pipecat's signalling by hand ---------------------------------------------


class Microphone:
    """An aiortc audio track that says ``pcm`` (48 kHz mono) in real time, then silence."""

    def __new__(cls, pcm: bytes) -> Any:
        import av
        from aiortc.mediastreams import MediaStreamTrack

        class Track(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self.samples = np.frombuffer(pcm, dtype="<i2")
                self.sent = 0
                self.started: float | None = None

            async def recv(self) -> Any:
                n = RATE // 50
                if self.started is None:
                    self.started = time.monotonic()
                wait = self.started + self.sent / RATE - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                chunk = self.samples[self.sent:self.sent + n]
                chunk = np.pad(chunk, (0, n - len(chunk)))
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = RATE, self.sent, fractions.Fraction(1, RATE)
                self.sent += n
                return frame

        return Track()


class PythonBrowser:
    """A peer connection that speaks ``pcm`` and keeps what it hears (48 kHz mono)."""

    def __init__(self, pcm: bytes) -> None:
        from aiortc import RTCPeerConnection

        self.pc = RTCPeerConnection()  # no iceServers: host candidates only, as callfleet's iceConfig says
        self.pc.addTrack(Microphone(pcm))
        self.pc.createDataChannel("chat")
        self.heard: list[np.ndarray] = []
        self.readers: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio":
                self.readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            samples = frame.to_ndarray().reshape(-1)
            if len(frame.layout.channels) == 2:  # interleaved stereo: keep one channel
                samples = samples[::2]
            self.heard.append(samples.astype(np.int16))

    def heard_loud_s(self) -> float:
        return loud_seconds(np.concatenate(self.heard), RATE) if self.heard else 0.0

    async def offer(self) -> dict[str, Any]:
        await self.pc.setLocalDescription(await self.pc.createOffer())  # aiortc gathers every candidate here
        return {"sdp": self.pc.localDescription.sdp, "type": "offer", "pc_id": None, "restart_pc": False}

    async def answered(self, answer: dict[str, Any]) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

    async def close(self) -> None:
        await self.pc.close()
        for reader in self.readers:
            reader.cancel()


@pytest.fixture
async def python_browser(speech_pcm: bytes) -> AsyncIterator[PythonBrowser]:
    browser = PythonBrowser(speech_pcm)
    try:
        yield browser
    finally:
        await browser.close()


@needs_espeak
async def test_a_python_webrtc_client_talks_to_a_pipecat_bot_and_hears_it(
        fleet: Fleet, python_browser: PythonBrowser) -> None:
    started = await fleet.start(body={"greeting": "hi"})
    sid = started["sessionId"]
    assert started["iceConfig"] == {"iceServers": []}  # offline: no STUN server, host candidates only
    status, answer, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer", json=await python_browser.offer())
    assert status == 200, answer
    assert answer["type"] == "answer" and answer["pc_id"] and "a=candidate" in answer["sdp"]
    await python_browser.answered(answer)

    start = await fleet.wait_record(sid, "start")
    assert start["args"] == "SmallWebRTCRunnerArguments" and start["body"] == {"greeting": "hi"}
    await fleet.wait_record(sid, "connected")
    heard = await fleet.wait_record(sid, "heard", timeout=30)
    assert heard["speech"] >= 1 and heard["frames"] > 0
    await wait_until(lambda: python_browser.heard_loud_s() >= 1.0, 30, "the bot's echo of the speech")

    joined = await fleet.sup.session(sid)
    assert joined["state"] == "joined" and joined["room_url"] is None
    assert [p["id"] for p in joined["participants"] if not p["is_bot"]] == ["browser"]
    pid = joined["worker_pid"]

    await python_browser.close()
    ended = await fleet.ended(sid)
    assert ended["state"] == "ended" and ended["end_reason"] == "participant_left", ended
    await fleet.wait_record(sid, "disconnected")
    await wait_until(lambda: not alive(pid), 20, "the session's worker to exit")


@needs_espeak
async def test_the_shipped_example_echoes_a_browser(fleet: Fleet, python_browser: PythonBrowser) -> None:
    sid = (await fleet.start("pipecat_talk"))["sessionId"]
    status, answer, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer", json=await python_browser.offer())
    assert status == 200, answer
    await python_browser.answered(answer)
    await wait_until(lambda: python_browser.heard_loud_s() >= 1.0, 30, "the example's echo of the speech")
    await python_browser.close()
    ended = await fleet.ended(sid)
    assert ended["end_reason"] == "participant_left", ended


async def test_a_webrtc_start_of_a_bot_the_worker_does_not_host_is_422(fleet: Fleet) -> None:
    status, reply, _ = await fleet.sup.http("POST", "/start", json={"transport": "webrtc", "profile": "echo"})
    assert status == 422
    assert reply == {"error": "invalid-request-error",
                     "info": "profile echo runs a echo bot: only kind = \"pipecat\" bots take WebRTC sessions "
                             "(the worker hosts the browser's peer)"}


def voice_body(fleet: Fleet, stt: str = "deepgram") -> dict[str, Any]:
    """A Daily Bots voice request on the sandbox's stand-in AI services (the request's own dummy keys)."""
    ai = f"http://127.0.0.1:{fleet.sup.config['sandbox']['port']}/ai"
    return {"services": {"stt": stt, "llm": "custom_llm", "tts": "openai_tts"},
            "api_keys": {"deepgram": "sandbox", "openai_tts": "sandbox"},
            "service_options": {"deepgram": {"base_url": f"{ai}/deepgram"},
                                "custom_llm": {"base_url": f"{ai}/openai/v1"},
                                "openai_tts": {"base_url": f"{ai}/openai/v1"}},
            "config": [{"service": "llm", "options": [
                {"name": "model", "value": "stand-in"},
                {"name": "initial_messages", "value": [{"role": "system", "content": "Greet the caller."}]}]}]}


@needs_espeak
async def test_a_daily_bots_voice_pipeline_greets_a_browser_over_webrtc(
        fleet: Fleet, python_browser: PythonBrowser) -> None:
    sid = (await fleet.start("voice_2024_10", body=voice_body(fleet)))["sessionId"]
    status, answer, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer", json=await python_browser.offer())
    assert status == 200, answer
    await python_browser.answered(answer)
    # The greeting: the stand-in LLM's words, spoken by the stand-in TTS, over the browser's peer.
    await wait_until(lambda: python_browser.heard_loud_s() >= 0.5, 60, "the bot's spoken greeting")
    await python_browser.close()
    ended = await fleet.ended(sid)
    assert ended["end_reason"] == "participant_left", ended


async def test_a_daily_bots_pipeline_over_webrtc_cannot_use_a_rooms_transcription(fleet: Fleet) -> None:
    status, reply, _ = await fleet.sup.http("POST", "/start", json={"transport": "webrtc", "profile": "voice_2024_10",
                                                                    "body": voice_body(fleet, stt="daily")})
    assert status == 422
    assert reply["info"] == ("body.services.stt: \"daily\" transcribes a Daily room; profile voice_2024_10 talks "
                             "to a browser over WebRTC (name an STT service, e.g. deepgram)")


async def test_a_webrtc_start_naming_no_profile_without_a_default_is_422(fleet: Fleet) -> None:
    status, reply, _ = await fleet.sup.http("POST", "/start", json={"transport": "webrtc"})
    assert status == 422
    assert reply["info"] == ("profile: missing, and no [webrtc] default_profile is configured (the /client page "
                             "takes ?profile=NAME)")


async def test_the_prebuilt_pages_start_runs_the_profile_its_url_names(fleet: Fleet) -> None:
    # Pipecat's prebuilt page POSTs /start with no profile; its own URL (the Referer) names one.
    body = {"createDailyRoom": False, "enableDefaultIceServers": True, "transport": "webrtc"}
    status, reply, _ = await fleet.sup.http("POST", "/start", json=body,
                                            headers={"Referer": f"{fleet.sup.url}/client/?profile=webrtc_echo"})
    assert status == 200, reply
    assert reply["iceConfig"] == {"iceServers": []}  # no public STUN server, whatever the page asked
    sid = reply["sessionId"]
    try:
        assert (await fleet.sup.session(sid))["profile"] == "webrtc_echo"
    finally:
        await fleet.sup.http("DELETE", f"/sessions/{sid}")
    status, reply, _ = await fleet.sup.http("POST", "/start", json=body,
                                            headers={"Referer": "http://elsewhere.example/client/?profile=webrtc_echo"})
    assert status == 422  # another site's page names nothing here


async def test_a_webrtc_start_asking_for_a_daily_room_is_400(fleet: Fleet) -> None:
    status, reply, _ = await fleet.sup.http("POST", "/start", json={"transport": "webrtc", "profile": "webrtc_echo",
                                                                    "createDailyRoom": True})
    assert status == 400
    assert reply["info"] == "createDailyRoom: a WebRTC session has no Daily room; it must be false or absent"


async def test_an_offer_for_an_unknown_session_is_404(fleet: Fleet) -> None:
    status, reply, _ = await fleet.sup.http("POST", "/sessions/6f1c1d39-0000-4000-8000-000000000000/api/offer",
                                            json={"sdp": "v=0\r\n", "type": "offer"})
    assert status == 404
    assert reply == {"error": "not-found", "info": "session 6f1c1d39-0000-4000-8000-000000000000 not found"}


async def test_an_offer_for_a_session_that_is_not_webrtc_is_409(fleet: Fleet) -> None:
    started = await fleet.sup.start_bot("echo")
    sid = started["session_id"]
    try:
        status, reply, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer",
                                                json={"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
                                                      "type": "offer"})
        assert status == 409
        assert reply["info"] == (f"session {sid} is not a WebRTC session (it was not started with transport "
                                 f"\"webrtc\"): it takes no offer")
    finally:
        await fleet.sup.http("DELETE", f"/sessions/{sid}")


@pytest.mark.parametrize(("body", "info"), [
    (b"not json", "body is not valid JSON"),
    (b'{"type": "offer"}', "Object missing required field sdp"),
    (b'{"sdp": "v=0\\r\\nm=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\n", "type": "answer"}',
     "type: expected \"offer\", got 'answer'"),
    (b'{"sdp": "hello", "type": "offer"}', "sdp: not a session description (it starts with v=0)"),
    (b'{"sdp": "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\n", "type": "offer"}', "sdp: offers no media (no m= line)"),
])
async def test_a_malformed_offer_is_400_naming_what_is_wrong(fleet: Fleet, body: bytes, info: str) -> None:
    sid = (await fleet.start())["sessionId"]
    try:
        status, reply, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer", data=body,
                                                headers={"Content-Type": "application/json"})
        assert status == 400
        assert reply["error"] == "invalid-request-error"
        assert reply["info"] == info or (info.endswith("JSON") and reply["info"].startswith(info + ": ")), reply
    finally:
        await fleet.sup.http("DELETE", f"/sessions/{sid}")


@needs_espeak
async def test_an_offer_aiortc_cannot_take_is_400_and_the_session_takes_the_next_and_renegotiates(
        fleet: Fleet, python_browser: PythonBrowser) -> None:
    sid = (await fleet.start())["sessionId"]
    try:
        garbled = {"sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 NOPE 111\r\n", "type": "offer"}
        status, reply, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer", json=garbled)
        assert status == 400
        assert reply["info"].startswith("the offer's SDP was refused: "), reply
        status, answer, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer",
                                                 json=await python_browser.offer())
        assert status == 200, answer
        await python_browser.answered(answer)
        await fleet.wait_record(sid, "connected")
        pc_id = answer["pc_id"]

        # Pipecat's renegotiation: an offer naming the peer is answered by the same peer.
        status, again, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer",
                                                json={**await python_browser.offer(), "pc_id": pc_id})
        assert status == 200, again
        assert again["type"] == "answer" and again["pc_id"] == pc_id
        await python_browser.answered(again)
        # Trickled candidates reach it too (here the end-of-candidates marker).
        status, reply, _ = await fleet.sup.http("PATCH", f"/sessions/{sid}/api/offer", json={
            "pc_id": pc_id, "candidates": [{"candidate": "", "sdp_mid": "0", "sdp_mline_index": 0}]})
        assert (status, reply) == (200, {"status": "success"})

        # One browser per session: another first offer is refused; candidates for another peer are not its.
        status, reply, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer",
                                                json={**await python_browser.offer(), "pc_id": None})
        assert status == 409
        assert "already has a browser connected" in reply["info"]
        status, reply, _ = await fleet.sup.http("PATCH", f"/sessions/{sid}/api/offer",
                                                json={"pc_id": "someone-else", "candidates": []})
        assert status == 404
        assert reply["info"] == "peer connection 'someone-else' is not this session's"
    finally:
        await fleet.sup.http("DELETE", f"/sessions/{sid}")
    ended = await fleet.ended(sid)
    assert ended["end_reason"] == "stopped", ended


async def test_a_webrtc_session_no_browser_offers_to_ends_join_failed(fleet: Fleet) -> None:
    sid = (await fleet.start())["sessionId"]
    ended = await fleet.ended(sid, timeout=OFFER_TIMEOUT_S + 20)
    assert ended["state"] == "failed" and ended["end_reason"] == "join_failed"
    assert ended["error"] == f"no WebRTC offer came to /sessions/{sid}/api/offer within {OFFER_TIMEOUT_S} s"
    status, reply, _ = await fleet.sup.http("POST", f"/sessions/{sid}/api/offer",
                                            json={"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"})
    assert status == 409
    assert reply["info"] == f"session {sid} has finished"


# -- Pipecat's prebuilt page in headless chromium ------------------------------------------------------


async def test_the_client_page_and_its_assets_are_served_from_the_installed_package(fleet: Fleet) -> None:
    status, page, _ = await fleet.sup.http("GET", "/client/")
    assert status == 200 and "<div id=\"root\">" in page
    script = page.split('src="./')[1].split('"')[0]
    status, _, headers = await fleet.sup.http("GET", f"/client/{script}")
    assert status == 200 and headers["Content-Type"] in ("text/javascript", "application/javascript")
    status, reply, _ = await fleet.sup.http("GET", "/client/%2e%2e/%2e%2e/__init__.py")
    assert status == 404


# The bytes and audio energy the page has received from the bot (callfleet's page keeps its peer
# in window.callfleetTalk).
INBOUND_AUDIO = """
const done = arguments[arguments.length - 1];
const pc = window.callfleetTalk && window.callfleetTalk.pc;
if (!pc) { done({bytes: 0, energy: 0}); return; }
pc.getStats().then((stats) => {
  let bytes = 0, energy = 0;
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") { bytes += s.bytesReceived || 0; energy += s.totalAudioEnergy || 0; }
  });
  done({bytes, energy, session: window.callfleetTalk.sessionId});
}).catch((e) => done({error: String(e)}));
"""


def _click_connect(driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(expected_conditions.element_to_be_clickable((By.ID, "connect"))).click()


@needs_espeak
async def test_a_browser_talks_to_the_bot_from_the_talk_page_and_hears_it(
        fleet: Fleet, browser: Any, speech_pcm: bytes, tmp_path: Path) -> None:
    from callfleet.audio import write_wav

    microphone = tmp_path / "speech.wav"
    write_wav(microphone, speech_pcm, RATE)
    driver = browser("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={microphone}", "--autoplay-policy=no-user-gesture-required")
    driver.get(f"{fleet.sup.url}/talk?profile=webrtc_echo")
    await asyncio.to_thread(_click_connect, driver)

    def received() -> dict[str, Any]:
        stats: dict[str, Any] = driver.execute_async_script(INBOUND_AUDIO)
        return stats

    stats = await wait_until(lambda: asyncio.to_thread(received), 60, "the bot's audio in the page",
                             until=lambda s: s.get("energy", 0) > 0, interval=0.5)
    assert stats["bytes"] > 0
    sid = stats["session"]
    start = await fleet.wait_record(sid, "start")
    assert start["args"] == "SmallWebRTCRunnerArguments"
    heard = await fleet.wait_record(sid, "heard", timeout=40)  # the bot's VAD heard the WAV's speech
    assert heard["speech"] >= 1 and heard["frames"] > 0

    pid = (await fleet.sup.session(sid))["worker_pid"]
    driver.quit()  # the browser goes away: its peer closes
    ended = await fleet.ended(sid, timeout=60)
    assert ended["state"] == "ended" and ended["end_reason"] == "participant_left", ended
    await wait_until(lambda: not alive(pid), 20, "the session's worker to exit")


async def test_with_a_bearer_key_the_pages_and_offer_routes_are_open_and_start_needs_the_key(
        tmp_path: Path) -> None:
    sup = SupervisorProcess(tmp_path, None, env={"CALLFLEET_TEST_KEY": "s3cret"},
                            supervisor={"api_key_env": "CALLFLEET_TEST_KEY"}, pool={"min_idle": 0})
    sup.start(timeout=60)
    try:
        for page in ("/talk", "/talk/talk.js", "/client/"):
            status, text, _ = await sup.http("GET", page)
            assert status == 200 and "s3cret" not in text, page
        status, reply, _ = await sup.http("POST", "/start", json={"transport": "webrtc", "profile": "echo"})
        assert status == 401 and reply["error"] == "authentication-error"
        # The session id is the offer route's capability: an unknown one is 404, not 401.
        status, reply, _ = await sup.http("POST", "/sessions/6f1c1d39-0000-4000-8000-000000000000/api/offer",
                                          json={"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"})
        assert status == 404
        status, reply, _ = await sup.http("POST", "/start", json={"transport": "webrtc", "profile": "echo"},
                                          headers={"Authorization": "Bearer s3cret"})
        assert status == 422  # past the key: echo is no bot the worker hosts
    finally:
        sup.stop()


async def test_candidates_before_any_offer_are_409_and_a_malformed_patch_is_400(fleet: Fleet) -> None:
    sid = (await fleet.start())["sessionId"]
    try:
        status, reply, _ = await fleet.sup.http("PATCH", f"/sessions/{sid}/api/offer",
                                                json={"pc_id": "p", "candidates": []})
        assert status == 409
        assert reply["info"] == f"session {sid} has answered no offer yet: POST the offer first"
        status, reply, _ = await fleet.sup.http("PATCH", f"/sessions/{sid}/api/offer",
                                                json={"pc_id": "p", "candidates": [{"candidate": "x"}]})
        assert status == 400
        assert reply["info"] == "candidates[0]: object missing required field sdp_mid"
    finally:
        await fleet.sup.http("DELETE", f"/sessions/{sid}")


@needs_espeak
async def test_the_talk_page_connects_to_a_webrtc_session_an_api_client_started(
        fleet: Fleet, browser: Any, speech_pcm: bytes, tmp_path: Path) -> None:
    from callfleet.audio import write_wav

    microphone = tmp_path / "speech.wav"
    write_wav(microphone, speech_pcm, RATE)
    sid = (await fleet.start(body={"from": "api"}))["sessionId"]
    driver = browser("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={microphone}")
    driver.get(f"{fleet.sup.url}/talk?session={sid}")
    await asyncio.to_thread(_click_connect, driver)
    start = await fleet.wait_record(sid, "start", timeout=30)
    assert start["body"] == {"from": "api"}
    await fleet.wait_record(sid, "connected", timeout=30)
    driver.quit()
    ended = await fleet.ended(sid, timeout=60)
    assert ended["end_reason"] == "participant_left", ended
