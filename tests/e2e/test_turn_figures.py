"""Turn figures, per-session CPU and memory, and a hosted bot's audio and name, on a real
supervisor with real workers, real Pipecat and the sandbox's stand-in AI services.

A caller speaks real speech (espeak-ng) to a Daily Bots ``voice_2024_10`` pipeline (the
stand-in Deepgram STT, an OpenAI-compatible LLM and TTS) and to a user's own Pipecat bot
that knows nothing of callfleet (``tests/bots/voice_bot.py``). Each answered turn shows in
the session's detail -- voice-to-voice, TTFB per service, tokens and characters used -- and
in ``/metrics``; the finished session keeps them. A Pipecat echo session's frame counters
count its audio, and a bot's ``DailyTransport`` name is its participant's name.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callfleet.audio import write_wav
from sandbox.caller import Caller, CallerOptions
from tests.rtvi_client import RTVIClient
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                       reason="pipecat-ai is not installed (the pipecat extra)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None,
                       reason="Silero's VAD needs real speech: apt-get install espeak-ng"),
]

PROFILES = """
[profiles.voice_2024_10]
kind = "pipecat"
bot = "worker.daily_bots.voice:bot"

[profiles.voice_bot]
kind = "pipecat"
bot = "tests/bots/voice_bot.py:bot"

[profiles.pipecat_echo]
kind = "pipecat"
bot = "examples/pipecat_echo.py:bot"
"""
SENTENCE = "what is the capital of France"


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProcess]:
    tmp = tmp_path_factory.mktemp("turn-figures")
    (tmp / "profiles.toml").write_text(PROFILES)
    proc = SupervisorProcess(tmp, None, supervisor={"profiles": str(tmp / "profiles.toml")},
                             sessions={"idle_timeout_s": 60, "join_timeout_s": 20})
    proc.start(timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
def ai(sup: SupervisorProcess) -> str:
    return f"http://127.0.0.1:{sup.config['sandbox']['port']}/ai"


def voice_body(ai: str) -> dict[str, Any]:
    return {"services": {"stt": "deepgram", "llm": "custom_llm", "tts": "openai_tts"},
            "config": [{"service": "llm", "options": [
                {"name": "model", "value": "llm-turn-figures"},
                {"name": "initial_messages", "value": [{"role": "user", "content": "Introduce yourself."}]}]}],
            "service_options": {"deepgram": {"base_url": f"{ai}/deepgram", "api_key": "sandbox"},
                                "custom_llm": {"base_url": f"{ai}/openai/v1", "api_key": "sandbox"},
                                "openai_tts": {"base_url": f"{ai}/openai/v1", "api_key": "sandbox"}}}


async def speech_wav(tmp_path: Path) -> Path:
    from sandbox.ai.synthesis import synthesize

    rate = 16000
    speech = await synthesize(SENTENCE, rate) + bytes(2 * rate * 3 // 2)  # then 1.5 s of silence: the turn ends
    path = tmp_path / "caller.wav"
    write_wav(path, speech, rate)
    return path


async def script(ai: str, *texts: str) -> None:
    """What the stand-in Deepgram hears the next utterances say."""
    async with aiohttp.ClientSession() as http, http.post(f"{ai}/script", json={"transcripts": list(texts)}) as r:
        assert r.status == 200


async def talk(client: RTVIClient, ai: str, wav: Path, turns: int) -> None:
    """The caller waits out the bot's greeting, then speaks ``turns`` times, each time
    waiting for the answer to be over."""
    await wait_until(lambda: client.loud_at, 30, "the greeting's voice")
    client.opts.wav = wav
    for n in range(turns):
        await wait_until(lambda: client.quiet_for(0.8), 30, "the bot to finish speaking")
        heard = len(client.loud_at)
        await script(ai, SENTENCE)
        await client.speak()
        await wait_until(lambda h=heard: len(client.loud_at) > h + 10, 30, f"the answer to turn {n + 1}")


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", re.M)
    return sum(float(m.group(2)) for m in pattern.finditer(text) if (m.group(1) or "") == want)


def assert_turn_figures(detail: dict[str, Any], turns: int) -> None:
    figures = detail["turns"]
    assert figures["count"] >= turns, figures
    v2v = figures["voice_to_voice_s"]
    assert 0 < v2v["p50"] <= v2v["p90"] <= v2v["p99"] and v2v["last"] > 0, figures
    services = figures["ttfb_s"]
    # The LLM's and the TTS's time to first byte, per service class, with their spread.
    assert any("LLM" in s for s in services) and any("TTS" in s for s in services), services
    for spread in services.values():
        # 0 is a measurement: an STT whose transcript was final before the VAD's stop.
        assert 0 <= spread["p50"] <= spread["p90"] <= spread["p99"], services
    assert all(spread["p99"] > 0 for s, spread in services.items() if "LLM" in s or "TTS" in s), services
    recent = figures["recent"]
    assert 1 <= len(recent) <= 5 and all(t["voice_to_voice_s"] > 0 for t in recent), recent
    assert any(t["ttfb_s"] for t in recent), recent
    usage = detail["usage"]
    assert usage["llm_prompt_tokens"] > 0 and usage["llm_completion_tokens"] > 0, usage
    assert usage["tts_characters"] > 0, usage


async def test_a_daily_bots_voice_session_shows_its_turns_usage_and_resources_in_the_detail_and_metrics(
        sup: SupervisorProcess, ai: str, tmp_path: Path) -> None:
    wav = await speech_wav(tmp_path)
    bot = await sup.start_bot("voice_2024_10", **voice_body(ai))
    sid = bot["session_id"]
    client = RTVIClient(CallerOptions(room_url=bot["room_url"], token=bot["token"], tone_hz=None, markers=False))
    await client.join()
    try:
        await talk(client, ai, wav, turns=2)
        live = await sup.wait_session(sid, lambda d: d["turns"]["count"] >= 2, timeout=15, what="two turns")
        assert_turn_figures(live, 2)
        # The worker's CPU and memory, sampled every few seconds while the session lives.
        sampled = await sup.wait_session(sid, lambda d: len(d["resources"]["samples"]) >= 2, timeout=20,
                                         what="two resource samples")
        resources = sampled["resources"]
        assert resources["cpu_s"] > 0 and resources["pss_mb"] > 0, resources
        assert all(len(s) == 3 and s[2] > 0 for s in resources["samples"]), resources
        assert resources["cpu_percent"] is not None and resources["cpu_percent"] >= 0, resources
    finally:
        await client.conn.leave()
    ended = await sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=30)
    assert ended["state"] == "ended", ended
    assert_turn_figures(ended, 2)  # the finished session keeps them
    assert ended["resources"]["samples"], ended["resources"]

    status, text, _ = await sup.http("GET", "/metrics")
    assert status == 200
    assert metric(text, "callfleet_turn_voice_to_voice_seconds_count") >= 2
    for service in ended["turns"]["ttfb_s"]:
        assert metric(text, "callfleet_service_ttfb_seconds_count", service=service) >= 1, service
    assert metric(text, "callfleet_usage_total", kind="tts_characters") >= ended["usage"]["tts_characters"]
    assert metric(text, "callfleet_usage_total", kind="llm_prompt_tokens") >= ended["usage"]["llm_prompt_tokens"]


async def test_a_users_own_pipecat_bot_gets_turn_figures_without_code_changes_and_its_name_in_the_call(
        sup: SupervisorProcess, ai: str, tmp_path: Path) -> None:
    wav = await speech_wav(tmp_path)
    status, started, _ = await sup.http("POST", "/start", json={"createDailyRoom": True, "profile": "voice_bot",
                                                                 "body": {"ai": ai}})
    assert status == 200, started
    sid = started["sessionId"]
    client = RTVIClient(CallerOptions(room_url=started["dailyRoom"], token=started["dailyToken"], tone_hz=None,
                                      markers=False))
    await client.join()
    try:
        joined = await sup.wait_session(sid, lambda d: d["state"] == "joined")
        [me] = [p for p in joined["participants"] if p["is_bot"]]
        assert me["name"] == "Turn Tester"  # the bot_name its DailyTransport was given
        await talk(client, ai, wav, turns=1)
        live = await sup.wait_session(sid, lambda d: d["turns"]["count"] >= 1, timeout=15, what="a turn")
        assert_turn_figures(live, 1)
    finally:
        await client.conn.leave()
    ended = await sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=30)
    assert ended["state"] == "ended", ended
    assert_turn_figures(ended, 1)


async def test_a_pipecat_echo_sessions_frame_counters_count_its_audio(sup: SupervisorProcess) -> None:
    status, started, _ = await sup.http("POST", "/start", json={"createDailyRoom": True, "profile": "pipecat_echo"})
    assert status == 200, started
    sid = started["sessionId"]
    caller = Caller(CallerOptions(room_url=started["dailyRoom"], token=started["dailyToken"], seconds=2.0,
                                  await_echo=True))
    await caller.join()
    try:
        await caller.speak()
        await wait_until(lambda: caller.echoes >= 50, 10, "the echo of the caller's audio")
        live = await sup.wait_session(sid, lambda d: d["frames"]["in"] >= 100 and d["frames"]["out"] > 0,
                                      timeout=10, what="the worker's counts of the bot's audio")
        [me] = [p for p in live["participants"] if p["is_bot"]]
        assert me["name"] == "Echo bot"
    finally:
        await caller.leave()
    ended = await sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=20)
    assert ended["frames"]["in"] >= live["frames"]["in"] and ended["frames"]["out"] >= live["frames"]["out"], ended
