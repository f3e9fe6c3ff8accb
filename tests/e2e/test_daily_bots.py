"""A Daily Bots ``voice_2024_10`` request talks, offline, on a real supervisor.

``{"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"}`` with both base URLs at a
small OpenAI-compatible server this test starts (``tests/doubles/openai_server.py``): the
room's transcription is the sandbox's, which takes the text a synthetic caller says
(``callfleet caller --say``). The bot greets from ``initial_messages``, hears the caller's
sentence, says the LLM's words, and the caller hears it; with ``run_on_config`` it waits
for the RTVI client's ``client-ready`` before it speaks.

It also measures, without asserting on it, the time from the caller's final transcript to
the bot's first audible frame: the voice-to-voice overhead of the orchestration (turn
taking included) with instant local services.
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sandbox.caller import CallerOptions, percentile
from tests.conftest import REPO
from tests.doubles.openai_server import FakeOpenAI, text_of
from tests.rtvi_client import RTVIClient
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

# Seed 003's initial_messages, in its own shape (a user message with a list of text parts).
INSTRUCTIONS = "You are an assistant called Daily Bot. Keep responses brief and legible. Introduce yourself first."
INITIAL_MESSAGES = [{"role": "user", "content": [{"type": "text", "text": INSTRUCTIONS}]}]
TURNS = ["What is the capital of France?", "How tall is the Eiffel Tower?", "Tell me a short joke.",
         "What day is it today?", "Which river runs through Paris?", "How far away is the moon?",
         "Can you spell your name?", "Thank you very much."]


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProcess]:
    proc = SupervisorProcess(tmp_path_factory.mktemp("daily-bots"), None,
                             supervisor={"profiles": str(REPO / "configs" / "profiles.toml")},  # the shipped ones
                             sessions={"idle_timeout_s": 60, "join_timeout_s": 20})
    proc.start(timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    yield server
    await server.stop()


def request_body(base_url: str, run_on_config: bool = False) -> dict[str, Any]:
    llm_options: list[dict[str, Any]] = [{"name": "model", "value": "local-model"},
                                         {"name": "initial_messages", "value": INITIAL_MESSAGES},
                                         {"name": "temperature", "value": 0.2}]
    if run_on_config:
        llm_options.append({"name": "run_on_config", "value": True})
    return {
        "services": {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
        "config": [{"service": "llm", "options": llm_options},
                   {"service": "tts", "options": [{"name": "voice", "value": "nova"}]}],
        "service_options": {"custom_llm": {"base_url": base_url, "api_key": "any-llm-key"},
                            "openai_tts": {"base_url": base_url, "api_key": "any-tts-key"}},
    }


async def start_and_join(sup: SupervisorProcess, body: dict[str, Any]) -> tuple[dict[str, Any], RTVIClient]:
    bot = await sup.start_bot("voice_2024_10", **body)
    caller = RTVIClient(CallerOptions(room_url=bot["room_url"], token=bot["token"], tone_hz=None, markers=False))
    await caller.join()
    return bot, caller


def user_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [text_of(m) for m in messages if m.get("role") == "user"]


def spoken(openai: FakeOpenAI) -> str:
    return " ".join(s.text.strip() for s in openai.speeches)


async def test_voice_bot_greets_hears_the_caller_and_speaks_the_llms_words_offline(
        sup: SupervisorProcess, openai: FakeOpenAI) -> None:
    bot, caller = await start_and_join(sup, request_body(openai.base_url))
    try:
        # The greeting: without run_on_config the LLM runs on initial_messages once the caller joins.
        await wait_until(lambda: openai.chats, 20, "the greeting's chat completion")
        greeting = openai.chats[0]
        assert greeting.model == "local-model" and greeting.body.get("temperature") == 0.2
        assert [m["role"] for m in greeting.messages] == ["user"]
        assert text_of(greeting.messages[0]) == INSTRUCTIONS
        await wait_until(lambda: spoken(openai) == openai.replies[0], 10, "the greeting's words at the TTS")
        assert {s.voice for s in openai.speeches} == {"nova"}
        await wait_until(lambda: caller.loud_at, 10, "the bot's voice")

        said_to_voice_ms: list[float] = []
        said_to_llm_ms: list[float] = []
        for n, sentence in enumerate(TURNS, start=1):
            await wait_until(lambda: caller.quiet_for(0.5), 15, "the bot to finish speaking")
            said_at = time.monotonic()
            await caller.conn.request("say", text=sentence, is_final=True)  # what `callfleet caller --say` does
            await wait_until(lambda n=n: len(openai.chats) > n, 10, f"turn {n}'s chat completion")
            chat = openai.chats[n]
            assert user_texts(chat.messages)[-1] == sentence  # the LLM received what the caller said
            assert [m["role"] for m in chat.messages][-2:] == ["assistant", "user"]  # after its own words
            await wait_until(lambda t=said_at: caller.first_loud_after(t) is not None, 10, f"turn {n}'s voice")
            heard_at = caller.first_loud_after(said_at)
            assert heard_at is not None
            said_to_voice_ms.append((heard_at - said_at) * 1000)
            said_to_llm_ms.append((chat.at - said_at) * 1000)
            reply = openai.replies[n]
            await wait_until(lambda r=reply: r in spoken(openai), 10, f"turn {n}'s words at the TTS")
    finally:
        await caller.conn.leave()
    ended = await sup.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"))
    assert ended["state"] == "ended", ended

    # A bench-style figure, reported and never asserted (time on a shared machine is not a spec).
    voice, llm = sorted(said_to_voice_ms), sorted(said_to_llm_ms)
    after_llm = sorted(v - t for v, t in zip(said_to_voice_ms, said_to_llm_ms, strict=True))
    print(f"\nvoice-to-voice, final transcript -> first audible bot frame, {len(voice)} turns: "
          f"p50 {percentile(voice, 50):.0f} ms, p95 {percentile(voice, 95):.0f} ms "
          f"(mean {statistics.fmean(voice):.0f}); transcript -> LLM request p50 {percentile(llm, 50):.0f} ms "
          f"(the turn's end-of-speech wait); LLM request -> first audible frame p50 {percentile(after_llm, 50):.0f} ms, "
          f"p95 {percentile(after_llm, 95):.0f} ms")


async def test_with_run_on_config_the_bot_speaks_first_when_the_rtvi_client_is_ready(
        sup: SupervisorProcess, openai: FakeOpenAI) -> None:
    bot, caller = await start_and_join(sup, request_body(openai.base_url, run_on_config=True))
    try:
        await wait_until(lambda: ("on_participant_joined" in (e for e, _ in caller.events)), 20, "the bot to join")
        await asyncio.sleep(1.5)  # long enough for a greeting on join, which run_on_config must not make
        assert openai.chats == []
        ready_id = await caller.client_ready()
        assert [m["id"] for m in caller.rtvi("bot-ready")][0] == ready_id
        await wait_until(lambda: openai.chats, 10, "the greeting's chat completion")
        assert user_texts(openai.chats[0].messages) == [INSTRUCTIONS]
        await wait_until(lambda: caller.loud_at, 10, "the bot's voice")
        # RTVI reports the bot's side of the conversation to the client as it happens.
        await wait_until(lambda: caller.rtvi("bot-started-speaking"), 10, "RTVI bot-started-speaking")
    finally:
        await caller.conn.leave()
    await sup.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"))
