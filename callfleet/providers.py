"""The Daily Bots providers callfleet can build (seed 003's STT, LLM, TTS and S2S tables, plus
callfleet's ``"daily"`` STT): which Pipecat service each becomes, where its key comes from and
what must be installed for it.

Shared by the supervisor (the 422 check at ``/bots/start``) and the worker (the pipeline
builders), so it imports neither side and never imports Pipecat: whether a provider can run
is answered from installed distributions' metadata, never by importing them.
"""

from __future__ import annotations

import enum
import importlib.metadata
from collections.abc import Callable, Mapping

import msgspec


class ServiceType(enum.StrEnum):
    """A Daily Bots service type, as ``services`` and ``config`` name it."""

    STT = "stt"
    LLM = "llm"
    TTS = "tts"
    S2S = "s2s"


class Provider(msgspec.Struct, frozen=True, kw_only=True):
    """One provider: the Pipecat service that runs it and what that service needs."""

    name: str  # the seed's configuration string
    kind: ServiceType
    module: str | None  # the Pipecat module holding ``cls``; None: nothing in Pipecat 1.x runs it
    cls: str | None
    key_env: str | None  # the environment variable holding its key; None: it needs none
    distribution: str | None  # the pip distribution its Pipecat service imports (checked, never imported)
    extra: str | None  # the pip requirement that brings ``distribution``
    takes_base_url: bool = False
    requires_base_url: bool = False
    key_required: bool = True  # False: the key is optional (a self-hosted endpoint may take none)
    in_transport: bool = False  # the transport does it (``daily`` STT): no Pipecat service of its own

    @property
    def qualname(self) -> str:
        """``module.Class``, for messages and the README."""
        if self.in_transport:
            return "DailyTransport (transcription)"
        return f"{self.module}.{self.cls}" if self.module else "(none in pipecat-ai 1.x)"


def _p(name: str, kind: ServiceType, target: str | None, key_env: str | None, distribution: str | None,
       extra: str | None, **flags: bool) -> Provider:
    module, _, cls = target.rpartition(".") if target else (None, "", None)
    return Provider(name=name, kind=kind, module=module, cls=cls, key_env=key_env, distribution=distribution,
                    extra=extra, **flags)


_S, _L, _T, _X = ServiceType.STT, ServiceType.LLM, ServiceType.TTS, ServiceType.S2S
_SVC = "pipecat.services"

# Websocket- and OpenAI-client services need only pipecat-ai's own dependencies (websockets,
# openai); their extras exist in pipecat-ai but add nothing, so the check looks for the base.
PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    _p("daily", _S, None, None, "daily-python", "pipecat-ai[daily]", in_transport=True),
    _p("deepgram", _S, f"{_SVC}.deepgram.stt.DeepgramSTTService", "DEEPGRAM_API_KEY", "deepgram-sdk",
       "pipecat-ai[deepgram]", takes_base_url=True),
    _p("assemblyai", _S, f"{_SVC}.assemblyai.stt.AssemblyAISTTService", "ASSEMBLYAI_API_KEY", "websockets",
       "pipecat-ai[assemblyai]"),
    _p("gladia", _S, f"{_SVC}.gladia.stt.GladiaSTTService", "GLADIA_API_KEY", "websockets", "pipecat-ai[gladia]",
       takes_base_url=True),
    _p("anthropic", _L, f"{_SVC}.anthropic.llm.AnthropicLLMService", "ANTHROPIC_API_KEY", "anthropic",
       "pipecat-ai[anthropic]", takes_base_url=True),
    _p("together", _L, f"{_SVC}.together.llm.TogetherLLMService", "TOGETHER_API_KEY", "openai",
       "pipecat-ai[together]", takes_base_url=True),
    _p("gemini", _L, f"{_SVC}.google.llm.GoogleLLMService", "GOOGLE_API_KEY", "google-genai", "pipecat-ai[google]"),
    _p("grok", _L, f"{_SVC}.xai.llm.GrokLLMService", "XAI_API_KEY", "openai", "pipecat-ai[grok]",
       takes_base_url=True),
    _p("groq", _L, f"{_SVC}.groq.llm.GroqLLMService", "GROQ_API_KEY", "openai", "pipecat-ai[groq]",
       takes_base_url=True),
    _p("openai", _L, f"{_SVC}.openai.llm.OpenAILLMService", "OPENAI_API_KEY", "openai", "pipecat-ai[openai]",
       takes_base_url=True),
    _p("custom_llm", _L, f"{_SVC}.openai.llm.OpenAILLMService", "CUSTOM_LLM_API_KEY", "openai",
       "pipecat-ai[openai]", takes_base_url=True, requires_base_url=True, key_required=False),
    _p("cartesia", _T, f"{_SVC}.cartesia.tts.CartesiaTTSService", "CARTESIA_API_KEY", "websockets",
       "pipecat-ai[cartesia]", takes_base_url=True),
    _p("deepgram_tts", _T, f"{_SVC}.deepgram.tts.DeepgramTTSService", "DEEPGRAM_API_KEY", "websockets",
       "pipecat-ai[deepgram]", takes_base_url=True),
    _p("elevenlabs", _T, f"{_SVC}.elevenlabs.tts.ElevenLabsTTSService", "ELEVENLABS_API_KEY", "websockets",
       "pipecat-ai[elevenlabs]", takes_base_url=True),
    _p("azure_tts", _T, f"{_SVC}.azure.tts.AzureTTSService", "AZURE_SPEECH_API_KEY",
       "azure-cognitiveservices-speech", "pipecat-ai[azure]"),
    _p("aws_tts", _T, f"{_SVC}.aws.tts.AWSPollyTTSService", "AWS_SECRET_ACCESS_KEY", "aiobotocore",
       "pipecat-ai[aws]"),
    _p("google_tts", _T, f"{_SVC}.google.tts.GoogleTTSService", "GOOGLE_APPLICATION_CREDENTIALS",
       "google-cloud-texttospeech", "pipecat-ai[google]"),
    _p("openai_tts", _T, f"{_SVC}.openai.tts.OpenAITTSService", "OPENAI_API_KEY", "openai", "pipecat-ai[openai]",
       takes_base_url=True),
    # PlayHT's service was removed from Pipecat before 1.0: a 422 rather than a bot that cannot start.
    _p("playht", _T, None, "PLAYHT_API_KEY", None, None),
    _p("rime", _T, f"{_SVC}.rime.tts.RimeTTSService", "RIME_API_KEY", "websockets", "pipecat-ai[rime]",
       takes_base_url=True),
    _p("openai_realtime", _X, f"{_SVC}.openai.realtime.llm.OpenAIRealtimeLLMService", "OPENAI_API_KEY",
       "websockets", "pipecat-ai[openai]", takes_base_url=True),
)}

# What a request that names no provider for a service gets: Daily Bots' integrated defaults
# (seed 003: Deepgram is "the primary integrated STT provider"; its example omits stt).
DEFAULTS: dict[ServiceType, str] = {
    ServiceType.STT: "deepgram",
    ServiceType.LLM: "anthropic",
    ServiceType.TTS: "cartesia",
    ServiceType.S2S: "openai_realtime",
}

# Profiles whose single service is speech-to-speech; Daily Bots names it under ``services.llm``.
S2S_PROFILES: frozenset[str] = frozenset({"openai_realtime_beta_2024_10"})


class ProviderUnavailable(Exception):
    """A provider that cannot run here: no key, a missing distribution, or no Pipecat service.

    ``missing`` names what is missing (the environment variable, the pip extra, or the option)."""

    def __init__(self, message: str, missing: str) -> None:
        super().__init__(message)
        self.missing = missing


def providers_of(kind: ServiceType) -> tuple[str, ...]:
    """The provider names of one service type, in table order."""
    return tuple(name for name, p in PROVIDERS.items() if p.kind == kind)


def resolve(profile: str, services: Mapping[str, str], kinds: tuple[str, ...]) -> dict[ServiceType, str]:
    """The provider for each service type a profile runs, defaults filled in.

    ``kinds`` are the service types the profile configures (``("stt", "llm", "tts")``); for a
    speech-to-speech profile its ``llm`` is the S2S provider. Raises ``KeyError`` for a name
    not in ``PROVIDERS``."""
    chosen: dict[ServiceType, str] = {}
    if profile in S2S_PROFILES:
        chosen[ServiceType.S2S] = services.get("s2s") or services.get("llm") or DEFAULTS[ServiceType.S2S]
    else:
        for kind in kinds:
            service_type = ServiceType(kind)
            chosen[service_type] = services.get(kind) or DEFAULTS[service_type]
    for name in chosen.values():
        PROVIDERS[name]  # noqa: B018 - an unknown name is the caller's KeyError
    return chosen


def installed(distribution: str) -> bool:
    """Whether a pip distribution is installed (its metadata, never an import)."""
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def api_key(provider: Provider, options: Mapping[str, object], environ: Mapping[str, str]) -> str | None:
    """The key a provider runs with: ``service_options.<provider>.api_key``, else its env var."""
    byo = options.get("api_key")
    if isinstance(byo, str) and byo:
        return byo
    return environ.get(provider.key_env) if provider.key_env else None


def check(provider: Provider, options: Mapping[str, object], environ: Mapping[str, str],
          is_installed: Callable[[str], bool] = installed) -> None:
    """Check that a provider can run with these ``service_options`` and this environment.

    Raises ``ProviderUnavailable`` naming the Pipecat service that does not exist, the extra
    to install, the environment variable to set, or the ``base_url`` option to give."""
    if provider.module is None and not provider.in_transport:
        raise ProviderUnavailable(f"{provider.name}: no Pipecat service runs it in pipecat-ai 1.x",
                                  provider.name)
    if provider.distribution and not is_installed(provider.distribution):
        raise ProviderUnavailable(f"{provider.name}: install {provider.extra} (the {provider.distribution} "
                                  f"distribution is missing)", provider.extra or provider.distribution)
    if provider.requires_base_url and not options.get("base_url"):
        raise ProviderUnavailable(f"service_options.{provider.name}.base_url: required for {provider.name} "
                                  f"(an OpenAI-compatible endpoint)", "base_url")
    if provider.key_required and provider.key_env and not api_key(provider, options, environ):
        raise ProviderUnavailable(f"{provider.name}: no API key; set {provider.key_env} in the supervisor's "
                                  f"environment or service_options.{provider.name}.api_key", provider.key_env)
