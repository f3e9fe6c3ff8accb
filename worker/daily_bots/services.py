"""Build the Pipecat services a Daily Bots request names, one builder per service type.

Each builder takes the provider's name (a key of ``callfleet.providers.PROVIDERS``), its options
already merged for that service (``config`` options of the service type over
``service_options.<provider>``, without ``api_key`` and the conversation's options), and the
key to use: the session's, which the supervisor chose (``worker.daily_bots.keys``). A service
whose key is required and was not given is an error here, never a service built without one:
Pipecat's SDKs would then read the key from ``os.environ``.

Where each option goes is ``callfleet.options``' table (the same the supervisor checked the
request against): a ``Settings`` field, a constructor argument, the SDK client. Every option
a builder is given is applied or refused: ``_Options.done`` raises for any left over, so an
option the table honours but a builder forgot fails the build instead of vanishing.
Constructing a service never connects: Pipecat services open their sockets on ``StartFrame``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from callfleet import options as table
from callfleet.providers import PROVIDERS, Provider, ServiceType

# An OpenAI-compatible endpoint that takes no key still needs the SDK to hold one.
_NO_KEY = "not-needed"


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


def _language(value: str) -> Any:
    """``language`` as Pipecat's ``Language`` ("en", "en-US", "fr" …)."""
    from pipecat.transcriptions.language import Language

    try:
        return Language(value)
    except ValueError:
        raise ValueError(f"language: unknown language {value!r}") from None


class _Options:
    """One service's options, each taken once through the table; ``done`` refuses the rest."""

    def __init__(self, provider: str, options: Mapping[str, Any]) -> None:
        self.provider = provider
        self.given = {name: value for name, value in options.items() if value is not None and name != "api_key"}
        self.taken: set[str] = set()

    def take(self, name: str) -> Any:
        """The checked value of ``name`` or of an alias of it (None: not given)."""
        names = [name, *(alias for alias, e in table.honoured(self.provider) if e.alias_of == name)]
        given = [n for n in names if n in self.given]
        if len(given) > 1:
            raise ValueError(f"{given[1]}: {self.provider} takes it as {name}; give one of them")
        if not given:
            return None
        self.taken.add(given[0])
        return table.checked(self.provider, given[0], self.given[given[0]])

    def placed(self, where: table.Where) -> dict[str, Any]:
        """Every given option the table puts straight into one field or argument of ``where``
        (a dotted path or a special one is its builder's), by Pipecat's name."""
        placed: dict[str, Any] = {}
        for name, found in table.honoured(self.provider):
            if found.where is where and "." not in found.path and found.alias_of is None:
                value = self.take(name)
                if value is not None:
                    placed[found.path] = _language(value) if found.path == "language" and where is not \
                        table.Where.TRANSCRIPTION else value
        return placed

    def done(self) -> None:
        """Raises ``ValueError`` naming an option given and not applied: refused or unknown
        (the supervisor answers those with 422 first), or one a builder failed to take."""
        for name in sorted(set(self.given) - self.taken):
            table.checked(self.provider, name, self.given[name])  # raises for unknown or refused
            raise ValueError(f"{name}: {self.provider}'s builder does not apply it (a callfleet bug)")


def _key(provider: Provider, key: str | None) -> str:
    """The key to hand the SDK: a placeholder only where the provider's key is optional.

    Raises ``ValueError`` for a required key this session was not handed."""
    if key:
        return key
    if provider.key_required:
        raise ValueError(f"{provider.name}: this session was handed no {provider.key_env}")
    return _NO_KEY


def _require_base_url(provider: Provider, init: Mapping[str, Any], kwarg: str = "base_url") -> None:
    if provider.requires_base_url and not init.get(kwarg):
        raise ValueError(f"service_options.{provider.name}.base_url: required for {provider.name}")


# -- LLM -------------------------------------------------------------------------------------------


def _openai_llm(provider: Provider, opts: _Options, key: str | None) -> Any:
    cls = _class(provider)
    settings = cls.Settings(**opts.placed(table.Where.SETTINGS))
    init = opts.placed(table.Where.INIT)  # base_url, organization
    _require_base_url(provider, init)
    return cls(api_key=_key(provider, key), settings=settings, **init)


def _anthropic_llm(provider: Provider, opts: _Options, key: str | None) -> Any:
    from anthropic import AsyncAnthropic

    cls = _class(provider)
    settings = cls.Settings(**opts.placed(table.Where.SETTINGS))
    # AnthropicLLMService takes no base_url: it takes a client, which does.
    base_url, api_version = opts.take("base_url"), opts.take("api_version")
    key = _key(provider, key)
    client_options: dict[str, Any] = {}
    if base_url:
        client_options["base_url"] = base_url
    if api_version:
        client_options["default_headers"] = {"anthropic-version": api_version}
    client = AsyncAnthropic(api_key=key, **client_options)
    return cls(api_key=key, client=client, settings=settings)


def _gemini_llm(provider: Provider, opts: _Options, key: str | None) -> Any:
    cls = _class(provider)
    settings = cls.Settings(**opts.placed(table.Where.SETTINGS))
    api_version = opts.take("api_version")
    init: dict[str, Any] = {}
    if api_version:
        from google.genai.types import HttpOptions

        init["http_options"] = HttpOptions(api_version=api_version)
    return cls(api_key=_key(provider, key), settings=settings, **init)


_LLM: dict[str, Callable[[Provider, _Options, str | None], Any]] = {
    "anthropic": _anthropic_llm,
    "together": _openai_llm,
    "gemini": _gemini_llm,
    "grok": _openai_llm,
    "groq": _openai_llm,
    "openai": _openai_llm,
    "custom_llm": _openai_llm,
}


def _built(provider: str, kind: ServiceType, options: Mapping[str, Any], build: Callable[..., Any],
           *args: Any) -> Any:
    entry = _provider(provider, kind)
    opts = _Options(provider, options)
    service = build(entry, opts, *args)
    opts.done()
    return service


def build_llm(provider: str, options: dict[str, Any], api_key: str | None) -> Any:
    """The Pipecat LLM service for ``provider``, with the options ``callfleet.options`` maps
    for it (``model``, ``temperature``, ``max_tokens``, ``top_p``, ``system_prompt``,
    ``base_url``, ``organization_id``, ``api_version`` where the provider has them).

    Raises ``ValueError`` naming the option for a bad value, a refused option or a missing ``base_url``."""
    return _built(provider, ServiceType.LLM, options, _LLM[provider], api_key)


# -- TTS -------------------------------------------------------------------------------------------


def _text_filters(opts: _Options) -> dict[str, Any]:
    """``text_filter`` as the TTS service's ``text_filters`` (Pipecat's Markdown filter)."""
    params = opts.take("text_filter")
    if not params:
        return {}
    from pipecat.utils.text.markdown_text_filter import MarkdownTextFilter

    return {"text_filters": [MarkdownTextFilter(params=MarkdownTextFilter.InputParams(**params))]}


def _tts_init(provider: Provider, opts: _Options, rate: int) -> dict[str, Any]:
    """The constructor arguments every TTS builder passes: the output rate (``sample_rate``,
    or ElevenLabs' ``output_format``, else the pipeline's), the text filter, and the
    table's plain ones (``url``/``base_url``, ``region`` …)."""
    chosen = opts.take("sample_rate")  # (ElevenLabs' output_format is another name for it)
    init = {name: value for name, value in opts.placed(table.Where.INIT).items()
            if name not in ("sample_rate", "text_filters")}
    return {"sample_rate": chosen or rate, **_text_filters(opts), **init}


def _plain_tts(provider: Provider, opts: _Options, key: str | None, rate: int,
               _settings_env: Mapping[str, str]) -> Any:
    cls = _class(provider)
    settings = cls.Settings(**opts.placed(table.Where.SETTINGS))
    return cls(api_key=_key(provider, key), settings=settings, **_tts_init(provider, opts, rate))


def _cartesia_tts(provider: Provider, opts: _Options, key: str | None, rate: int,
                  _settings_env: Mapping[str, str]) -> Any:
    from pipecat.services.cartesia.tts import GenerationConfig

    cls = _class(provider)
    generation = {"speed": opts.take("speed"), "emotion": opts.take("emotion")}
    given = {name: value for name, value in generation.items() if value is not None}
    settings = cls.Settings(**opts.placed(table.Where.SETTINGS),
                            **({"generation_config": GenerationConfig(**given)} if given else {}))
    return cls(api_key=_key(provider, key), settings=settings, **_tts_init(provider, opts, rate))


def _azure_tts(provider: Provider, opts: _Options, key: str | None, rate: int,
               settings_env: Mapping[str, str]) -> Any:
    cls = _class(provider)
    init = _tts_init(provider, opts, rate)
    init["region"] = init.get("region") or settings_env.get("AZURE_SPEECH_REGION")
    if not init["region"]:
        raise ValueError("region: required for azure_tts (service_options.azure_tts.region or AZURE_SPEECH_REGION)")
    return cls(api_key=_key(provider, key), settings=cls.Settings(**opts.placed(table.Where.SETTINGS)), **init)


def _aws_tts(provider: Provider, opts: _Options, key: str | None, rate: int,
             settings_env: Mapping[str, str]) -> Any:
    cls = _class(provider)
    init = _tts_init(provider, opts, rate)
    # The access key id and session token come with the operator's secret (settings_env), or
    # from the request beside its own secret; never one half from each.
    init["aws_access_key_id"] = init.get("aws_access_key_id") or settings_env.get("AWS_ACCESS_KEY_ID")
    init["aws_session_token"] = settings_env.get("AWS_SESSION_TOKEN")
    init["region"] = init.get("region") or settings_env.get("AWS_REGION")
    return cls(api_key=_key(provider, key), settings=cls.Settings(**opts.placed(table.Where.SETTINGS)),
               **{name: value for name, value in init.items() if value is not None})


def _google_tts(provider: Provider, opts: _Options, key: str | None, rate: int,
                _settings_env: Mapping[str, str]) -> Any:
    # The session's key is the service account's JSON (the supervisor read the operator's file):
    # never a path, which would make this worker read a file of the request's choosing.
    credentials = _key(provider, key)
    if not credentials.lstrip().startswith("{"):
        raise ValueError(f"{provider.name}: expected the service account's JSON key")
    cls = _class(provider)
    settings = cls.Settings(**opts.placed(table.Where.SETTINGS))
    return cls(settings=settings, credentials=credentials, **_tts_init(provider, opts, rate))


_TTS: dict[str, Callable[[Provider, _Options, str | None, int, Mapping[str, str]], Any]] = {
    "cartesia": _cartesia_tts,
    "deepgram_tts": _plain_tts,
    "elevenlabs": _plain_tts,
    "azure_tts": _azure_tts,
    "aws_tts": _aws_tts,
    "google_tts": _google_tts,
    "openai_tts": _plain_tts,
    "rime": _plain_tts,
}


def build_tts(provider: str, options: dict[str, Any], api_key: str | None, *, sample_rate: int,
              settings: Mapping[str, str] | None = None) -> Any:
    """The Pipecat TTS service for ``provider``, producing raw PCM at ``options["sample_rate"]``
    (ElevenLabs: its ``output_format``) or else ``sample_rate``, with the options
    ``callfleet.options`` maps for it; ``settings`` are the operator's settings the session
    was handed for it (``AZURE_SPEECH_REGION``, AWS's access key id and region).

    Raises ``ValueError`` naming the option for a bad value, a refused option or a key the session lacks."""
    return _built(provider, ServiceType.TTS, options, _TTS[provider], api_key, sample_rate, settings or {})


# -- STT -------------------------------------------------------------------------------------------

def _plain_stt(provider: Provider, opts: _Options, key: str | None, rate: int) -> Any:
    cls = _class(provider)
    return cls(api_key=_key(provider, key), sample_rate=rate, settings=cls.Settings(**opts.placed(table.Where.SETTINGS)),
               **opts.placed(table.Where.INIT))


_STT: dict[str, Callable[[Provider, _Options, str | None, int], Any]] = {
    "deepgram": _plain_stt,
    "assemblyai": _plain_stt,
    "gladia": _plain_stt,
}


def build_stt(provider: str, options: dict[str, Any], api_key: str | None, *, sample_rate: int) -> Any | None:
    """The Pipecat STT service for ``provider``; None for ``"daily"``, whose transcription is
    the transport's own (its options go to DailyTransport's transcription settings, see
    ``daily_transcription``).

    Raises ``ValueError`` naming the option for a bad value or a refused option."""
    if provider == "daily":
        return None
    return _built(provider, ServiceType.STT, options, _STT[provider], api_key, sample_rate)


def daily_transcription(options: Mapping[str, Any]) -> dict[str, Any]:
    """``DailyTranscriptionSettings`` fields for ``"stt": "daily"`` (``model``, ``language``,
    ``punctuate``, ``profanity_filter``, ``endpointing``; ``smart_format`` in its ``extra``,
    which Daily hands Deepgram). Daily's transport options are the transport's, not these.

    Raises ``ValueError`` naming the option for a bad value or a refused option."""
    opts = _Options("daily", {k: v for k, v in options.items() if k not in table.TRANSPORT_OPTIONS})
    fields = opts.placed(table.Where.TRANSCRIPTION)
    smart_format = opts.take("smart_format")
    if smart_format is not None:
        from pipecat.transports.daily.transport import DailyTranscriptionSettings

        fields["extra"] = {**DailyTranscriptionSettings().extra, "smart_format": smart_format}
    opts.done()
    return fields


# -- speech to speech ------------------------------------------------------------------------------

def _openai_realtime(provider: Provider, opts: _Options, key: str | None) -> Any:
    from pipecat.services.openai.realtime import events

    cls = _class(provider)
    turn_detection, voice = opts.take("turn_detection"), opts.take("voice")
    audio_input: Any = None
    if turn_detection is False:
        audio_input = events.AudioInput(turn_detection=False)
    elif turn_detection is not None:
        detection = events.SemanticTurnDetection if turn_detection.get("type") == "semantic_vad" \
            else events.TurnDetection
        try:
            audio_input = events.AudioInput(turn_detection=detection(**turn_detection))
        except ValueError:
            raise ValueError(f"turn_detection: not a {turn_detection.get('type')} object: {turn_detection!r}") from None
    audio = events.AudioConfiguration(input=audio_input, output=events.AudioOutput(voice=voice) if voice else None)
    properties = events.SessionProperties(output_modalities=opts.take("modalities"),
                                          max_output_tokens=opts.take("max_tokens"),
                                          audio=audio if (audio_input or voice) else None)
    settings = cls.Settings(**opts.placed(table.Where.SETTINGS), session_properties=properties)
    return cls(api_key=_key(provider, key), settings=settings, **opts.placed(table.Where.INIT))


_S2S: dict[str, Callable[[Provider, _Options, str | None], Any]] = {
    "openai_realtime": _openai_realtime,
}


def build_s2s(provider: str, options: dict[str, Any], api_key: str | None) -> Any:
    """The Pipecat speech-to-speech service for ``provider`` (``model``, ``voice``,
    ``instructions`` or ``system_prompt``, ``max_tokens``, ``turn_detection``, ``modalities``,
    ``base_url``).

    Raises ``ValueError`` naming the option for a bad value or a refused one (``temperature``,
    ``top_p``: OpenAI's Realtime API takes neither)."""
    return _built(provider, ServiceType.S2S, options, _S2S[provider], api_key)
