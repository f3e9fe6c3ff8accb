"""A Daily Bots voice session driven the way Daily's client SDKs drive one: over RTVI.

The test is the RTVI client (``tests/rtvi_client.py``: a synthetic caller in the sandbox
room that sends and reads ``label: "rtvi-ai"`` app messages). The bot is the built-in
``voice_2024_10`` pipeline on a real supervisor, with the sandbox's stand-in AI services
(``sandbox.ai``) as its LLM (``custom_llm``, which calls a tool when the user's words name
it) and its TTS (``openai_tts``, espeak-ng's speech where installed); the room's own
transcription (``"stt": "daily"``) hears what the caller declares it says, or, for the
interruption, the stand-in Deepgram hears the caller's real speech.

- ``client-ready`` gets ``bot-ready``; the user's transcripts and the bot's words arrive as
  RTVI messages.
- A function the client runs: announced with ``llm-function-call-started`` and
  ``llm-function-call-in-progress``, answered with ``llm-function-call-result``, and the LLM
  goes on with that result; unanswered, it ends with a tool result saying so, and a log line.
- A function the profile's server-side handler runs (``functions`` in the profile).
- A caller who speaks over the greeting interrupts it and is heard.

It also measures, without asserting on it, the voice-to-voice time of turns with and
without a function call. The units at the top need no supervisor: the ``tools`` option's
shapes, the pipeline's wiring, the profile's keys.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.caller import CallerOptions, percentile
from tests.rtvi_client import RTVIClient
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="Silero's VAD needs real speech: apt-get install espeak-ng")

REPO = Path(__file__).resolve().parents[2]
WEATHER_TOOLS = "tests/bots/weather_tools.py"
INSTRUCTIONS = "You are an assistant called Daily Bot. Keep responses brief and legible. Introduce yourself first."
INITIAL_MESSAGES = [{"role": "user", "content": [{"type": "text", "text": INSTRUCTIONS}]}]
LOCATION = {"type": "string", "description": "A city."}
# The same function as each LLM's API declares it, as Daily Bots takes it.
WEATHER_OPENAI = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather somewhere.",
    "parameters": {"type": "object", "properties": {"location": LOCATION}, "required": ["location"]}}}
WEATHER_ANTHROPIC = {"name": "get_weather", "description": "The weather somewhere.",
                     "input_schema": {"type": "object", "properties": {"location": LOCATION}, "required": ["location"]}}
WEATHER_GEMINI = {"function_declarations": [{"name": "get_weather", "description": "The weather somewhere.",
                                             "parameters": {"type": "object", "properties": {"location": LOCATION},
                                                            "required": ["location"]}}]}
TIME_OPENAI = {"type": "function", "function": {
    "name": "get_time", "description": "The time somewhere.",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}}
ASK_WEATHER = "What is the weather, location Paris?"  # the stand-in LLM calls get_weather(location="Paris")
CLIENT_TIMEOUT_S = 2
KEYS = {"OPENAI_API_KEY": "any"}  # the offline body's TTS needs one

PROFILES = f"""
[profiles.voice_2024_10]
kind = "pipecat"
bot = "worker.daily_bots.voice:bot"

[profiles.voice_impatient]
kind = "pipecat"
bot = "worker.daily_bots.voice:bot"
client_function_timeout_s = {CLIENT_TIMEOUT_S}

[profiles.voice_server_tools]
kind = "pipecat"
bot = "worker.daily_bots.voice:bot"
functions = {{get_weather = "{WEATHER_TOOLS}:get_weather"}}

[profiles.voice_broken_tools]
kind = "pipecat"
bot = "worker.daily_bots.voice:bot"
functions = {{get_weather = "{WEATHER_TOOLS}:not_async"}}
"""


# -- the tools option, the pipeline, the profile (no supervisor) ------------------------------------------


def test_tools_in_openai_anthropic_and_gemini_shapes_declare_the_same_function() -> None:
    from worker.daily_bots.tools import Tool, parse_tools

    expected = [Tool(name="get_weather", description="The weather somewhere.", properties={"location": LOCATION},
                     required=["location"])]
    for shape in (WEATHER_OPENAI, WEATHER_ANTHROPIC, WEATHER_GEMINI):
        assert parse_tools([shape]) == expected
    assert parse_tools([{"type": "function", "function": {"name": "hang_up"}}]) == [Tool(name="hang_up")]


@pytest.mark.parametrize("tools, path", [
    ({"name": "x"}, "config.llm.tools"),
    ([{"type": "function"}], "config.llm.tools[0].function"),
    ([{"type": "function", "function": {"name": "get weather"}}], "config.llm.tools[0].function.name"),
    ([{"name": "x", "input_schema": {"type": "array"}}], "config.llm.tools[0].input_schema"),
    ([{"name": "x", "input_schema": {"type": "object", "properties": {"a": {}}, "required": ["b"]}}],
     "config.llm.tools[0].input_schema.required"),
    ([{"description": "no name"}], "config.llm.tools[0]"),
    ([WEATHER_OPENAI, WEATHER_ANTHROPIC], "config.llm.tools: function 'get_weather' is declared twice"),
])
def test_a_malformed_tools_option_is_a_request_error_naming_its_path(tools: Any, path: str) -> None:
    from worker.daily_bots.request import RequestError, parse_request

    body = {"bot_profile": "voice_2024_10", "services": {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
            "config": [{"service": "llm", "options": [{"name": "tools", "value": tools}]}]}
    with pytest.raises(RequestError) as raised:
        parse_request(body, keys={})
    assert str(raised.value).startswith(path)


def tools_body(tools: list[Any], llm: str = "custom_llm") -> dict[str, Any]:
    from tests.unit.test_daily_bots_pipelines import offline_body

    body = offline_body()
    body["services"]["llm"] = llm
    body["config"][0]["options"].append({"name": "tools", "value": tools})
    return body


def test_the_pipeline_advertises_the_tools_and_waits_on_the_client_right_after_rtvi() -> None:
    from pipecat.processors.frameworks.rtvi import RTVIFunctionCallReportLevel

    from tests.unit.test_daily_bots_pipelines import StandInTransport, shape
    from worker.daily_bots import voice
    from worker.daily_bots.functions import ClientFunctions
    from worker.daily_bots.request import parse_request

    built = voice.build(parse_request(tools_body([WEATHER_ANTHROPIC, TIME_OPENAI]), keys=KEYS), StandInTransport())
    assert shape(built.processors)[:4] == ["transport-input", "RTVIProcessor", "ClientFunctions", "LLMUserAggregator"]
    llm = built.services[voice.ServiceType.LLM]
    # Whatever shape the request wrote, the OpenAI-compatible LLM is offered OpenAI's.
    assert llm.get_llm_adapter().to_provider_tools_format(built.context.tools) == [WEATHER_OPENAI, TIME_OPENAI]
    client = built.processors[2]
    assert isinstance(client, ClientFunctions) and client.timeout_s == 10  # the documented default
    assert {name: llm._functions[name].handler for name in ("get_weather", "get_time")} == {
        "get_weather": client.call, "get_time": client.call}
    assert built.functions is not None and built.functions.report_levels() == {
        "*": RTVIFunctionCallReportLevel.NONE, "get_weather": RTVIFunctionCallReportLevel.ARGUMENTS,
        "get_time": RTVIFunctionCallReportLevel.ARGUMENTS}


def test_anthropic_is_offered_the_tools_in_its_own_shape() -> None:
    from tests.unit.test_daily_bots_pipelines import StandInTransport, needs
    from worker.daily_bots import voice
    from worker.daily_bots.request import parse_request

    needs("anthropic")
    body = tools_body([WEATHER_OPENAI], llm="anthropic")
    built = voice.build(parse_request(body, keys={**KEYS, "ANTHROPIC_API_KEY": "ant"}), StandInTransport())
    llm = built.services[voice.ServiceType.LLM]
    assert llm.get_llm_adapter().to_provider_tools_format(built.context.tools) == [WEATHER_ANTHROPIC]


def test_the_realtime_profile_advertises_the_tools_and_runs_them_alike() -> None:
    from tests.unit.test_daily_bots_pipelines import SEED_KEYS, StandInTransport, needs, seed_body, shape
    from worker.daily_bots import realtime
    from worker.daily_bots.request import parse_request

    needs("openai_realtime")
    body = seed_body("openai_realtime_beta_2024_10")
    body["config"][0]["options"].append({"name": "tools", "value": [WEATHER_ANTHROPIC]})
    built = realtime.build(parse_request(body, SEED_KEYS), StandInTransport())
    s2s = built.services[realtime.ServiceType.S2S]
    assert [t.name for t in built.context.tools.standard_tools] == ["get_weather"]
    assert s2s._functions["get_weather"].handler == built.processors[2].call
    assert shape(built.processors)[1:3] == ["RTVIProcessor", "ClientFunctions"]


def test_a_function_the_profile_names_a_handler_for_runs_on_the_server_the_others_on_the_client() -> None:
    from pipecat.processors.frameworks.rtvi import RTVIFunctionCallReportLevel

    from tests.unit.test_daily_bots_pipelines import StandInTransport, shape
    from worker.bot_loader import load_module
    from worker.daily_bots import functions, handlers, voice
    from worker.daily_bots.request import parse_request

    request = parse_request(tools_body([WEATHER_OPENAI, TIME_OPENAI]), keys=KEYS)
    profile = handlers.ProfileFunctions({"get_weather": f"{WEATHER_TOOLS}:get_weather"}, client_timeout_s=3)
    calls = functions.prepare(request.tools, profile)
    assert calls.server == {"get_weather": load_module(WEATHER_TOOLS).get_weather}
    assert calls.client is not None and calls.client.timeout_s == 3
    assert calls.report_levels() == {"*": RTVIFunctionCallReportLevel.NONE,
                                     "get_time": RTVIFunctionCallReportLevel.ARGUMENTS}
    # The session's profile functions reach the build through the bot task's context.
    context = handlers.session_context(__import__("contextvars").copy_context(), profile.specs, 3)
    built = context.run(voice.build, request, StandInTransport())
    llm = built.services[voice.ServiceType.LLM]
    assert llm._functions["get_weather"].handler is load_module(WEATHER_TOOLS).get_weather
    assert "ClientFunctions" in shape(built.processors)
    # Every function on the server: nothing waits on the client.
    only_weather = parse_request(tools_body([WEATHER_OPENAI]), keys=KEYS)
    assert functions.prepare(only_weather.tools, profile).processors() == []


@pytest.mark.parametrize("spec, error", [
    (f"{WEATHER_TOOLS}:not_async", "functions.get_weather: .* must be an async function"),
    (f"{WEATHER_TOOLS}:nowhere", "functions.get_weather: .* has no function 'nowhere'"),
    ("no_such_package.tools:get_weather", "functions.get_weather: does not import"),
])
def test_a_profile_handler_that_cannot_be_called_fails_the_build_naming_it(spec: str, error: str) -> None:
    from worker.daily_bots import functions, handlers
    from worker.daily_bots.tools import Tool

    with pytest.raises(handlers.HandlerLoadError, match=error):
        functions.prepare([Tool(name="x")], handlers.ProfileFunctions({"get_weather": spec}))


def test_a_pipecat_profile_takes_functions_only_for_a_built_in_pipeline_and_hands_them_to_the_worker() -> None:
    from protocol.messages import AudioSettings, RunBot
    from supervisor.bots.base import BotConfigError, Hosting, Seat
    from supervisor.bots.pipecat import PipecatBot

    config = {"bot": "worker.daily_bots.voice:bot", "functions": {"get_weather": "mypkg.tools:get_weather"},
              "client_function_timeout_s": 4}
    PipecatBot.check_config(config)
    for bad, key in [({**config, "bot": "bots/mine.py:bot"}, "client_function_timeout_s"),
                     ({**config, "functions": {"get weather": "m:f"}}, "functions.get weather"),
                     ({**config, "functions": {"get_weather": "mypkg.tools"}}, "functions.get_weather"),
                     ({**config, "client_function_timeout_s": 0}, "client_function_timeout_s")]:
        with pytest.raises(BotConfigError) as raised:
            PipecatBot.check_config(bad)
        assert raised.value.key == key
    seat = Seat(id=1, session_id="s", room_url="http://room", token="t", user_name="bot",
                audio=AudioSettings(), timeout_s=5)
    hosting = Hosting(body={}, api_url="http://proxy", api_key="k", env={}, provider_keys={})
    run = PipecatBot(None, config).join_message(seat, lambda: hosting)  # type: ignore[arg-type]
    assert isinstance(run, RunBot)
    assert (run.functions, run.client_function_timeout_s) == ({"get_weather": "mypkg.tools:get_weather"}, 4)


# -- over RTVI, on a real supervisor ----------------------------------------------------------------------


class StandIns:
    """The sandbox's stand-in AI services, over HTTP (the sandbox is the supervisor's child)."""

    def __init__(self, url: str) -> None:
        self.url = url  # http://127.0.0.1:PORT/ai

    async def _get(self, path: str) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/requests", params={"path": path}) as resp:
            assert resp.status == 200
            return list((await resp.json())["requests"])

    async def chats(self, tag: str) -> list[dict[str, Any]]:
        """The chat requests of the session whose LLM model is ``llm-<tag>``: body and ``at``."""
        return [r for r in await self._get("/chat/completions") if r["body"].get("model") == f"llm-{tag}"]

    async def spoken(self, tag: str) -> str:
        """What the session whose TTS model is ``tts-<tag>`` asked the TTS to say, in order."""
        return " ".join(str(r["body"].get("input", "")).strip() for r in await self._get("/audio/speech")
                        if r["body"].get("model") == f"tts-{tag}")

    async def wait_chats(self, tag: str, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        return await wait_until(lambda: self.chats(tag), timeout, f"chat request {count} of llm-{tag}",
                                until=lambda chats: len(chats) >= count)

    async def wait_spoken(self, tag: str, words: str, timeout: float = 15) -> str:
        return await wait_until(lambda: self.spoken(tag), timeout, f"the TTS of tts-{tag} to say {words!r}",
                                until=lambda said: words in said)

    async def script(self, *texts: str) -> None:
        async with aiohttp.ClientSession() as http, \
                http.post(f"{self.url}/script", json={"transcripts": list(texts)}) as resp:
            assert resp.status == 200


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProcess]:
    tmp = tmp_path_factory.mktemp("daily-bots-rtvi")
    (tmp / "profiles.toml").write_text(PROFILES)
    proc = SupervisorProcess(tmp, None, supervisor={"profiles": str(tmp / "profiles.toml")},
                             sessions={"idle_timeout_s": 60, "join_timeout_s": 20})
    proc.start(timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
def ai(sup: SupervisorProcess) -> StandIns:
    return StandIns(f"http://127.0.0.1:{sup.config['sandbox']['port']}/ai")


@pytest.fixture
def tag() -> str:
    """This test's name for its LLM and TTS models: how its requests are told from others'."""
    return uuid.uuid4().hex[:10]


def request_body(ai: StandIns, tag: str, *, tools: list[Any] | None = None, stt: str = "daily",
                 run_on_config: bool = False) -> dict[str, Any]:
    llm: list[dict[str, Any]] = [{"name": "model", "value": f"llm-{tag}"},
                                 {"name": "initial_messages", "value": INITIAL_MESSAGES}]
    if tools:
        llm.append({"name": "tools", "value": tools})
    if run_on_config:
        llm.append({"name": "run_on_config", "value": True})
    options: dict[str, Any] = {"custom_llm": {"base_url": f"{ai.url}/openai/v1", "api_key": "sandbox"},
                               "openai_tts": {"base_url": f"{ai.url}/openai/v1", "api_key": "sandbox"}}
    if stt == "deepgram":
        options["deepgram"] = {"base_url": f"{ai.url}/deepgram", "api_key": "sandbox"}
    return {"services": {"stt": stt, "llm": "custom_llm", "tts": "openai_tts"},
            "config": [{"service": "llm", "options": llm},
                       {"service": "tts", "options": [{"name": "model", "value": f"tts-{tag}"}]}],
            "service_options": options}


@pytest.fixture
async def session(sup: SupervisorProcess) -> AsyncIterator[Any]:
    """Start a session and join it as an RTVI client: ``await session(profile, body)``."""
    started: list[tuple[dict[str, Any], RTVIClient]] = []

    async def start(profile: str, body: dict[str, Any]) -> RTVIClient:
        bot = await sup.start_bot(profile, **body)
        client = RTVIClient(CallerOptions(room_url=bot["room_url"], token=bot["token"], tone_hz=None,
                                          markers=False))
        await client.join()
        started.append((bot, client))
        return client

    yield start
    for bot, client in started:
        await client.conn.leave()
        ended = await sup.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"))
        assert ended["state"] == "ended", ended


def texts(messages: list[dict[str, Any]]) -> str:
    return "".join(str(m["data"].get("text", "")) for m in messages)


async def greeted(client: RTVIClient) -> None:
    """The greeting was heard and is over: the next turn is the caller's."""
    await wait_until(lambda: client.loud_at, 20, "the greeting's voice")
    await wait_until(lambda: client.quiet_for(0.5), 20, "the greeting to end")


async def test_an_rtvi_client_gets_bot_ready_and_the_conversation_as_rtvi_messages(
        session: Any, ai: StandIns, tag: str) -> None:
    from sandbox.ai.replies import GREETING

    client = await session("voice_2024_10", request_body(ai, tag, run_on_config=True))
    ready_id = await client.client_ready()
    ready = next(m for m in client.rtvi("bot-ready") if m["id"] == ready_id)
    assert ready["data"]["about"]["library"] == "pipecat-ai"
    await greeted(client)
    assert texts(client.rtvi("bot-llm-text")) == GREETING
    assert client.rtvi("bot-started-speaking") and client.rtvi("bot-stopped-speaking")

    heard = len(client.rtvi("bot-llm-text"))
    await client.say("What is the capital of France?")
    [transcript] = await client.wait_rtvi("user-transcription")
    assert (transcript["data"]["text"], transcript["data"]["final"]) == ("What is the capital of France?", True)
    assert transcript["data"]["user_id"] == client.participant_id
    await client.wait_rtvi("bot-llm-stopped", count=2)
    assert texts(client.rtvi("bot-llm-text")[heard:]) == "You said: What is the capital of France."
    await ai.wait_spoken(tag, "You said: What is the capital of France.")
    await wait_until(lambda: "What is the capital of France." in texts(client.rtvi("bot-transcription")), 10,
                   "RTVI bot-transcription of the reply")


async def test_a_function_the_client_runs_makes_the_round_trip_over_rtvi(
        session: Any, ai: StandIns, tag: str) -> None:
    client = await session("voice_2024_10", request_body(ai, tag, tools=[WEATHER_OPENAI]))
    await client.client_ready()
    await greeted(client)
    [greeting] = await ai.chats(tag)
    assert greeting["body"]["tools"] == [WEATHER_OPENAI]  # advertised to the LLM from the first request

    await client.say(ASK_WEATHER)
    [started] = await client.wait_rtvi("llm-function-call-started")
    assert started["data"] == {"function_name": "get_weather"}
    [call] = await client.wait_rtvi("llm-function-call-in-progress")
    assert call["data"]["function_name"] == "get_weather" and call["data"]["arguments"] == {"location": "Paris"}
    result = {"conditions": "sunny", "temperature_c": 21}
    await client.answer(call["data"], result)

    chats = await ai.wait_chats(tag, 3)
    assert chats[1]["body"]["messages"][-1] == {"role": "user", "content": ASK_WEATHER}
    *_, asked, answered = chats[2]["body"]["messages"]
    assert asked["role"] == "assistant" and asked["tool_calls"][0]["id"] == call["data"]["tool_call_id"]
    assert answered == {"role": "tool", "tool_call_id": call["data"]["tool_call_id"], "content": json.dumps(result)}
    reply = f"The result is: {json.dumps(result)}."
    await ai.wait_spoken(tag, reply)
    await wait_until(lambda: reply in texts(client.rtvi("bot-llm-text")), 10, "the reply as RTVI bot-llm-text")
    [stopped] = await client.wait_rtvi("llm-function-call-stopped")
    assert stopped["data"]["tool_call_id"] == call["data"]["tool_call_id"] and not stopped["data"]["cancelled"]


async def test_a_call_the_client_does_not_answer_ends_with_a_tool_result_saying_so_and_a_log_line(
        sup: SupervisorProcess, session: Any, ai: StandIns, tag: str) -> None:
    client = await session("voice_impatient", request_body(ai, tag, tools=[WEATHER_ANTHROPIC]))
    await client.client_ready()
    await greeted(client)
    await client.say(ASK_WEATHER)
    [call] = await client.wait_rtvi("llm-function-call-in-progress")
    tool_call_id = call["data"]["tool_call_id"]

    chats = await ai.wait_chats(tag, 3, timeout=CLIENT_TIMEOUT_S + 15)
    told = chats[2]["body"]["messages"][-1]
    unanswered = f"The client did not answer this call of get_weather within {CLIENT_TIMEOUT_S} seconds."
    assert told == {"role": "tool", "tool_call_id": tool_call_id, "content": json.dumps({"error": unanswered})}
    await ai.wait_spoken(tag, unanswered)
    logged = f"function call get_weather [{tool_call_id}]: the RTVI client did not answer within {CLIENT_TIMEOUT_S}s"
    await wait_until(lambda: logged in sup.log_path.read_text(), 10, "the worker's log line")

    # An answer after the call ended changes nothing: no second result reaches the LLM.
    await client.answer(call["data"], {"conditions": "late"})
    await wait_until(lambda: f"[{tool_call_id}]: no such call is waiting" in sup.log_path.read_text(), 10,
                   "the late answer's log line")
    assert len(await ai.chats(tag)) == 3


async def test_a_function_the_profile_handles_runs_on_the_server_and_the_client_learns_only_that_it_ran(
        session: Any, ai: StandIns, tag: str) -> None:
    client = await session("voice_server_tools", request_body(ai, tag, tools=[WEATHER_OPENAI]))
    await client.client_ready()
    await greeted(client)
    await client.say(ASK_WEATHER)

    chats = await ai.wait_chats(tag, 3)
    answered = chats[2]["body"]["messages"][-1]
    result = {"conditions": "sunny", "location": "Paris", "answered_by": "the server"}
    assert answered["role"] == "tool" and answered["content"] == json.dumps(result)
    await ai.wait_spoken(tag, f"The result is: {json.dumps(result)}.")
    [call] = client.rtvi("llm-function-call-in-progress")
    assert call["data"] == {"tool_call_id": answered["tool_call_id"]}  # no name, no arguments


async def test_a_profile_handler_pipecat_could_not_call_fails_the_session_as_bot_error_naming_it(
        sup: SupervisorProcess, ai: StandIns, tag: str) -> None:
    bot = await sup.start_bot("voice_broken_tools", **request_body(ai, tag, tools=[WEATHER_OPENAI]))
    failed = await sup.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"), timeout=30)
    assert (failed["state"], failed["end_reason"]) == ("failed", "bot_error"), failed
    assert "functions.get_weather" in sup.log_path.read_text()


@needs_espeak
async def test_a_caller_who_speaks_over_the_greeting_interrupts_it_and_is_heard(
        session: Any, ai: StandIns, tag: str, tmp_path: Path) -> None:
    from callfleet.audio import write_wav
    from sandbox.ai.synthesis import synthesize

    sentence = "Wait, what is the capital of France?"
    rate = 16000
    speech = await synthesize(sentence, rate) + bytes(2 * rate * 3 // 2)  # then 1.5 s of silence: the turn ends
    write_wav(tmp_path / "caller.wav", speech, rate)
    await ai.script("what is the capital of France")  # what the stand-in Deepgram hears it say
    client = await session("voice_2024_10", request_body(ai, tag, stt="deepgram"))
    await client.client_ready()
    await wait_until(lambda: client.loud_at, 20, "the greeting's voice")
    await asyncio.sleep(0.8)  # well into the greeting, which lasts seconds

    client.opts.wav = tmp_path / "caller.wav"
    spoke_at = time.monotonic()
    await client.speak()
    chats = await ai.wait_chats(tag, 2)
    heard = chats[1]
    assert heard["body"]["messages"][-1] == {"role": "user", "content": "what is the capital of France"}
    await client.wait_rtvi("bot-interrupted")
    assert client.rtvi("user-started-speaking")
    # The greeting went quiet at once: nothing of it from a second after the caller began
    # until the LLM was asked for the answer (the rest of the greeting would have filled that).
    assert client.loud_between(spoke_at + 1.0, heard["at"]) == []
    await ai.wait_spoken(tag, "You said: what is the capital of France.")


async def test_turns_with_and_without_a_function_call_are_answered_in_speech_and_timed(
        session: Any, ai: StandIns, tag: str) -> None:
    """Plain turns, turns whose function runs on the server, and turns whose function the
    client runs (answering the moment it is announced); the figure is printed, never asserted."""
    client = await session("voice_server_tools", request_body(ai, tag, tools=[WEATHER_OPENAI, TIME_OPENAI]))
    client.answers["get_time"] = {"time": "12:00"}
    await client.client_ready()
    await greeted(client)
    turns = [("none", "What is the capital of France?", "You said: What is the capital of France."),
             ("server", ASK_WEATHER, "The result is:"),
             ("client", "What time is it, timezone UTC?", 'The result is: {"time": "12:00"}.')] * 4
    voice_ms: dict[str, list[float]] = {"none": [], "server": [], "client": []}
    llm_ms: dict[str, list[float]] = {"none": [], "server": [], "client": []}
    call_ms: dict[str, list[float]] = {"none": [], "server": [], "client": []}
    chats = 1
    for kind, sentence, reply in turns:
        await wait_until(lambda: client.quiet_for(0.5), 20, "the bot to finish speaking")
        said_at = time.monotonic()
        await client.say(sentence)
        chats += 1 if kind == "none" else 2
        requests = await ai.wait_chats(tag, chats)
        heard_at = await wait_until(partial(client.first_loud_after, said_at), 15, f"the answer to {sentence!r}")
        assert (await ai.wait_spoken(tag, reply)).count(reply) >= 1
        voice_ms[kind].append((heard_at - said_at) * 1000)
        llm_ms[kind].append((heard_at - requests[-1]["at"]) * 1000)
        if kind != "none":  # the call itself: from the request that made it to the one with its result
            call_ms[kind].append((requests[-1]["at"] - requests[-2]["at"]) * 1000)

    def p(values: list[float], pct: int) -> float:
        return percentile(sorted(values), pct)

    print("\nvoice-to-voice, final transcript -> first audible bot frame (stand-in LLM, espeak-ng TTS), "
          f"{len(turns) // 3} turns each:")
    for kind, label in (("none", "no function call"), ("server", "a server-side function"),
                        ("client", "a client function over RTVI")):
        call = f"; the call (LLM request -> the next, with its result) p50 {p(call_ms[kind], 50):.0f} ms" \
            if call_ms[kind] else ""
        print(f"  {label}: p50 {p(voice_ms[kind], 50):.0f} ms, max {max(voice_ms[kind]):.0f} ms "
              f"(mean {statistics.fmean(voice_ms[kind]):.0f}); last LLM request -> first audible frame "
              f"p50 {p(llm_ms[kind], 50):.0f} ms{call}")
