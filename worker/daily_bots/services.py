"""Build the Pipecat services a Daily Bots request names (seed 003), one builder per service type.

Each builder takes the provider's name (a key of ``callfleet.providers.PROVIDERS``), its options
already merged for that service (``config`` options of the service type over
``service_options.<provider>``, without ``api_key``), and the key to use. Options map onto the
Pipecat class's constructor and ``Settings``; options that belong to the pipeline rather than
the service (``initial_messages``, ``run_on_config``, ``tools``, ``text_filter``) are ignored
here. Constructing a service never connects: Pipecat services open their sockets on
``StartFrame``.
"""

from __future__ import annotations

import importlib
import json
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


def _key(provider: Provider, key: str | None) -> str | None:
    """The key to hand the SDK: a placeholder only where the provider's key is optional."""
    return key or (None if provider.key_required else _NO_KEY)


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
    cls = _class(provider)
    client_args: dict[str, Any] = {}
    base_url = _base_url(provider, options)
    if base_url is not None:
        client_args["base_url"] = base_url
    api_version = _str(options, "api_version")
    if api_version is not None:
        client_args["default_headers"] = {"anthropic-version": api_version}
    service = cls(api_key=key, settings=_llm_settings(cls, options))
    if client_args:
        # AnthropicLLMService takes no base_url; its client is rebuilt on the same key with one.
        service._client = service._client.with_options(**client_args)
    return service


def _gemini_llm(provider: Provider, options: Mapping[str, Any], key: str | None) -> Any:
    cls = _class(provider)
    _base_url(provider, options)
    return cls(api_key=key, settings=_llm_settings(cls, options))


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


def _openai_tts(provider: Provider, options: Mapping[str, Any], key: str | None, rate: int) -> Any:
    cls = _class(provider)
    return cls(api_key=_key(provider, key), sample_rate=rate, settings=_tts_common(
        cls, options, speed=_float(options, "speed", 0.25, 4.0)), **_given(base_url=_base_url(provider, options)))


_TTS: dict[str, Callable[[Provider, Mapping[str, Any], str | None, int], Any]] = {
    "openai_tts": _openai_tts,
}


def build_tts(provider: str, options: dict[str, Any], api_key: str | None, *, sample_rate: int) -> Any:
    """The Pipecat TTS service for ``provider``, producing raw PCM at ``options["sample_rate"]``
    or else ``sample_rate`` (``voice``, ``model``, ``language``, ``speed``, ``base_url`` and the
    provider's own ``service_options``).

    Raises ``ValueError`` naming the option for a bad value."""
    entry = _provider(provider, ServiceType.TTS)
    return _TTS[provider](entry, options, api_key, _sample_rate(options, sample_rate))


# -- STT -------------------------------------------------------------------------------------------

_STT: dict[str, Callable[[Provider, Mapping[str, Any], str | None, int], Any]] = {}


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

_S2S: dict[str, Callable[[Provider, Mapping[str, Any], str | None], Any]] = {}


def build_s2s(provider: str, options: dict[str, Any], api_key: str | None) -> Any:
    """The Pipecat speech-to-speech service for ``provider`` (``model``, ``voice``,
    ``instructions``, ``temperature``, ``turn_detection``, ``modalities``, ``base_url``).

    Raises ``ValueError`` naming the option for a bad value."""
    entry = _provider(provider, ServiceType.S2S)
    return _S2S[provider](entry, options, api_key)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
