"""Daily Bots' service tables (seed 003): which providers exist for each service type and
which options each takes, and the validation of a ``/bots/start`` body against them.

An unknown service type, provider or option is a ``ServiceError`` whose message names the
offending path (``services.tts: unknown provider 'foo'``); the API answers it with 422.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from callfleet import providers as provider_table

PROVIDERS: dict[str, tuple[str, ...]] = {
    "stt": ("deepgram", "assemblyai", "gladia", "daily"),  # "daily": callfleet's, the room's own transcription
    "llm": ("anthropic", "together", "gemini", "grok", "groq", "openai", "custom_llm"),
    "tts": ("cartesia", "deepgram_tts", "elevenlabs", "azure_tts", "aws_tts", "google_tts", "openai_tts",
            "playht", "rime"),
    "s2s": ("openai_realtime",),
}

# Options by service type, for `config` (runtime) and as the baseline of `service_options`.
TYPE_OPTIONS: dict[str, frozenset[str]] = {
    "stt": frozenset({"model", "language", "punctuate", "profanity_filter", "smart_format", "endpointing"}),
    "llm": frozenset({"model", "initial_messages", "run_on_config", "base_url", "api_version", "temperature",
                      "max_tokens", "top_p", "organization_id", "tools", "system_prompt"}),
    "tts": frozenset({"voice", "model", "language", "sample_rate", "speed", "region", "text_filter"}),
    "s2s": frozenset({"model", "voice", "instructions", "initial_messages", "run_on_config", "temperature",
                      "turn_detection", "modalities"}),
}

# Provider-specific initialisation options (seed 003's "Service Options" sections).
PROVIDER_OPTIONS: dict[str, frozenset[str]] = {
    "aws_tts": frozenset({"aws_access_key_id", "region", "voice", "sample_rate", "engine", "language", "pitch",
                          "rate", "volume"}),
    "azure_tts": frozenset({"region", "voice", "sample_rate", "role", "style", "style_degree", "emphasis"}),
    "cartesia": frozenset({"voice", "sample_rate", "model", "language", "speed", "emotion"}),
    "deepgram_tts": frozenset({"voice", "sample_rate", "text_filter"}),
    "elevenlabs": frozenset({"voice", "output_format", "model", "language", "stability", "similarity_boost", "style",
                             "use_speaker_boost"}),
    "google_tts": frozenset({"voice", "sample_rate", "language", "pitch", "rate", "volume", "emphasis"}),
    "openai_tts": frozenset({"voice", "sample_rate", "model", "text_filter"}),
    "playht": frozenset({"user_id", "voice", "sample_rate", "model", "language", "speed", "seed"}),
    "rime": frozenset({"voice", "sample_rate", "model", "text_filter"}),
}

PROFILE_SERVICES: dict[str, tuple[str, ...]] = {
    "voice_2024_10": ("stt", "llm", "tts"),
    "voice_2024_08": ("stt", "llm", "tts"),
    "natural_conversation_2024_11": ("stt", "llm", "tts"),
    "vision_2024_10": ("stt", "llm", "tts"),
    "vision_2024_08": ("stt", "llm", "tts"),
    "openai_realtime_beta_2024_10": ("llm",),
    "twilio_ws_voice_2024_09": ("stt", "llm", "tts"),
}

_TYPE_OF = {provider: kind for kind, providers in PROVIDERS.items() for provider in providers}


class ServiceError(Exception):
    """A body that names a service, provider or option the tables do not have."""


def _options_of(provider: str) -> frozenset[str]:
    known = PROVIDER_OPTIONS.get(provider, TYPE_OPTIONS[_TYPE_OF[provider]]) | {"api_key"}  # BYO key
    entry = provider_table.PROVIDERS.get(provider)
    return known | {"base_url"} if entry is not None and entry.takes_base_url else known


def validate(profile: str, services: dict[str, str], config: list[dict[str, Any]],
             service_options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Check ``services``, ``config`` and ``service_options``; returns them normalised.

    Raises ``ServiceError`` naming the first offending path."""
    allowed = PROFILE_SERVICES.get(profile, tuple(PROVIDERS))
    for kind, provider in services.items():
        if kind not in PROVIDERS:
            raise ServiceError(f"services.{kind}: unknown service type (known: {', '.join(PROVIDERS)})")
        if kind not in allowed:
            raise ServiceError(f"services.{kind}: profile {profile} does not use a {kind} service")
        # the speech-to-speech profile names its provider under ``llm``, as Daily Bots does
        s2s = kind == "llm" and profile in provider_table.S2S_PROFILES and provider in PROVIDERS["s2s"]
        if provider not in PROVIDERS[kind] and not s2s:
            raise ServiceError(f"services.{kind}: unknown provider {provider!r} (known: {', '.join(PROVIDERS[kind])})")
    for i, entry in enumerate(config):
        kind = entry.get("service")
        if kind not in TYPE_OPTIONS:
            raise ServiceError(f"config[{i}].service: unknown service type {kind!r}")
        options = entry.get("options", [])
        if not isinstance(options, list):
            raise ServiceError(f"config[{i}].options: expected a list of {{name, value}}")
        for j, option in enumerate(options):
            if not isinstance(option, dict) or "name" not in option or "value" not in option:
                raise ServiceError(f"config[{i}].options[{j}]: expected {{\"name\", \"value\"}}")
            if option["name"] not in TYPE_OPTIONS[kind]:
                raise ServiceError(f"config[{i}].options[{j}].name: unknown {kind} option {option['name']!r}")
    for provider, options in service_options.items():
        if provider not in _TYPE_OF:
            raise ServiceError(f"service_options.{provider}: unknown provider")
        if not isinstance(options, dict):
            raise ServiceError(f"service_options.{provider}: expected an object of option: value")
        known = _options_of(provider)
        for name in options:
            if name not in known:
                raise ServiceError(f"service_options.{provider}.{name}: unknown option for {provider}")
    return {"services": dict(services), "config": list(config), "service_options": dict(service_options)}


# Daily Bots profiles whose bot is one of callfleet's built-in pipelines (worker/daily_bots/).
PIPELINE_BOT_PREFIX = "worker.daily_bots."


def runs_pipeline(kind: str, config: Mapping[str, Any]) -> bool:
    """Whether a profile runs one of the built-in Daily Bots pipelines (whose providers need keys)."""
    return kind == "pipecat" and str(config.get("bot", "")).startswith(PIPELINE_BOT_PREFIX)


def check_providers(profile: str, services: Mapping[str, str], service_options: Mapping[str, Mapping[str, Any]],
                    environ: Mapping[str, str] | None = None,
                    is_installed: Callable[[str], bool] = provider_table.installed) -> None:
    """Check that every provider the profile's pipeline will run (defaults included) can run:
    its distribution is installed, its key is in ``service_options.<provider>.api_key`` or in
    ``environ`` (the supervisor's environment), and a ``base_url`` it requires is given.

    Raises ``ServiceError`` naming the missing environment variable, extra or option."""
    env = os.environ if environ is None else environ
    kinds = PROFILE_SERVICES.get(profile, ("stt", "llm", "tts"))
    try:
        chosen = provider_table.resolve(profile, services, kinds)
    except KeyError as exc:
        raise ServiceError(f"services: unknown provider {exc.args[0]!r}") from None
    for service_type, name in chosen.items():
        entry = provider_table.PROVIDERS[name]
        if entry.kind != service_type:
            known = ", ".join(provider_table.providers_of(service_type))
            raise ServiceError(f"services.llm: profile {profile} runs a speech-to-speech provider (known: {known})")
        try:
            provider_table.check(entry, service_options.get(name) or {}, env, is_installed)
        except provider_table.ProviderUnavailable as exc:
            raise ServiceError(str(exc)) from None


def redact_keys(service_options: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``service_options`` without any ``api_key``: what a session record may keep."""
    return {name: {key: value for key, value in options.items() if key != "api_key"}
            for name, options in service_options.items()}
