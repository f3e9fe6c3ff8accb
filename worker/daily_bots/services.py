"""Build the Pipecat services a Daily Bots request names (seed 003), one builder per service type.

Each builder takes the provider's name (a key of ``callfleet.providers.PROVIDERS``), its options
already merged for that service (``config`` options of the service type over
``service_options.<provider>``, without ``api_key``), and the key to use: the session's, which
the supervisor chose (``worker.daily_bots.keys``). A service whose key is required and was not
given is an error here, never a service built without one: Pipecat's SDKs would then read the
key from ``os.environ``. Options map onto the
Pipecat class's constructor and ``Settings``; options that belong to the pipeline rather than
the service (``initial_messages``, ``run_on_config``, ``tools``, ``text_filter``) are ignored
here. Constructing a service never connects: Pipecat services open their sockets on
``StartFrame``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from callfleet.providers import PROVIDERS, Provider, ServiceType

# An OpenAI-compatible endpoint that takes no key still needs the SDK to hold one.
_NO_KEY = "not-needed"

# Options the pipeline consumes; a builder passes over them.
_PIPELINE_OPTIONS = frozenset({"initial_messages", "run_on_config", "tools", "text_filter", "api_key"})


def _provider(name: str, kind: ServiceType) -> Provider:
    provider = PROVIDERS.get(name)
    if provider is None or provider.kind != kind:
        raise ValueError(f"services.{kind.value}: unknown provider {name!r}")
    if provider.module is None or provider.cls is None:
        raise ValueError(f"services.{kind.value}: {name} has no Pipecat service in pipecat-ai 1.x")
    return provider


def _class(provider: Provider) -> Any:
    assert provider.module is not None and provider.cls is not None
    return getattr(importlib.import_module(provider.module), provider.cls)


def _float(options: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name}: expected a number from {low} to {high}, got {value!r}")
    return float(value)


def _int(options: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: expected an integer from {low} to {high}, got {value!r}")
    return value


def _str(options: Mapping[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def _bool(options: Mapping[str, Any], name: str) -> bool | None:
    value = options.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def _language(options: Mapping[str, Any]) -> Any:
    """``language`` as Pipecat's ``Language`` ("en", "en-US", "fr" …)."""
    value = _str(options, "language")
    if value is None:
        return None
    from pipecat.transcriptions.language import Language

    try:
        return Language(value)
    except ValueError:
        raise ValueError(f"language: unknown language {value!r}") from None


def _key(provider: Provider, key: str | None) -> str:
    """The key to hand the SDK: a placeholder only where the provider's key is optional.

    Raises ``ValueError`` for a required key this session was not handed."""
    if key:
        return key
    if provider.key_required:
        raise ValueError(f"{provider.name}: this session was handed no {provider.key_env}")
    return _NO_KEY


def _base_url(provider: Provider, options: Mapping[str, Any]) -> str | None:
    url = _str(options, "base_url")
    if provider.requires_base_url and url is None:
        raise ValueError(f"service_options.{provider.name}.base_url: required for {provider.name}")
    if url is not None and not provider.takes_base_url:
        raise ValueError(f"base_url: {provider.name}'s Pipecat service does not take one")
    return url


def _given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _settings(cls: Any, **values: Any) -> Any:
    return cls.Settings(**_given(**values))


# -- LLM -------------------------------------------------------------------------------------------


def _llm_settings(cls: Any, options: Mapping[str, Any]) -> Any:
    return _settings(cls, model=_str(options, "model"), temperature=_float(options, "temperature", 0.0, 2.0),
                     max_tokens=_int(options, "max_tokens", 1, 1_000_000), top_p=_float(options, "top_p", 0.0, 1.0),
                     system_instruction=_str(options, "system_prompt"))


def _openai_llm(provider: Provider, options: Mapping[str, Any], key: str | None) -> Any:
    cls = _class(provider)
    kwargs = _given(base_url=_base_url(provider, options), organization=_str(options, "organization_id"))
    return cls(api_key=_key(provider, key), settings=_llm_settings(cls, options), **kwargs)


def _anthropic_llm(provider: Provider, options: Mapping[str, Any], key: str | None) -> Any:
    from anthropic import AsyncAnthropic

    cls = _class(provider)
    # AnthropicLLMService takes no base_url; it takes a client, which does.
    api_version = _str(options, "api_version")
    key = _key(provider, key)
    client = AsyncAnthropic(api_key=key, **_given(base_url=_base_url(provider, options),
                                                   default_headers={"anthropic-version": api_version}
                                                   if api_version else None))
    return cls(api_key=key, client=client, settings=_llm_settings(cls, options))


def _gemini_llm(provider: Provider, options: Mapping[str, Any], key: str | None) -> Any:
    cls = _class(provider)
    _base_url(provider, options)
    return cls(api_key=_key(provider, key), settings=_llm_settings(cls, options))


_LLM: dict[str, Callable[[Provider, Mapping[str, Any], str | None], Any]] = {
    "anthropic": _anthropic_llm,
    "together": _openai_llm,
    "gemini": _gemini_llm,
    "grok": _openai_llm,
    "groq": _openai_llm,
    "openai": _openai_llm,
    "custom_llm": _openai_llm,
}


def build_llm(provider: str, options: dict[str, Any], api_key: str | None) -> Any:
    """The Pipecat LLM service for ``provider`` (``model``, ``temperature``, ``max_tokens``,
    ``top_p``, ``system_prompt``, ``base_url``, ``organization_id``, ``api_version``).

    Raises ``ValueError`` naming the option for a bad value or a missing ``base_url``."""
    entry = _provider(provider, ServiceType.LLM)
    return _LLM[provider](entry, options, api_key)


# -- TTS -------------------------------------------------------------------------------------------


def _tts_common(cls: Any, options: Mapping[str, Any], **extra: Any) -> Any:
    return _settings(cls, model=_str(options, "model"), voice=_str(options, "voice"), language=_language(options),
                     **extra)


def _sample_rate(options: Mapping[str, Any], sample_rate: int) -> int:
    rate = _int(options, "sample_rate", 8000, 48000)
    return rate if rate is not None else sample_rate


def _openai_tts(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int,
                _settings_env: Mapping[str, str]) -> Any:
    cls = _class(provider)
    return cls(api_key=_key(provider, key), sample_rate=rate, settings=_tts_common(
        cls, options, speed=_float(options, "speed", 0.25, 4.0)), **_given(base_url=_base_url(provider, options)))


def _ws_tts(url_kwarg: str) -> Callable[..., Any]:
    """A websocket TTS whose endpoint kwarg is ``url_kwarg`` (``base_url`` maps onto it)."""

    def build(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int,
              _settings_env: Mapping[str, str]) -> Any:
        cls = _class(provider)
        return cls(api_key=_key(provider, key), sample_rate=rate, settings=_tts_common(cls, options),
                   **_given(**{url_kwarg: _base_url(provider, options)}))

    return build


def _elevenlabs_tts(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int,
                    _settings_env: Mapping[str, str]) -> Any:
    cls = _class(provider)
    output_format = _str(options, "output_format")
    if output_format is not None:
        # the seed's ``pcm_<rate>``: ElevenLabs picks its output format from sample_rate
        prefix, _, digits = output_format.partition("_")
        if prefix != "pcm" or not digits.isdigit():
            raise ValueError(f"output_format: expected pcm_<sample rate>, got {output_format!r}")
        rate = int(digits)
    settings = _tts_common(cls, options, stability=_float(options, "stability", 0.0, 1.0),
                           similarity_boost=_float(options, "similarity_boost", 0.0, 1.0),
                           style=_float(options, "style", 0.0, 1.0),
                           use_speaker_boost=_bool(options, "use_speaker_boost"),
                           speed=_float(options, "speed", 0.7, 1.2))
    return cls(api_key=_key(provider, key), sample_rate=rate, settings=settings,
               **_given(url=_base_url(provider, options)))


def _azure_tts(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int,
               settings_env: Mapping[str, str]) -> Any:
    cls = _class(provider)
    _base_url(provider, options)
    region = _str(options, "region") or settings_env.get("AZURE_SPEECH_REGION")
    if not region:
        raise ValueError("region: required for azure_tts (service_options.azure_tts.region or AZURE_SPEECH_REGION)")
    settings = _tts_common(cls, options, role=_str(options, "role"), style=_str(options, "style"),
                           style_degree=_str(options, "style_degree"), emphasis=_str(options, "emphasis"),
                           pitch=_str(options, "pitch"), rate=_str(options, "rate"), volume=_str(options, "volume"))
    return cls(api_key=_key(provider, key), region=region, sample_rate=rate, settings=settings)


def _aws_tts(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int,
             settings_env: Mapping[str, str]) -> Any:
    cls = _class(provider)
    _base_url(provider, options)
    settings = _tts_common(cls, options, engine=_str(options, "engine"), pitch=_str(options, "pitch"),
                           rate=_str(options, "rate"), volume=_str(options, "volume"))
    # The access key id and session token come with the operator's secret (settings_env), or
    # from the request beside its own secret; never one half from each.
    return cls(api_key=_key(provider, key), sample_rate=rate, settings=settings, **_given(
        aws_access_key_id=_str(options, "aws_access_key_id") or settings_env.get("AWS_ACCESS_KEY_ID"),
        aws_session_token=settings_env.get("AWS_SESSION_TOKEN"),
        region=_str(options, "region") or settings_env.get("AWS_REGION")))


def _google_tts(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int,
                _settings_env: Mapping[str, str]) -> Any:
    # The session's key is the service account's JSON (the supervisor read the operator's file):
    # never a path, which would make this worker read a file of the request's choosing.
    credentials = _key(provider, key)
    if not credentials.lstrip().startswith("{"):
        raise ValueError(f"{provider.name}: expected the service account's JSON key")
    _base_url(provider, options)
    cls = _class(provider)
    return cls(sample_rate=rate, settings=_tts_common(cls, options), credentials=credentials)


_TTS: dict[str, Callable[[Provider, Mapping[str, Any], str | None, int, Mapping[str, str]], Any]] = {
    "cartesia": _ws_tts("url"),
    "deepgram_tts": _ws_tts("base_url"),
    "elevenlabs": _elevenlabs_tts,
    "azure_tts": _azure_tts,
    "aws_tts": _aws_tts,
    "google_tts": _google_tts,
    "openai_tts": _openai_tts,
    "rime": _ws_tts("url"),
}


def build_tts(provider: str, options: dict[str, Any], api_key: str | None, *, sample_rate: int,
              settings: Mapping[str, str] | None = None) -> Any:
    """The Pipecat TTS service for ``provider``, producing raw PCM at ``options["sample_rate"]``
    or else ``sample_rate`` (``voice``, ``model``, ``language``, ``speed``, ``base_url`` and the
    provider's own ``service_options``); ``settings`` are the operator's settings the session
    was handed for it (``AZURE_SPEECH_REGION``, AWS's access key id and region).

    Raises ``ValueError`` naming the option for a bad value, or a key the session lacks."""
    entry = _provider(provider, ServiceType.TTS)
    return _TTS[provider](entry, options, api_key, _sample_rate(options, sample_rate), settings or {})


# -- STT -------------------------------------------------------------------------------------------

def _deepgram_stt(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int) -> Any:
    cls = _class(provider)
    endpointing = options.get("endpointing")
    if endpointing is not None and (isinstance(endpointing, bool) and endpointing
                                    or not isinstance(endpointing, int) or endpointing < 0):
        raise ValueError(f"endpointing: expected milliseconds (an integer >= 0) or false, got {endpointing!r}")
    settings = _settings(cls, model=_str(options, "model"), language=_language(options),
                         punctuate=_bool(options, "punctuate"), profanity_filter=_bool(options, "profanity_filter"),
                         smart_format=_bool(options, "smart_format"), endpointing=endpointing)
    return cls(api_key=_key(provider, key), sample_rate=rate, settings=settings,
               **_given(base_url=_base_url(provider, options)))


def _assemblyai_stt(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int) -> Any:
    cls = _class(provider)
    _base_url(provider, options)
    return cls(api_key=_key(provider, key), sample_rate=rate,
               settings=_settings(cls, model=_str(options, "model"), language=_language(options)))


def _gladia_stt(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int) -> Any:
    cls = _class(provider)
    return cls(api_key=_key(provider, key), sample_rate=rate,
               settings=_settings(cls, model=_str(options, "model"), language=_language(options)),
               **_given(url=_base_url(provider, options)))


_STT: dict[str, Callable[[Provider, Mapping[str, Any], str | None, int], Any]] = {
    "deepgram": _deepgram_stt,
    "assemblyai": _assemblyai_stt,
    "gladia": _gladia_stt,
}


def build_stt(provider: str, options: dict[str, Any], api_key: str | None, *, sample_rate: int) -> Any | None:
    """The Pipecat STT service for ``provider``; None for ``"daily"``, whose transcription is
    the transport's own (``model`` and ``language`` then go to DailyTransport's
    transcription settings, see ``daily_transcription``).

    Raises ``ValueError`` naming the option for a bad value."""
    if provider == "daily":
        return None
    entry = _provider(provider, ServiceType.STT)
    return _STT[provider](entry, options, api_key, sample_rate)


def daily_transcription(options: Mapping[str, Any]) -> dict[str, Any]:
    """``DailyTranscriptionSettings`` fields for ``"stt": "daily"`` (``model``, ``language``)."""
    return _given(model=_str(options, "model"), language=_str(options, "language"),
                  punctuate=_bool(options, "punctuate"), profanity_filter=_bool(options, "profanity_filter"))


# -- speech to speech ------------------------------------------------------------------------------

def _openai_realtime(provider: Provider, options: Mapping[str, Any], key: str | None) -> Any:
    from pipecat.services.openai.realtime import events

    cls = _class(provider)
    modalities = options.get("modalities")
    if modalities is not None and (not isinstance(modalities, list)
                                   or not set(modalities) <= {"audio", "text"} or not modalities):
        raise ValueError(f"modalities: expected a list of \"audio\" and/or \"text\", got {modalities!r}")
    turn_detection = options.get("turn_detection")
    audio_input: Any = None
    if turn_detection is not None:
        try:
            if turn_detection is False:
                audio_input = events.AudioInput(turn_detection=False)
            elif isinstance(turn_detection, dict) and turn_detection.get("type") == "semantic_vad":
                audio_input = events.AudioInput(turn_detection=events.SemanticTurnDetection(**turn_detection))
            elif isinstance(turn_detection, dict):
                audio_input = events.AudioInput(turn_detection=events.TurnDetection(**turn_detection))
            else:
                raise ValueError(turn_detection)
        except ValueError:
            raise ValueError(f"turn_detection: expected false or a server_vad/semantic_vad object, "
                             f"got {turn_detection!r}") from None
    voice = _str(options, "voice")
    audio = events.AudioConfiguration(input=audio_input, output=events.AudioOutput(voice=voice) if voice else None)
    properties = events.SessionProperties(
        output_modalities=modalities, audio=audio if (audio_input or voice) else None)
    settings = _settings(cls, model=_str(options, "model"), system_instruction=_str(options, "instructions"),
                         temperature=_float(options, "temperature", 0.0, 2.0), session_properties=properties)
    return cls(api_key=_key(provider, key), settings=settings, **_given(base_url=_base_url(provider, options)))


_S2S: dict[str, Callable[[Provider, Mapping[str, Any], str | None], Any]] = {
    "openai_realtime": _openai_realtime,
}


def build_s2s(provider: str, options: dict[str, Any], api_key: str | None) -> Any:
    """The Pipecat speech-to-speech service for ``provider`` (``model``, ``voice``,
    ``instructions``, ``temperature``, ``turn_detection``, ``modalities``, ``base_url``).

    Raises ``ValueError`` naming the option for a bad value."""
    entry = _provider(provider, ServiceType.S2S)
    return _S2S[provider](entry, options, api_key)
