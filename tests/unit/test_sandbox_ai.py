"""The sandbox's stand-in AI services (``sandbox.ai``), hosted in a small aiohttp app here.

Each endpoint is driven twice: on the wire (the exact SSE chunks, Deepgram's messages, the
bodies a client gets) and by the real client, Pipecat's own service in a small pipeline
(OpenAILLMService with a registered function, OpenAITTSService, OpenAISTTService,
DeepgramSTTService), pointed at the stand-in by the ``base_url`` the module documents.
Speech comes from ``sandbox.ai.synthesis`` (espeak-ng where it is installed; the checks that
need Silero's VAD to hear it as speech want espeak-ng and say so).
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import shutil
import wave
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from callfleet.audio import rms
from sandbox.ai import StandIns, setup
from sandbox.ai.replies import GREETING
from sandbox.ai.script import PLACEHOLDER
from sandbox.ai.synthesis import synthesize, voiced_signal
from sandbox.ai.vad import HANGOVER_S

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="Silero's VAD needs real speech: apt-get install espeak-ng")

RATE = 16000
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather somewhere.",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "A city."},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"}},
        "required": ["location"]}}}


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    ai: StandIns

    @property
    def openai(self) -> str:
        return f"{self.url}/ai/openai/v1"

    @property
    def deepgram(self) -> str:
        return f"{self.url}/ai/deepgram"


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    app = web.Application()
    stand_ins = setup(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Served(url=f"http://127.0.0.1:{port}", ai=stand_ins)
    finally:
        await runner.cleanup()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(2 * round(seconds * rate))


def chunks(pcm: bytes, rate: int = RATE, ms: int = 20) -> list[bytes]:
    size = 2 * rate * ms // 1000
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


def wav(pcm: bytes, rate: int = RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


# -- chat completions on the wire ------------------------------------------------------------------------


async def post_chat(served: Served, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    async with aiohttp.ClientSession() as http, \
            http.post(f"{served.openai}/chat/completions", json=body, headers=headers) as resp:
        if body.get("stream"):
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            return resp.status, await resp.text()
        return resp.status, await resp.json()


def events(sse: str) -> list[Any]:
    """The ``data:`` payloads of a server-sent event stream, ``[DONE]`` as the string it is."""
    assert sse.endswith("\n\n")
    payloads = []
    for event in sse.split("\n\n")[:-1]:
        assert event.startswith("data: ")
        data = event.removeprefix("data: ")
        payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


async def test_a_streamed_reply_is_openais_chunks_role_first_then_words_then_finish_then_usage_then_done(
        served: Served) -> None:
    status, sse = await post_chat(served, {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True},
                                           "messages": [{"role": "system", "content": "Be brief."},
                                                        {"role": "user", "content": "The sky is green."}]})
    assert status == 200
    *chunks_, done = events(sse)
    assert done == "[DONE]"
    assert {c["object"] for c in chunks_} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks_}) == 1 and {c["model"] for c in chunks_} == {"gpt-4o"}
    first, *words, finish, usage = chunks_
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert "".join(w["choices"][0]["delta"]["content"] for w in words) == "You said: The sky is green."
    assert all(w["choices"][0]["finish_reason"] is None for w in [first, *words])
    assert finish["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert usage["choices"] == []
    assert set(usage["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    assert all(c["usage"] is None for c in [first, *words, finish])


async def test_without_include_usage_no_chunk_carries_usage(served: Served) -> None:
    _, sse = await post_chat(served, {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Hi."}]})
    *chunks_, done = events(sse)
    assert done == "[DONE]" and all("usage" not in c for c in chunks_)
    assert chunks_[-1]["choices"][0]["finish_reason"] == "stop"


async def test_a_streamed_function_call_names_the_function_then_streams_its_arguments_in_fragments(
        served: Served) -> None:
    _, sse = await post_chat(served, {
        "model": "m", "stream": True, "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "What is the weather for location Lisbon, in fahrenheit?"}]})
    *chunks_, done = events(sse)
    deltas = [c["choices"][0]["delta"] for c in chunks_]
    opening = deltas[0]
    assert opening["role"] == "assistant" and opening["content"] is None
    [call] = opening["tool_calls"]
    assert call["index"] == 0 and call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:-1]]
    assert len(fragments) > 1  # arguments arrive in pieces, as OpenAI streams them
    assert all(set(d["tool_calls"][0]) == {"index", "function"} for d in deltas[1:-1])
    assert json.loads("".join(fragments)) == {"location": "Lisbon", "unit": "fahrenheit", "days": 1}
    assert chunks_[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_a_whole_reply_carries_the_tool_calls_and_the_same_conversation_gets_the_same_call(
        served: Served) -> None:
    body = {"model": "m", "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "Call get_weather with location San Francisco."}]}
    _, first = await post_chat(served, body)
    _, again = await post_chat(served, body)
    assert first["object"] == "chat.completion"
    [choice] = first["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "San Francisco", "unit": "celsius", "days": 1}
    assert again["choices"] == first["choices"]


async def test_a_tool_result_is_answered_in_words_and_tool_choice_none_never_calls(served: Served) -> None:
    asked = {"role": "user", "content": "What is the weather in Paris?"}
    _, answer = await post_chat(served, {"model": "m", "tools": [WEATHER_TOOL], "messages": [
        asked,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 degrees"}]})
    assert answer["choices"][0]["message"]["content"] == "The result is: sunny, 21 degrees."
    assert answer["choices"][0]["finish_reason"] == "stop"
    _, refused = await post_chat(served, {"model": "m", "tools": [WEATHER_TOOL], "tool_choice": "none",
                                          "messages": [asked]})
    assert refused["choices"][0]["message"]["content"] == "You said: What is the weather in Paris."
    _, unnamed = await post_chat(served, {"model": "m", "tools": [WEATHER_TOOL],
                                          "messages": [{"role": "user", "content": "Tell me a joke."}]})
    assert "tool_calls" not in unnamed["choices"][0]["message"]


async def test_initial_messages_asking_for_an_introduction_or_a_system_prompt_alone_get_the_greeting(
        served: Served) -> None:
    daily_bots = [{"role": "user", "content": [{"type": "text", "text": "You are Daily Bot. Introduce yourself first."}]}]
    for messages in (daily_bots, [{"role": "system", "content": "You are a helpful assistant."}]):
        _, reply = await post_chat(served, {"model": "m", "messages": messages})
        assert reply["choices"][0]["message"]["content"] == GREETING


async def test_a_malformed_chat_request_is_a_400_in_openais_error_shape(served: Served) -> None:
    status, body = await post_chat(served, {"model": "m", "messages": []})
    assert status == 400 and body["error"]["type"] == "invalid_request_error" and "messages" in body["error"]["message"]
    status, body = await post_chat(served, {"model": "m", "tools": [WEATHER_TOOL], "messages": [{"role": "user", "content": "x"}],
                                            "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    assert status == 400 and "nope" in body["error"]["message"]


async def test_every_request_is_logged_with_its_body_and_authorization_whatever_the_key_or_none(
        served: Served) -> None:
    await post_chat(served, {"model": "a", "messages": [{"role": "user", "content": "one"}]},
                    headers={"Authorization": "Bearer any-key-at-all"})
    await post_chat(served, {"model": "b", "messages": [{"role": "user", "content": "two"}]})
    logged = served.ai.log.entries("/chat/completions")
    assert [(e.body["model"], e.authorization) for e in logged] == [("a", "Bearer any-key-at-all"), ("b", None)]
    assert logged[0].path == "/ai/openai/v1/chat/completions" and logged[0].method == "POST"
    async with aiohttp.ClientSession() as http, http.get(f"{served.url}/ai/requests?path=/chat/completions") as resp:
        over_http = await resp.json()
    assert [r["authorization"] for r in over_http["requests"]] == ["Bearer any-key-at-all", None]


# -- speech and transcription on the wire ----------------------------------------------------------------


async def test_speech_is_pcm_at_24_khz_the_same_for_the_same_text_and_longer_for_longer_text(served: Served) -> None:
    async def speak(text: str, **extra: Any) -> bytes:
        async with aiohttp.ClientSession() as http, http.post(f"{served.openai}/audio/speech", json={
                "model": "gpt-4o-mini-tts", "voice": "alloy", "input": text, "response_format": "pcm", **extra}) as resp:
            assert resp.status == 200
            return await resp.read()

    short, again, long = await speak("Hello."), await speak("Hello."), await speak("Hello there, how are you today?")
    assert short == again and len(long) > len(short) and len(short) % 2 == 0
    at_16k = await speak("Hello.", sample_rate=16000)
    assert abs(len(at_16k) / len(short) - 16000 / 24000) < 0.01  # the same speech, at the rate asked for


def test_without_espeak_ng_speech_is_a_loud_signal_as_long_as_the_text() -> None:
    short, long = voiced_signal("Hi.", RATE), voiced_signal("Hello there, how are you doing today?", RATE)
    assert voiced_signal("Hi.", RATE) == short and len(long) > 2 * len(short)
    assert rms(long) > 0.05 * 32768


async def post_transcription(served: Served, audio: bytes, response_format: str = "json") -> Any:
    form = aiohttp.FormData()
    form.add_field("file", audio, filename="audio.wav", content_type="audio/wav")
    form.add_field("model", "gpt-transcribe")
    form.add_field("response_format", response_format)
    async with aiohttp.ClientSession() as http, http.post(f"{served.openai}/audio/transcriptions", data=form) as resp:
        assert resp.status == 200
        return await resp.json() if response_format != "text" else await resp.text()


async def test_a_transcription_of_speech_takes_the_scripted_text_and_of_silence_is_empty(served: Served) -> None:
    served.ai.script.push("book a table for two")
    speech = await synthesize("Book a table for two.", RATE)
    assert await post_transcription(served, wav(silence(1.0))) == {"text": ""}
    assert await post_transcription(served, wav(speech)) == {"text": "book a table for two"}
    assert await post_transcription(served, wav(speech), "text") == PLACEHOLDER  # the script ran out
    [first, *_] = served.ai.log.entries("/audio/transcriptions")
    assert first.body["model"] == "gpt-transcribe" and first.body["file"]["bytes"] == len(wav(silence(1.0)))


async def test_the_script_is_set_appended_and_read_over_http(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{served.url}/ai/script", json={"transcripts": ["one", "two"]}) as resp:
            assert await resp.json() == {"transcripts": ["one", "two"]}
        served.ai.script.push("three")  # what a phone about to speak does
        async with http.post(f"{served.url}/ai/script", json={"transcripts": ["four"], "append": True}) as resp:
            assert await resp.json() == {"transcripts": ["one", "two", "three", "four"]}
        async with http.post(f"{served.url}/ai/script", json={"transcripts": "one"}) as resp:
            assert resp.status == 400
        assert served.ai.script.take() == "one"
        async with http.get(f"{served.url}/ai/script") as resp:
            assert await resp.json() == {"transcripts": ["two", "three", "four"]}


# -- Deepgram's live protocol on the wire ---------------------------------------------------------------


async def deepgram_session(served: Served, audio: Sequence[bytes | str], query: str,
                           headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Send ``audio`` (bytes, or a control message's type) then ``CloseStream``; every
    message the stand-in sends, up to its closing the socket."""
    url = f"{served.deepgram.replace('http://', 'ws://')}/v1/listen?{query}"
    received: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        for piece in audio:
            if isinstance(piece, bytes):
                await ws.send_bytes(piece)
            else:
                await ws.send_str(json.dumps({"type": piece}))
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        async for message in ws:
            received.append(json.loads(message.data))
    return received


QUERY = "model=nova-3-general&encoding=linear16&sample_rate=16000&channels=1&interim_results=true" \
        "&vad_events=true&utterance_end_ms=1000"


async def test_deepgram_hears_an_utterance_as_speech_started_interims_a_final_result_and_utterance_end(
        served: Served) -> None:
    served.ai.script.push("what is the weather in Paris")
    speech = await synthesize("What is the weather in Paris?", RATE)
    got = await deepgram_session(served, chunks(silence(0.5) + speech + silence(1.5)), QUERY,
                                 headers={"Authorization": "Token any-key"})
    kinds = [m["type"] for m in got]
    assert kinds[0] == "SpeechStarted" and kinds[-2:] == ["UtteranceEnd", "Metadata"]
    assert set(kinds[1:-2]) == {"Results"}
    results = [m for m in got if m["type"] == "Results"]
    *interims, final = results
    assert interims and not any(r["is_final"] for r in interims)
    assert "what is the weather in Paris".startswith(interims[0]["channel"]["alternatives"][0]["transcript"])
    assert final["is_final"] and final["speech_final"] and not final["from_finalize"]
    alternative = final["channel"]["alternatives"][0]
    assert alternative["transcript"] == "what is the weather in Paris"
    assert [w["word"] for w in alternative["words"]] == ["what", "is", "the", "weather", "in", "paris"]
    assert got[0]["timestamp"] == final["start"] >= 0.5  # where the speech begins, after the leading silence
    assert got[-2]["last_word_end"] == pytest.approx(final["start"] + final["duration"])
    assert got[-1]["duration"] == pytest.approx((len(speech) + len(silence(2.0))) / 2 / RATE, abs=0.03)
    assert served.ai.log.entries("/listen")[0].authorization == "Token any-key"
    assert served.ai.log.entries("/listen")[0].body["sample_rate"] == "16000"


async def test_deepgram_hears_nothing_in_silence(served: Served) -> None:
    got = await deepgram_session(served, chunks(silence(3.0)), QUERY)
    assert [m["type"] for m in got] == ["Metadata"]
    assert served.ai.script.pending() == []


async def test_finalize_sends_the_utterance_at_once_and_the_rest_of_it_adds_no_words(served: Served) -> None:
    served.ai.script.push("stop right there", "next")
    speech = await synthesize("Stop right there, right now.", RATE)
    half = len(speech) // 4 * 2
    got = await deepgram_session(served, ["Finalize", *chunks(speech[:half]), "KeepAlive", "Finalize",
                                          *chunks(speech[half:] + silence(1.0))],
                                 "encoding=linear16&sample_rate=16000")
    results = [(m["is_final"], m["from_finalize"], m["channel"]["alternatives"][0]["transcript"])
               for m in got if m["type"] == "Results"]
    # The first Finalize had nothing to finalize and says so; no vad_events or interims were asked for.
    assert results == [(True, True, ""), (True, True, "stop right there")]
    assert [m["type"] for m in got][-1] == "Metadata"
    assert served.ai.script.pending() == ["next"]


async def test_two_channels_are_heard_as_one_and_an_unservable_query_is_refused_before_the_upgrade(
        served: Served) -> None:
    import numpy as np

    mono = np.frombuffer(await synthesize("Two channels.", RATE), dtype="<i2")
    stereo = np.repeat(mono, 2).tobytes()
    served.ai.script.push("two channels")
    got = await deepgram_session(served, [stereo], "encoding=linear16&sample_rate=16000&channels=2")
    assert [m["channel"]["alternatives"][0]["transcript"] for m in got if m["type"] == "Results"] == ["two channels"]
    async with aiohttp.ClientSession() as http:
        for query in ("encoding=opus&sample_rate=16000", "encoding=linear16", "encoding=linear16&sample_rate=fast"):
            async with http.get(f"{served.deepgram}/v1/listen?{query}") as resp:
                assert resp.status == 400
                assert (await resp.json())["err_code"] == "Bad Request"


# -- the real Pipecat services --------------------------------------------------------------------------


class Collector:
    """A processor at the end of a pipeline that keeps what reaches it, and says when enough has."""

    def __init__(self, enough: Callable[[list[Any]], bool]) -> None:
        from pipecat.frames.frames import Frame
        from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

        self.frames: list[Frame] = []
        self.enough = asyncio.Event()
        collector = self

        class Keep(FrameProcessor):
            async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
                await super().process_frame(frame, direction)
                if direction == FrameDirection.DOWNSTREAM:
                    collector.frames.append(frame)
                    if enough(collector.frames):
                        collector.enough.set()
                await self.push_frame(frame, direction)

        self.processor = Keep()

    def of(self, kind: type) -> list[Any]:
        return [f for f in self.frames if isinstance(f, kind)]


async def run_until(processors: list[Any], frames: list[Any], collector: Collector, *,
                    audio_out_rate: int = 24000, timeout: float = 30.0) -> None:
    """Run ``processors`` as a pipeline, queue ``frames``, and stop once the collector has enough
    (or fail after ``timeout``, a guard against a hang, not a measure)."""
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.workers.runner import WorkerRunner

    worker = PipelineWorker(Pipeline(processors), params=PipelineParams(audio_in_sample_rate=RATE,
                                                                       audio_out_sample_rate=audio_out_rate),
                            idle_timeout_secs=None, cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(worker: Any, frame: Any) -> None:
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(started.wait(), timeout)
        await worker.queue_frames(frames)
        await asyncio.wait_for(collector.enough.wait(), timeout)
    finally:
        await worker.cancel()
        await asyncio.wait_for(running, timeout)


def audio_frames(pcm: bytes) -> list[Any]:
    from pipecat.frames.frames import InputAudioRawFrame

    return [InputAudioRawFrame(audio=c, sample_rate=RATE, num_channels=1) for c in chunks(pcm)]


async def test_pipecats_openai_llm_calls_a_registered_function_with_the_deterministic_arguments_and_goes_on_with_its_result(
        served: Served) -> None:
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    from pipecat.frames.frames import LLMFullResponseEndFrame, LLMRunFrame, LLMTextFrame
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
    from pipecat.services.llm_service import FunctionCallParams
    from pipecat.services.openai.llm import OpenAILLMService

    weather = FunctionSchema(name="get_weather", description="The weather somewhere.",
                             properties={"location": {"type": "string"},
                                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                             required=["location"])
    context = LLMContext(messages=[{"role": "user", "content": "What is the weather, location Oslo?"}],
                         tools=ToolsSchema(standard_tools=[weather]))
    pair = LLMContextAggregatorPair(context)
    llm = OpenAILLMService(api_key="sandbox", base_url=served.openai,
                           settings=OpenAILLMService.Settings(model="gpt-4o"))
    calls: list[dict[str, Any]] = []

    async def get_weather(params: FunctionCallParams) -> None:
        calls.append(dict(params.arguments))
        await params.result_callback({"conditions": "snow"})

    llm.register_function("get_weather", get_weather)
    collector = Collector(lambda frames: isinstance(frames[-1], LLMFullResponseEndFrame) and "The result is" in "".join(
        f.text for f in frames if isinstance(f, LLMTextFrame)))
    await run_until([pair.user(), llm, collector.processor, pair.assistant()], [LLMRunFrame()], collector)

    assert calls == [{"location": "Oslo", "unit": "celsius"}]
    assert "".join(f.text for f in collector.of(LLMTextFrame)) == 'The result is: {"conditions": "snow"}.'
    bodies = [e.body for e in served.ai.log.entries("/chat/completions")]
    assert len(bodies) == 2 and bodies[0]["stream"] and bodies[0]["stream_options"] == {"include_usage": True}
    assert bodies[0]["tools"][0]["function"]["name"] == "get_weather"
    assert [m["role"] for m in bodies[1]["messages"]] == ["user", "assistant", "tool"]
    assert served.ai.log.entries()[0].authorization == "Bearer sandbox"


async def test_pipecats_openai_tts_speaks_24_khz_audio_frames(served: Served) -> None:
    from pipecat.frames.frames import TTSAudioRawFrame, TTSSpeakFrame, TTSStoppedFrame
    from pipecat.services.openai.tts import OpenAITTSService

    tts = OpenAITTSService(api_key="sandbox", base_url=served.openai,
                           settings=OpenAITTSService.Settings(voice="nova"))
    collector = Collector(lambda frames: isinstance(frames[-1], TTSStoppedFrame))
    await run_until([tts, collector.processor], [TTSSpeakFrame("Hello from the stand-in.")], collector)

    audio = collector.of(TTSAudioRawFrame)
    assert audio and {(f.sample_rate, f.num_channels) for f in audio} == {(24000, 1)}
    assert b"".join(f.audio for f in audio) == await synthesize("Hello from the stand-in.", 24000)
    [spoken] = served.ai.log.entries("/audio/speech")
    assert (spoken.body["input"], spoken.body["voice"], spoken.body["response_format"]) == (
        "Hello from the stand-in.", "nova", "pcm")


@needs_espeak
async def test_what_the_stand_in_tts_says_silero_hears_as_speech() -> None:
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADState

    vad = SileroVADAnalyzer(sample_rate=RATE)
    vad.set_sample_rate(RATE)
    states = [await vad.analyze_audio(c)
              for c in chunks(await synthesize("Hello there, what is the weather like in Paris today?", RATE))]
    assert VADState.SPEAKING in states


async def test_pipecats_deepgram_stt_transcribes_speech_as_the_scripted_text_and_silence_as_nothing(
        served: Served) -> None:
    from pipecat.frames.frames import TranscriptionFrame
    from pipecat.services.deepgram.stt import DeepgramSTTService

    served.ai.script.push("I would like a taxi")
    stt = DeepgramSTTService(api_key="sandbox", base_url=served.deepgram)
    collector = Collector(lambda frames: isinstance(frames[-1], TranscriptionFrame))
    speech = await synthesize("I would like a taxi.", RATE)
    # Silence first: had it been heard as an utterance, it would have taken the scripted text.
    await run_until([stt, collector.processor], audio_frames(silence(2.0) + speech + silence(HANGOVER_S + 0.5)),
                    collector)

    [transcript] = collector.of(TranscriptionFrame)
    assert transcript.text == "I would like a taxi"
    query = served.ai.log.entries("/listen")[0].body
    assert (query["encoding"], query["sample_rate"], query["interim_results"]) == ("linear16", "16000", "true")
    assert served.ai.log.entries("/listen")[0].authorization == "Token sandbox"


async def test_pipecats_openai_stt_transcribes_a_spoken_segment_as_the_scripted_text(served: Served) -> None:
    from pipecat.frames.frames import TranscriptionFrame, VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame
    from pipecat.services.openai.stt import OpenAISTTService

    served.ai.script.push("cancel my order")
    stt = OpenAISTTService(api_key="sandbox", base_url=served.openai)
    collector = Collector(lambda frames: isinstance(frames[-1], TranscriptionFrame))
    speech = await synthesize("Cancel my order.", RATE)
    await run_until([stt, collector.processor],
                    [VADUserStartedSpeakingFrame(), *audio_frames(speech), VADUserStoppedSpeakingFrame()], collector)

    assert [f.text for f in collector.of(TranscriptionFrame)] == ["cancel my order"]
    [request] = served.ai.log.entries("/audio/transcriptions")
    assert request.body["model"] == "gpt-transcribe" and request.body["file"]["filename"] == "audio.wav"


@needs_espeak
async def test_a_voice_pipeline_of_pipecats_services_hears_the_caller_and_answers_in_speech(served: Served) -> None:
    """Deepgram, Silero's VAD in the user aggregator, the LLM and the TTS, all real, all offline."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.frames.frames import TTSAudioRawFrame, TTSStoppedFrame, TTSTextFrame
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.services.deepgram.stt import DeepgramSTTService
    from pipecat.services.openai.llm import OpenAILLMService
    from pipecat.services.openai.tts import OpenAITTSService

    served.ai.script.push("where is my parcel")
    context = LLMContext(messages=[{"role": "system", "content": "You are a courier's assistant."}])
    pair = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer()))
    collector = Collector(lambda frames: isinstance(frames[-1], TTSStoppedFrame))
    await run_until([DeepgramSTTService(api_key="sandbox", base_url=served.deepgram), pair.user(),
                     OpenAILLMService(api_key="sandbox", base_url=served.openai),
                     OpenAITTSService(api_key="sandbox", base_url=served.openai),
                     collector.processor, pair.assistant()],
                    audio_frames(await synthesize("Where is my parcel?", RATE) + silence(2.0)), collector)

    assert "".join(f.text for f in collector.of(TTSTextFrame)).strip() == "You said: where is my parcel."
    assert collector.of(TTSAudioRawFrame)
