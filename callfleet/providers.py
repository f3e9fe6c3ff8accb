"""The Daily Bots providers callfleet can build (Daily Bots' STT, LLM, TTS and S2S tables, plus
callfleet's ``"daily"`` STT): which Pipecat service each becomes, where its key comes from,
where it connects by default and what must be installed for it.

Shared by the supervisor (the 422 check at ``/bots/start`` and the keys it hands a session)
and the worker (the pipeline builders), so it imports neither side and never imports Pipecat:
whether a provider can run is answered from installed distributions' metadata, never by
importing them. Also here: which URL a request chose for a service (``requested_url``) and
whether the operator's key may go there (``operator_may_use``).
"""

from __future__ import annotations

import enum
import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec


class ServiceType(enum.StrEnum):
    """A Daily Bots service type, as ``services`` and ``config`` name it."""

    STT = "stt"
    LLM = "llm"
    TTS = "tts"
    S2S = "s2s"


class Provider(msgspec.Struct, frozen=True, kw_only=True):
    """One provider: the Pipecat service that runs it and what that service needs."""

    name: str  # Daily Bots' configuration string
    kind: ServiceType
    module: str | None  # the Pipecat module holding ``cls``; None: nothing in Pipecat 1.x runs it
    cls: str | None
    key_env: str | None  # the environment variable holding its key; None: it needs none
    default_url: str | None = None  # where its Pipecat service connects when the request names no base_url
    # The operator's variables that go with the operator's key (never with a request's own key):
    # the rest of one credential, e.g. AWS's access key id beside its secret.
    companions: tuple[str, ...] = ()
    # The operator's plain settings the service reads (a region), with either key.
    settings: tuple[str, ...] = ()
    distribution: str | None  # the pip distribution its Pipecat service imports (checked, never imported)
    extra: str | None  # the pip requirement that brings ``distribution``
    takes_base_url: bool = False
    requires_base_url: bool = False
    key_required: bool = True  # False: the key is optional (a self-hosted endpoint may take none)
    in_transport: bool = False  # the transport does it (``daily`` STT): no Pipecat service of its own
    # The operator's variable names a file holding the key (a service account's JSON): the
    # supervisor reads it and a worker gets the JSON; a request's own key is the JSON itself.
    key_in_file: bool = False

    @property
    def qualname(self) -> str:
        """``module.Class``, for messages and the README."""
        if self.in_transport:
            return "DailyTransport (transcription)"
        return f"{self.module}.{self.cls}" if self.module else "(none in pipecat-ai 1.x)"


def _p(name: str, kind: ServiceType, target: str | None, key_env: str | None, distribution: str | None,
       extra: str | None, **fields: Any) -> Provider:
    module, _, cls = target.rpartition(".") if target else (None, "", None)
    return Provider(name=name, kind=kind, module=module, cls=cls, key_env=key_env, distribution=distribution,
                    extra=extra, **fields)


_S, _L, _T, _X = ServiceType.STT, ServiceType.LLM, ServiceType.TTS, ServiceType.S2S
_SVC = "pipecat.services"

# Websocket- and OpenAI-client services need only pipecat-ai's own dependencies (websockets,
# openai); their extras exist in pipecat-ai but add nothing, so the check looks for the base.
PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    _p("daily", _S, None, None, "daily-python", "pipecat-ai[daily]", in_transport=True),
    _p("deepgram", _S, f"{_SVC}.deepgram.stt.DeepgramSTTService", "DEEPGRAM_API_KEY", "deepgram-sdk",
       "pipecat-ai[deepgram]", takes_base_url=True, default_url="wss://api.deepgram.com"),
    _p("assemblyai", _S, f"{_SVC}.assemblyai.stt.AssemblyAISTTService", "ASSEMBLYAI_API_KEY", "websockets",
       "pipecat-ai[assemblyai]"),
    _p("gladia", _S, f"{_SVC}.gladia.stt.GladiaSTTService", "GLADIA_API_KEY", "websockets", "pipecat-ai[gladia]",
       takes_base_url=True, default_url="https://api.gladia.io/v2/live"),
    _p("anthropic", _L, f"{_SVC}.anthropic.llm.AnthropicLLMService", "ANTHROPIC_API_KEY", "anthropic",
       "pipecat-ai[anthropic]", takes_base_url=True, default_url="https://api.anthropic.com"),
    _p("together", _L, f"{_SVC}.together.llm.TogetherLLMService", "TOGETHER_API_KEY", "openai",
       "pipecat-ai[together]", takes_base_url=True, default_url="https://api.together.xyz/v1"),
    _p("gemini", _L, f"{_SVC}.google.llm.GoogleLLMService", "GOOGLE_API_KEY", "google-genai", "pipecat-ai[google]"),
    _p("grok", _L, f"{_SVC}.xai.llm.GrokLLMService", "XAI_API_KEY", "openai", "pipecat-ai[grok]",
       takes_base_url=True, default_url="https://api.x.ai/v1"),
    _p("groq", _L, f"{_SVC}.groq.llm.GroqLLMService", "GROQ_API_KEY", "openai", "pipecat-ai[groq]",
       takes_base_url=True, default_url="https://api.groq.com/openai/v1"),
    _p("openai", _L, f"{_SVC}.openai.llm.OpenAILLMService", "OPENAI_API_KEY", "openai", "pipecat-ai[openai]",
       takes_base_url=True, default_url="https://api.openai.com/v1"),
    _p("custom_llm", _L, f"{_SVC}.openai.llm.OpenAILLMService", "CUSTOM_LLM_API_KEY", "openai",
       "pipecat-ai[openai]", takes_base_url=True, requires_base_url=True, key_required=False),
    _p("cartesia", _T, f"{_SVC}.cartesia.tts.CartesiaTTSService", "CARTESIA_API_KEY", "websockets",
       "pipecat-ai[cartesia]", takes_base_url=True, default_url="wss://api.cartesia.ai/tts/websocket"),
    _p("deepgram_tts", _T, f"{_SVC}.deepgram.tts.DeepgramTTSService", "DEEPGRAM_API_KEY", "websockets",
       "pipecat-ai[deepgram]", takes_base_url=True, default_url="wss://api.deepgram.com"),
    _p("elevenlabs", _T, f"{_SVC}.elevenlabs.tts.ElevenLabsTTSService", "ELEVENLABS_API_KEY", "websockets",
       "pipecat-ai[elevenlabs]", takes_base_url=True, default_url="wss://api.elevenlabs.io"),
    _p("azure_tts", _T, f"{_SVC}.azure.tts.AzureTTSService", "AZURE_SPEECH_API_KEY",
       "azure-cognitiveservices-speech", "pipecat-ai[azure]", settings=("AZURE_SPEECH_REGION",)),
    _p("aws_tts", _T, f"{_SVC}.aws.tts.AWSPollyTTSService", "AWS_SECRET_ACCESS_KEY", "aiobotocore",
       "pipecat-ai[aws]", companions=("AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"), settings=("AWS_REGION",)),
    # Google's HTTP service: it speaks every voice (Daily Bots' default en-US-Neural2-A among them) and
    # takes Daily Bots' SSML options (pitch, rate, volume, emphasis); the streaming one only Chirp 3 HD.
    _p("google_tts", _T, f"{_SVC}.google.tts.GoogleHttpTTSService", "GOOGLE_APPLICATION_CREDENTIALS",
       "google-cloud-texttospeech", "pipecat-ai[google]", key_in_file=True),
    _p("openai_tts", _T, f"{_SVC}.openai.tts.OpenAITTSService", "OPENAI_API_KEY", "openai", "pipecat-ai[openai]",
       takes_base_url=True, default_url="https://api.openai.com/v1"),
    # PlayHT's service was removed from Pipecat before 1.0: a 422 rather than a bot that cannot start.
    _p("playht", _T, None, "PLAYHT_API_KEY", None, None),
    _p("rime", _T, f"{_SVC}.rime.tts.RimeTTSService", "RIME_API_KEY", "websockets", "pipecat-ai[rime]",
       takes_base_url=True, default_url="wss://users-ws.rime.ai/ws3"),
    _p("openai_realtime", _X, f"{_SVC}.openai.realtime.llm.OpenAIRealtimeLLMService", "OPENAI_API_KEY",
       "websockets", "pipecat-ai[openai]", takes_base_url=True, default_url="wss://api.openai.com/v1/realtime"),
)}

# What a request that names no provider for a service gets: Daily Bots' integrated defaults
# (Daily Bots: Deepgram is "the primary integrated STT provider"; its example omits stt).
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


def check(provider: Provider, is_installed: Callable[[str], bool] = installed) -> None:
    """Check that a provider can run here at all (its key and URL are the caller's to check).

    Raises ``ProviderUnavailable`` naming the Pipecat service that does not exist or the
    extra to install."""
    if provider.module is None and not provider.in_transport:
        raise ProviderUnavailable(f"{provider.name}: no Pipecat service runs it in pipecat-ai 1.x",
                                  provider.name)
    if provider.distribution and not is_installed(provider.distribution):
        raise ProviderUnavailable(f"{provider.name}: install {provider.extra} (the {provider.distribution} "
                                  f"distribution is missing)", provider.extra or provider.distribution)


def secret_variables() -> frozenset[str]:
    """Every operator variable whose value is part of a provider's credential."""
    return frozenset({p.key_env for p in PROVIDERS.values() if p.key_env}
                     | {name for p in PROVIDERS.values() for name in p.companions})


# -- URLs a request chooses ------------------------------------------------------------------------


class RequestedURL(msgspec.Struct, frozen=True):
    """A ``base_url`` a request gave one service, and the option's path (for a 422)."""

    value: Any  # as given: the caller checks that it is a string
    option: str  # "config[0].options[2]" or "service_options.openai.base_url"


def requested_url(kind: ServiceType, provider: str, config: Sequence[Any],
                  service_options: Mapping[str, Any]) -> RequestedURL | None:
    """The ``base_url`` a request gives one service, as the pipeline merges its options: the
    last ``config`` entry of the service's type over ``service_options.<provider>`` (speech to
    speech: an ``s2s`` entry over an ``llm`` one). None: the request chose no URL."""
    types = (ServiceType.LLM, ServiceType.S2S) if kind is ServiceType.S2S else (kind,)
    found: dict[str, RequestedURL] = {}
    for i, entry in enumerate(config):
        if not isinstance(entry, Mapping) or entry.get("service") not in types:
            continue
        options = entry.get("options")
        for j, option in enumerate(options if isinstance(options, list) else []):
            if isinstance(option, Mapping) and option.get("name") == "base_url":
                found[str(entry["service"])] = RequestedURL(option.get("value"), f"config[{i}].options[{j}]")
    for service_type in reversed(types):
        if service_type.value in found:
            return found[service_type.value]
    given = service_options.get(provider)
    if isinstance(given, Mapping) and "base_url" in given:
        return RequestedURL(given["base_url"], f"service_options.{provider}.base_url")
    return None


_SCHEMES = {"https": "https", "wss": "https", "http": "http", "ws": "http"}  # a websocket is its HTTP origin's
_PORTS = {"https": 443, "http": 80}


def _comparable(url: str) -> tuple[str, str, int, str] | None:
    """``(scheme, host, port, path)``; None for a URL that cannot be compared safely: one with
    credentials, whitespace, a dot segment, an unknown scheme or no host. A bare host (what
    Deepgram takes) is its https URL."""
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        return None
    try:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        port = parts.port
    except ValueError:
        return None
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname or "@" in parts.netloc:
        return None
    path = unquote(parts.path)
    if any(segment in (".", "..") for segment in path.split("/")):
        return None  # a proxy at an allowed path must not be walked out of
    return scheme, parts.hostname.lower(), port or _PORTS[scheme], path.rstrip("/")


def url_within(url: str, prefix: str) -> bool:
    """Whether ``url`` is ``prefix`` or below it: the same scheme (ws as http, wss as https),
    host and port, and a path that continues the prefix's at a ``/``. (A plain string prefix
    would let ``https://api.openai.com.evil.example`` pass for ``https://api.openai.com``.)"""
    got, want = _comparable(url), _comparable(prefix)
    if got is None or want is None or got[:3] != want[:3]:
        return False
    return got[3] == want[3] or got[3].startswith(want[3] + "/")


def operator_may_use(provider: Provider, url: str, allowed_base_urls: Sequence[str]) -> bool:
    """Whether the operator's key for ``provider`` may go to ``url``, a URL the request chose:
    only to the provider's default URL or an ``[providers] allowed_base_urls`` entry (or below)."""
    prefixes = [provider.default_url] if provider.default_url else []
    return any(url_within(url, prefix) for prefix in [*prefixes, *allowed_base_urls])
