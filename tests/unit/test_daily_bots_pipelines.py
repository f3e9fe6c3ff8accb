"""The Daily Bots profiles' pipelines, built from requests without a network or a room.

``worker.daily_bots.request`` turns a ``/bots/start`` body and the session's keys (what the
supervisor handed it in memory) into per-service providers, merged options and keys; each
profile module builds the pipeline that body names. The
transport here is a small stand-in (the tests are about what the profiles put between its
input and its output); ``daily_params`` is checked on its own.
"""

from __future__ import annotations

import copy
import importlib.util
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

from callfleet.providers import PROVIDERS, ServiceType, installed  # noqa: E402
from worker.daily_bots.request import RequestError, config_options, parse_request  # noqa: E402

GREETING = [{"role": "user", "content": [{"type": "text", "text": "You are an assistant called Daily Bot. "
                                          "You can ask me anything. Keep responses brief and legible. "
                                          "Introduce yourself first."}]}]

# Seed 003's curl body for voice_2024_10, verbatim but for the profile.
SEED_BODY: dict[str, Any] = {
    "bot_profile": "voice_2024_10",
    "services": {"tts": "cartesia", "llm": "anthropic"},
    "config": [
        {"service": "stt", "options": [{"name": "model", "value": "nova-2-general"},
                                       {"name": "language", "value": "en"}]},
        {"service": "tts", "options": [{"name": "voice", "value": "79a125e8-cd45-4c13-8a67-188112f4dd22"}]},
        {"service": "llm", "options": [{"name": "model", "value": "claude-3-5-sonnet-latest"},
                                       {"name": "initial_messages", "value": GREETING},
                                       {"name": "run_on_config", "value": True}]},
    ],
}
SEED_KEYS = {"DEEPGRAM_API_KEY": "dg-env", "ANTHROPIC_API_KEY": "ant-env", "CARTESIA_API_KEY": "cart-env",
             "OPENAI_API_KEY": "oai-env"}


def seed_body(profile: str) -> dict[str, Any]:
    body = copy.deepcopy(SEED_BODY)
    body["bot_profile"] = profile
    if profile == "openai_realtime_beta_2024_10":
        body["services"] = {"llm": "openai_realtime"}
        body["config"] = [c for c in body["config"] if c["service"] == "llm"]
        body["config"][0]["options"][0]["value"] = "gpt-4o-realtime-preview"
    return body


# -- request parsing ---------------------------------------------------------------------------------


def test_config_list_becomes_options_by_service_type_later_entries_winning() -> None:
    options = config_options([
        {"service": "llm", "options": [{"name": "model", "value": "a"}, {"name": "temperature", "value": 0.2}]},
        {"service": "tts", "options": [{"name": "voice", "value": "v"}]},
        {"service": "llm", "options": [{"name": "model", "value": "b"}]},
    ])
    assert options == {ServiceType.LLM: {"model": "b", "temperature": 0.2}, ServiceType.TTS: {"voice": "v"}}


@pytest.mark.parametrize("config, path", [
    ({"service": "llm"}, "config"),
    ([{"service": "video", "options": []}], "config[0].service"),
    ([{"service": "llm", "options": {"model": "x"}}], "config[0].options"),
    ([{"service": "llm", "options": [{"name": "model"}]}], "config[0].options[0]"),
])
def test_a_malformed_config_is_a_request_error_naming_its_path(config: Any, path: str) -> None:
    with pytest.raises(RequestError, match=path.replace("[", r"\[").replace("]", r"\]")):
        config_options(config)


def test_config_options_override_service_options_and_keys_come_from_the_session_never_the_body() -> None:
    request = parse_request({
        "bot_profile": "voice_2024_10", "services": {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
        "config": [{"service": "tts", "options": [{"name": "voice", "value": "alloy"}]},
                   {"service": "llm", "options": [{"name": "temperature", "value": 0.3},
                                                  {"name": "max_tokens", "value": 64}]}],
        # a key in the body (the supervisor strips them) is never used
        "service_options": {"openai_tts": {"voice": "nova", "model": "tts-1", "api_key": "body-tts"},
                            "custom_llm": {"base_url": "http://llm.local/v1", "api_key": "body-llm"}},
    }, keys={"OPENAI_API_KEY": "session-tts", "CUSTOM_LLM_API_KEY": "session-llm"})
    tts, llm = request.service(ServiceType.TTS), request.service(ServiceType.LLM)
    assert tts is not None and llm is not None
    assert tts.options == {"voice": "alloy", "model": "tts-1"}
    assert tts.api_key == "session-tts"
    assert llm.options == {"base_url": "http://llm.local/v1", "temperature": 0.3, "max_tokens": 64}
    assert llm.api_key == "session-llm"
    assert "session" not in repr(request)  # a parsed request may be logged; its keys never are


def test_each_service_gets_the_session_key_named_by_its_providers_variable() -> None:
    request = parse_request(SEED_BODY, keys=SEED_KEYS)
    keys = {kind: s.api_key for kind, s in request.services.items()}
    assert keys == {ServiceType.STT: "dg-env", ServiceType.LLM: "ant-env", ServiceType.TTS: "cart-env"}


def test_daily_stt_needs_no_key_and_an_omitted_stt_is_daily_bots_default_deepgram() -> None:
    daily = parse_request({"bot_profile": "voice_2024_10", "services": {"stt": "daily"}}, keys={})
    stt = daily.service(ServiceType.STT)
    assert stt is not None and (stt.provider, stt.api_key) == ("daily", None)
    seed = parse_request(SEED_BODY, keys=SEED_KEYS).service(ServiceType.STT)
    assert seed is not None and seed.provider == "deepgram"
    assert seed.options == {"model": "nova-2-general", "language": "en"}


def test_initial_messages_and_run_on_config_are_the_conversations_not_the_llm_services() -> None:
    request = parse_request(SEED_BODY, keys=SEED_KEYS)
    assert request.initial_messages == GREETING
    assert request.run_on_config is True
    llm = request.service(ServiceType.LLM)
    assert llm is not None and llm.options == {"model": "claude-3-5-sonnet-latest"}


def test_the_realtime_profile_takes_its_speech_to_speech_service_from_services_llm() -> None:
    request = parse_request(seed_body("openai_realtime_beta_2024_10"), keys=SEED_KEYS)
    s2s = request.service(ServiceType.S2S)
    assert s2s is not None and (s2s.provider, s2s.api_key) == ("openai_realtime", "oai-env")
    assert s2s.options == {"model": "gpt-4o-realtime-preview"}
    assert set(request.services) == {ServiceType.S2S}
    assert request.initial_messages == GREETING


def test_an_unknown_provider_or_a_missing_profile_is_a_request_error() -> None:
    with pytest.raises(RequestError, match="unknown provider 'nope'"):
        parse_request({"bot_profile": "voice_2024_10", "services": {"tts": "nope"}}, keys={})
    with pytest.raises(RequestError, match="bot_profile"):
        parse_request({"services": {}}, keys={})


# -- pipelines ---------------------------------------------------------------------------------------


class StandInTransport:
    """Where a DailyTransport would be: an input and an output processor, and its events."""

    def __init__(self) -> None:
        from pipecat.processors.frame_processor import FrameProcessor
        from pipecat.utils.base_object import BaseObject

        class Events(BaseObject):
            def __init__(self) -> None:
                super().__init__()
                for name in ("on_first_participant_joined", "on_participant_left"):
                    self._register_event_handler(name)

        self.events = Events()
        self.event_handler = self.events.event_handler
        self._input = FrameProcessor(name="transport-input")
        self._output = FrameProcessor(name="transport-output")

    def input(self) -> Any:
        return self._input

    def output(self) -> Any:
        return self._output


def class_of(provider: str) -> str:
    cls = PROVIDERS[provider].cls
    assert cls is not None
    return cls


def needs(*providers: str) -> None:
    for name in providers:
        dist = PROVIDERS[name].distribution
        if dist and not installed(dist):
            pytest.skip(f"{name} needs {PROVIDERS[name].extra}, not installed here")


def shape(processors: list[Any]) -> list[str]:
    return [type(p).__name__ if not p.name.startswith("transport-") else p.name for p in processors]


VOICE_SHAPE = ["transport-input", "RTVIProcessor", class_of("deepgram"), "LLMUserAggregator",
               class_of("anthropic"), class_of("cartesia"), "transport-output", "LLMAssistantAggregator"]


@pytest.mark.parametrize("profile", ["voice_2024_10", "voice_2024_08", "natural_conversation_2024_11"])
def test_the_seed_body_builds_stt_llm_tts_between_the_transports_with_rtvi(profile: str) -> None:
    needs("deepgram", "anthropic", "cartesia")
    from worker.daily_bots import voice

    built = voice.build(parse_request(seed_body(profile), SEED_KEYS), StandInTransport())
    assert shape(built.processors) == VOICE_SHAPE
    assert built.context.get_messages() == GREETING


@pytest.mark.parametrize("profile", ["vision_2024_10", "vision_2024_08"])
def test_the_vision_profiles_put_the_users_camera_in_the_context_before_the_llm(profile: str) -> None:
    needs("deepgram", "anthropic", "cartesia")
    from worker.daily_bots import vision

    built = vision.build(parse_request(seed_body(profile), SEED_KEYS), StandInTransport())
    expected = list(VOICE_SHAPE)
    expected.insert(expected.index(class_of("anthropic")), "CameraContext")
    assert shape(built.processors) == expected


def test_the_realtime_profile_is_openai_realtime_between_the_aggregators() -> None:
    needs("openai_realtime")
    from worker.daily_bots import realtime

    built = realtime.build(parse_request(seed_body("openai_realtime_beta_2024_10"), SEED_KEYS), StandInTransport())
    assert shape(built.processors) == ["transport-input", "RTVIProcessor", "LLMUserAggregator",
                                       "OpenAIRealtimeLLMService", "transport-output", "LLMAssistantAggregator"]


def offline_body(profile: str = "voice_2024_10") -> dict[str, Any]:
    return {"bot_profile": profile, "services": {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
            "config": [{"service": "llm", "options": [{"name": "initial_messages", "value": GREETING},
                                                      {"name": "model", "value": "local-model"},
                                                      {"name": "temperature", "value": 0.4}]},
                       {"service": "tts", "options": [{"name": "voice", "value": "nova"}]}],
            "service_options": {"custom_llm": {"base_url": "http://127.0.0.1:9/v1"},
                                "openai_tts": {"base_url": "http://127.0.0.1:9/v1"}}}


def test_daily_stt_leaves_transcription_to_the_transport_and_configures_the_llm_and_tts() -> None:
    from worker.daily_bots import voice

    built = voice.build(parse_request(offline_body(), keys={"OPENAI_API_KEY": "any"}), StandInTransport())
    assert shape(built.processors) == ["transport-input", "RTVIProcessor", "LLMUserAggregator", "OpenAILLMService",
                                       "OpenAITTSService", "transport-output", "LLMAssistantAggregator"]
    llm, tts = built.services[ServiceType.LLM], built.services[ServiceType.TTS]
    assert (llm._settings.model, llm._settings.temperature) == ("local-model", 0.4)
    assert str(llm._client.base_url).rstrip("/") == "http://127.0.0.1:9/v1"
    assert tts._settings.voice == "nova"
    assert str(tts._client.base_url).rstrip("/") == "http://127.0.0.1:9/v1"


def test_the_transport_hears_at_16_khz_speaks_at_the_tts_rate_and_transcribes_for_daily_stt() -> None:
    from worker.daily_bots.pipeline import daily_params

    body = offline_body()
    body["config"].append({"service": "stt", "options": [{"name": "language", "value": "fr"},
                                                         {"name": "model", "value": "nova-2-general"}]})
    body["service_options"]["openai_tts"]["sample_rate"] = 24000
    request = parse_request(body, keys={})
    params = daily_params(request, audio_out_rate=24000, daily_stt=True)
    assert (params.audio_in_sample_rate, params.audio_out_sample_rate) == (16000, 24000)
    assert params.transcription_enabled
    assert (params.transcription_settings.language, params.transcription_settings.model) == ("fr", "nova-2-general")
    assert not params.video_in_enabled
    vision = daily_params(request, audio_out_rate=24000, video_in=True)
    assert vision.video_in_enabled and "camera" in vision.video_in_sources
    assert not vision.transcription_enabled


def test_natural_conversation_takes_turns_with_the_bundled_smart_turn_model() -> None:
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
    from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy, TurnAnalyzerUserTurnStopStrategy

    from worker.daily_bots.pipeline import turn_strategies
    from worker.daily_bots.voice import turn_taking

    [natural] = turn_strategies(turn_taking("natural_conversation_2024_11")).stop or []
    assert isinstance(natural, TurnAnalyzerUserTurnStopStrategy)
    assert isinstance(natural._turn_analyzer, LocalSmartTurnAnalyzerV3)
    [voice] = turn_strategies(turn_taking("voice_2024_10")).stop or []
    assert isinstance(voice, SpeechTimeoutUserTurnStopStrategy)


async def test_the_camera_frame_joins_the_next_turns_context_once() -> None:
    from pipecat.frames.frames import LLMContextFrame, UserImageRawFrame
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.tests.utils import run_test

    from worker.daily_bots.vision import CameraContext

    context = LLMContext(messages=[{"role": "user", "content": "What do you see?"}])
    image = UserImageRawFrame(image=bytes(4 * 4 * 3), size=(4, 4), format="RGB", user_id="u1")
    received, _ = await run_test(CameraContext(), frames_to_send=[image, LLMContextFrame(context),
                                                                   LLMContextFrame(context)],
                                 expected_down_frames=[LLMContextFrame, LLMContextFrame])
    assert len(context.get_messages()) == 2  # the question, then the one camera frame
    assert not any(isinstance(f, UserImageRawFrame) for f in received)  # frames reach the LLM only in context
