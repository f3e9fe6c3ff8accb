"""Every option of Daily Bots' service tables, per provider: what it becomes in Pipecat 1.14
(``Honoured``) or why callfleet refuses it (``Refused``). Nothing a request sets is dropped:
an option is either applied to the service (or to the pipeline or transport around it) or
answered with a 422 that names it and says why.

One table, read by both sides: the supervisor checks a ``/bots/start`` body against it
(``check_request``: unknown and refused options, values, what a set option needs installed),
and the worker's builders (``worker.daily_bots.services``) take each option's checked value
from it (``value``) and place it where its entry says. Like ``callfleet.providers``, it imports
neither side and never imports Pipecat. ``markdown_table()`` renders it for the README.

Units a request writes once for every provider: ``endpointing`` is milliseconds of silence
(Deepgram's unit, Daily Bots' integrated STT), ``speed``/``speaking_rate`` a multiplier where
1.0 is normal and more is faster; a provider whose Pipecat service counts otherwise gets the
converted value (the entry's ``note`` says how).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callfleet.providers import PROVIDERS, ServiceType, installed, resolve


class OptionError(ValueError):
    """An option a request may not set as given; the message starts with its path."""


class Where(enum.Enum):
    """Where an honoured option lands in Pipecat."""

    SETTINGS = "settings"  # a field of the service's ``Settings`` (dotted: a field of a field)
    INIT = "init"  # a keyword argument of the service's constructor
    CLIENT = "client"  # the SDK client or its options the service is handed
    TRANSCRIPTION = "transcription"  # ``DailyTranscriptionSettings`` (``"stt": "daily"``)
    TRANSPORT = "transport"  # DailyTransport's parameters or the bot's participant handling
    CONVERSATION = "conversation"  # the LLM context and RTVI around the service
    KEY = "key"  # the session's key (never stored; callfleet.providers' URL rules)


Check = Callable[[Any], Any]  # returns the value as Pipecat takes it; raises ValueError(why)


@dataclass(frozen=True)
class Honoured:
    """An option callfleet applies: ``where``/``path`` name the Pipecat parameter; ``check``
    validates the request's value and returns it as that parameter takes it."""

    where: Where
    path: str
    check: Check
    note: str = ""
    alias_of: str | None = None  # another name for the same parameter (both given: refused)
    requires: tuple[str, str] | None = None  # (distribution, pip requirement) when set truthy

    @property
    def target(self) -> str:
        """The Pipecat parameter, as the README names it."""
        return {Where.SETTINGS: f"`Settings.{self.path}`", Where.INIT: f"`{self.path}=`",
                Where.TRANSCRIPTION: f"`DailyTranscriptionSettings.{self.path}`"}.get(self.where, self.path)


@dataclass(frozen=True)
class Refused:
    """An option callfleet answers with a 422, and why."""

    reason: str


Entry = Honoured | Refused


# -- value checks ----------------------------------------------------------------------------------

def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def anything(value: Any) -> Any:
    return value


def number(low: float, high: float, scale: Callable[[float], float] | None = None) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ValueError(f"expected a number from {low:g} to {high:g}, got {value!r}")
        return scale(float(value)) if scale else float(value)
    return check


def integer(low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value!r}")
        return value
    return check


def one_of(*choices: Any) -> Check:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or value not in choices:
            raise ValueError(f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    return check


def listing(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def rates(*allowed: int) -> Check:
    """A TTS output rate among those Daily Bots lists for the provider."""
    return one_of(*allowed)


def millis(value: Any) -> int | bool:
    """Deepgram's ``endpointing``: milliseconds of silence, or false to turn it off."""
    if value is False:
        return False
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 60_000:
        raise ValueError(f"expected milliseconds (an integer from 0 to 60000) or false, got {value!r}")
    return value


def millis_to_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int) or not 10 <= value <= 10_000:
        raise ValueError(f"expected milliseconds (an integer from 10 to 10000), got {value!r}")
    return value / 1000


def pcm_format(value: Any) -> int:
    """ElevenLabs' ``output_format`` (``pcm_24000``) as the sample rate Pipecat asks it for."""
    rate = text(value).partition("pcm_")[2]
    if not value.startswith("pcm_") or rate not in ("16000", "22050", "24000", "44100"):
        raise ValueError(f"expected pcm_16000, pcm_22050, pcm_24000 or pcm_44100, got {value!r}")
    return int(rate)


TEXT_FILTER_KEYS = ("enable_text_filter", "filter_code", "filter_tables")


def text_filter(value: Any) -> dict[str, bool] | None:
    """``text_filter``: true (Markdown filtering), false (none), or an object of
    ``enable_text_filter``, ``filter_code``, ``filter_tables``; returns the filter's params
    (None: no filter)."""
    if isinstance(value, bool):
        return {"enable_text_filter": True} if value else None
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"expected true, false or an object of {', '.join(TEXT_FILTER_KEYS)}, got {value!r}")
    unknown = sorted(set(value) - set(TEXT_FILTER_KEYS))
    if unknown:
        raise ValueError(f"unknown text filter setting {unknown[0]!r} (known: {', '.join(TEXT_FILTER_KEYS)})")
    for key, setting in value.items():
        if not isinstance(setting, bool):
            raise ValueError(f"{key}: expected true or false, got {setting!r}")
    return dict(value)


# Daily Bots' Cartesia emotions (anger, positivity, …) as the one emotion Cartesia's sonic-3 API takes.
SEED_EMOTIONS = {"anger": "angry", "positivity": "happy", "surprise": "surprised", "sadness": "sad",
                 "curiosity": "curious"}
# Pipecat's CartesiaEmotion (pipecat/services/cartesia/tts.py), transcribed: this module never imports Pipecat.
CARTESIA_EMOTIONS = frozenset({
    "neutral", "angry", "excited", "content", "sad", "scared", "happy", "enthusiastic", "elated", "euphoric",
    "triumphant", "amazed", "surprised", "flirtatious", "joking/comedic", "curious", "peaceful", "serene", "calm",
    "grateful", "affectionate", "trust", "sympathetic", "anticipation", "mysterious", "mad", "outraged",
    "frustrated", "agitated", "threatened", "disgusted", "contempt", "envious", "sarcastic", "ironic", "dejected",
    "melancholic", "disappointed", "hurt", "guilty", "bored", "tired", "rejected", "nostalgic", "wistful",
    "apologetic", "hesitant", "insecure", "confused", "resigned", "anxious", "panicked", "alarmed", "proud",
    "confident", "distant", "skeptical", "contemplative", "determined"})


def cartesia_emotion(value: Any) -> str:
    """One emotion: Cartesia's own name or Daily Bots' (``positivity`` → ``happy``), alone or as
    a one-item list. Daily Bots' levels (``positivity:high``) and several emotions at once were
    Cartesia's retired API: sonic-3 takes one emotion name."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, list):
        raise ValueError(f"Cartesia's sonic-3 API takes one emotion, got {len(value)}")
    name = text(value)
    if ":" in name:
        raise ValueError(f"emotion levels ({name!r}) are Cartesia's retired API; sonic-3 takes one emotion name "
                         f"(e.g. {SEED_EMOTIONS.get(name.partition(':')[0], 'happy')!r})")
    name = SEED_EMOTIONS.get(name, name)
    if name not in CARTESIA_EMOTIONS:
        raise ValueError(f"unknown Cartesia emotion {value!r} (e.g. {', '.join(sorted(SEED_EMOTIONS.values()))})")
    return name


# Cartesia's retired API named its speeds; sonic-3 takes a multiplier from 0.6 to 1.5.
CARTESIA_SPEEDS = {"slowest": 0.6, "slow": 0.8, "normal": 1.0, "fast": 1.2, "fastest": 1.5}


def cartesia_speed(value: Any) -> float:
    """A multiplier from 0.6 to 1.5, or one of the names Cartesia's retired API took
    (``slowest`` … ``fastest``), which Daily Bots requests still send."""
    if isinstance(value, str) and value in CARTESIA_SPEEDS:
        return CARTESIA_SPEEDS[value]
    try:
        return number(0.6, 1.5)(value)
    except ValueError:
        raise ValueError(f"expected a number from 0.6 to 1.5 or one of {', '.join(CARTESIA_SPEEDS)}, "
                         f"got {value!r}") from None


def turn_detection(value: Any) -> Any:
    if value is False or isinstance(value, Mapping) and value.get("type") in ("server_vad", "semantic_vad"):
        return value
    raise ValueError(f"expected false or a server_vad/semantic_vad object, got {value!r}")


def modalities(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not set(value) <= {"audio", "text"}:
        raise ValueError(f"expected a list of \"audio\" and/or \"text\", got {value!r}")
    return value


def messages(value: Any) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(m, Mapping) and "role" in m for m in value):
        raise ValueError("expected a list of {role, content} messages")
    return value


# -- the table -------------------------------------------------------------------------------------

_S, _I, _C, _K = Where.SETTINGS, Where.INIT, Where.CLIENT, Where.KEY
_CONV, _DT, _TP = Where.CONVERSATION, Where.TRANSCRIPTION, Where.TRANSPORT

NO_SERVICE = "playht has no Pipecat service in pipecat-ai 1.x (PlayHT's was removed before 1.0)"
def secret(value: Any) -> str:
    """A key or credential: its value is never quoted back."""
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


KEY = Honoured(_K, "the session's key, in memory only", secret)


def _base_url(provider: str, kwarg: str = "base_url", where: Where = Where.INIT) -> Entry:
    if PROVIDERS[provider].takes_base_url:
        return Honoured(where, kwarg, text, note="required" if PROVIDERS[provider].requires_base_url else "")
    return Refused(f"{provider}'s Pipecat service takes no base_url")


def _stt(provider: str, **entries: Entry) -> dict[str, Entry]:
    return {"model": Honoured(_S, "model", text), "language": Honoured(_S, "language", text),
            "base_url": _base_url(provider), "api_key": KEY, **entries}


# The conversation's options, the same for every LLM and the realtime service.
CONVERSATION: dict[str, Entry] = {
    "initial_messages": Honoured(_CONV, "`LLMContext(messages=…)`", messages),
    "run_on_config": Honoured(_CONV, "the first `LLMRunFrame` waits for RTVI `client-ready`", flag),
    "tools": Honoured(_CONV, "`LLMContext(tools=…)` + `register_function` (worker/daily_bots/functions.py)",
                      listing),
}

SAMPLING = {"temperature": Honoured(_S, "temperature", number(0.0, 2.0)),
            "max_tokens": Honoured(_S, "max_tokens", integer(1, 1_000_000)),
            "top_p": Honoured(_S, "top_p", number(0.0, 1.0)),
            "system_prompt": Honoured(_S, "system_instruction", text)}

NO_ORGANIZATION = "only OpenAI's API has organizations (organization_id is for openai and custom_llm)"
NO_API_VERSION = "{p}'s API is not versioned by request (api_version is for anthropic and gemini)"


def _llm(provider: str, **entries: Entry) -> dict[str, Entry]:
    return {"model": Honoured(_S, "model", text), **SAMPLING, **CONVERSATION, "base_url": _base_url(provider),
            "organization_id": Refused(NO_ORGANIZATION), "api_version": Refused(NO_API_VERSION.format(p=provider)),
            "api_key": KEY, **entries}


def _speed(provider: str, path: str, low: float, high: float, scale: Callable[[float], float] | None = None,
           note: str = "") -> dict[str, Entry]:
    return {"speed": Honoured(_S, path, number(low, high, scale), note=note),
            "speaking_rate": Honoured(_S, path, number(low, high, scale), note=note, alias_of="speed")}


def _no_speed(reason: str) -> dict[str, Entry]:
    return {"speed": Refused(reason), "speaking_rate": Refused(reason)}


def _tts(provider: str, rates_: Sequence[int], **entries: Entry) -> dict[str, Entry]:
    base: dict[str, Entry] = {
        "voice": Honoured(_S, "voice", text), "model": Honoured(_S, "model", text),
        "language": Honoured(_S, "language", text), "sample_rate": Honoured(_I, "sample_rate", rates(*rates_)),
        "text_filter": Honoured(_I, "text_filters", text_filter, note="`[MarkdownTextFilter(params)]`"),
        "region": Refused(f"{provider}'s Pipecat service takes no region"),
        "base_url": _base_url(provider), "api_key": KEY}
    return {**base, **entries}


_RATES_COMMON = (8000, 16000, 22050, 24000, 44100, 48000)
_RATES_ALL = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
_SSML = "an SSML prosody value (e.g. \"+10%\", \"x-slow\")"

CATALOGUE: dict[str, dict[str, Entry]] = {
    # -- STT -------------------------------------------------------------------------------------
    "deepgram": _stt(
        "deepgram", punctuate=Honoured(_S, "punctuate", flag), profanity_filter=Honoured(_S, "profanity_filter", flag),
        smart_format=Honoured(_S, "smart_format", flag), endpointing=Honoured(_S, "endpointing", millis),
        # Daily Bots' Deepgram TTS example writes its voice under "deepgram": the STT's key.
        voice=Refused("voice is a TTS option: Deepgram's speech is the deepgram_tts provider, so its options go "
                      "under service_options.deepgram_tts")),
    "assemblyai": _stt(
        "assemblyai", smart_format=Honoured(_S, "format_turns", flag, note="punctuation, casing and numbers"),
        endpointing=Honoured(_S, "min_turn_silence", integer(0, 60_000), note="milliseconds"),
        punctuate=Refused("AssemblyAI's streaming API punctuates only as part of its formatting: set smart_format"),
        profanity_filter=Refused("AssemblyAI's streaming API has no profanity filter")),
    "gladia": _stt(
        "gladia", base_url=_base_url("gladia", "url"), endpointing=Honoured(_S, "endpointing", millis_to_seconds, note="milliseconds, sent as seconds"),
        punctuate=Refused("Gladia's live API always punctuates; it has no setting for it"),
        profanity_filter=Refused("Gladia's live API has no profanity filter"),
        smart_format=Refused("Gladia's live API has no formatting setting (it formats as it transcribes)")),
    "daily": {
        "model": Honoured(_DT, "model", text), "language": Honoured(_DT, "language", text),
        "punctuate": Honoured(_DT, "punctuate", flag), "profanity_filter": Honoured(_DT, "profanity_filter", flag),
        "smart_format": Honoured(_DT, "extra.smart_format", flag, note="a Deepgram setting Daily passes on"),
        "endpointing": Honoured(_DT, "endpointing", flag,
                                note="on or off: Pipecat's DailyTranscriptionSettings takes no milliseconds"),
        "base_url": Refused("the room's own transcription has no URL"),
        # Daily's transport options (seed: "Daily Transport Service"), whatever the STT.
        "enable_noise_cancellation": Honoured(
            _TP, "`DailyParams.audio_in_filter = RNNoiseFilter()`", flag, requires=("pyrnnoise", "pipecat-ai[rnnoise]"),
            note="the callers' audio, before VAD and STT; RNNoise, the open filter Pipecat ships "
                 "(Daily Bots' Krisp needs Krisp's licensed SDK)"),
        "mute_on_third_participant_join": Honoured(
            _TP, "`HandoffMute` (worker/daily_bots/participants.py)", flag,
            note="when a third participant joins the bot stops speaking and listening for the rest of the call"),
    },
    # -- LLM -------------------------------------------------------------------------------------
    "anthropic": _llm("anthropic", base_url=_base_url("anthropic", "`AsyncAnthropic(base_url=…)`", _C),
                      api_version=Honoured(_C, "`AsyncAnthropic(default_headers={\"anthropic-version\": …})`", text)),
    "together": _llm("together"),
    "gemini": _llm("gemini", api_version=Honoured(_I, "http_options", text, note="`HttpOptions(api_version=…)`")),
    "grok": _llm("grok"),
    "groq": _llm("groq"),
    "openai": _llm("openai", organization_id=Honoured(_I, "organization", text),
                   api_version=Refused("OpenAI's API is not versioned by request (api_version is for anthropic "
                                       "and gemini)")),
    "custom_llm": _llm("custom_llm", organization_id=Honoured(_I, "organization", text)),
    # -- speech to speech (named under services.llm; its config entries are "llm" or "s2s") -----------
    "openai_realtime": {
        "model": Honoured(_S, "model", text),
        "voice": Honoured(_S, "session_properties.audio.output.voice", text),
        "instructions": Honoured(_S, "system_instruction", text),
        "system_prompt": Honoured(_S, "system_instruction", text, alias_of="instructions"),
        "max_tokens": Honoured(_S, "session_properties.max_output_tokens", integer(1, 1_000_000)),
        "turn_detection": Honoured(_S, "session_properties.audio.input.turn_detection", turn_detection),
        "modalities": Honoured(_S, "session_properties.output_modalities", modalities),
        **CONVERSATION,
        "temperature": Refused("OpenAI's Realtime API (the GA API Pipecat 1.14 speaks) takes no temperature"),
        "top_p": Refused("OpenAI's Realtime API takes no top_p"),
        "api_version": Refused("OpenAI's Realtime API is not versioned by request"),
        "organization_id": Refused("Pipecat's OpenAIRealtimeLLMService takes no organization"),
        "base_url": _base_url("openai_realtime"), "api_key": KEY,
    },
    # -- TTS -------------------------------------------------------------------------------------
    "cartesia": _tts(
        "cartesia", _RATES_COMMON, base_url=_base_url("cartesia", "url"),
        speed=Honoured(_S, "generation_config.speed", cartesia_speed, note="0.6–1.5, or slowest … fastest"),
        speaking_rate=Honoured(_S, "generation_config.speed", cartesia_speed, alias_of="speed"),
        emotion=Honoured(_S, "generation_config.emotion", cartesia_emotion,
                         note="one emotion; Daily Bots' names map to sonic-3's (positivity → happy)")),
    "deepgram_tts": _tts(
        "deepgram_tts", (8000, 16000, 24000, 32000, 48000), **_speed("deepgram_tts", "speed", 0.7, 1.5),
        model=Refused("Deepgram's voice is its model (aura-asteria-en): set voice"),
        language=Refused("Deepgram's voice names its language (aura-asteria-en): set voice")),
    "elevenlabs": _tts(
        "elevenlabs", (16000, 22050, 24000, 44100), base_url=_base_url("elevenlabs", "url"),
        **_speed("elevenlabs", "speed", 0.7, 1.2),
        output_format=Honoured(_I, "sample_rate", pcm_format, alias_of="sample_rate",
                               note="`pcm_<rate>`: Pipecat asks ElevenLabs for PCM at that rate"),
        stability=Honoured(_S, "stability", number(0.0, 1.0)),
        similarity_boost=Honoured(_S, "similarity_boost", number(0.0, 1.0)),
        style=Honoured(_S, "style", number(0.0, 1.0)), use_speaker_boost=Honoured(_S, "use_speaker_boost", flag)),
    "azure_tts": _tts(
        "azure_tts", _RATES_ALL, region=Honoured(_I, "region", text, note="required (or AZURE_SPEECH_REGION)"),
        model=Refused("Azure's voice names its model: set voice"),
        **_no_speed(f"Azure takes its speaking rate as {_SSML}: set rate"),
        role=Honoured(_S, "role", text), style=Honoured(_S, "style", text),
        style_degree=Honoured(_S, "style_degree", text), emphasis=Honoured(_S, "emphasis", text),
        pitch=Honoured(_S, "pitch", text), rate=Honoured(_S, "rate", text), volume=Honoured(_S, "volume", text)),
    "aws_tts": _tts(
        "aws_tts", _RATES_COMMON, region=Honoured(_I, "region", text, note="or AWS_REGION"),
        aws_access_key_id=Honoured(_I, "aws_access_key_id", secret, note="with the request's own secret key"),
        model=Refused("Polly's engine is its model: set engine (neural, standard)"),
        **_no_speed(f"Polly takes its speaking rate as {_SSML}: set rate"),
        engine=Honoured(_S, "engine", one_of("standard", "neural", "long-form", "generative")),
        pitch=Honoured(_S, "pitch", text), rate=Honoured(_S, "rate", text), volume=Honoured(_S, "volume", text)),
    "google_tts": _tts(
        "google_tts", _RATES_ALL, model=Refused("Google's voice names its model (en-US-Neural2-A): set voice"),
        **_speed("google_tts", "speaking_rate", 0.25, 2.0),
        pitch=Honoured(_S, "pitch", text, note=_SSML), rate=Honoured(_S, "rate", text, note=_SSML),
        volume=Honoured(_S, "volume", text, note=_SSML),
        emphasis=Honoured(_S, "emphasis", one_of("strong", "moderate", "reduced", "none"))),
    "openai_tts": _tts(
        "openai_tts", (24000,), **_speed("openai_tts", "speed", 0.25, 4.0),
        language=Refused("OpenAI's speech API takes no language: the voice speaks the text's language")),
    "playht": {name: Refused(NO_SERVICE) for name in (
        "user_id", "voice", "sample_rate", "model", "language", "speed", "speaking_rate", "seed", "text_filter",
        "region", "api_key")},
    "rime": _tts(
        "rime", _RATES_ALL, base_url=_base_url("rime", "url"),
        **_speed("rime", "speedAlpha", 0.25, 4.0, scale=lambda s: round(1 / s, 4),
                 note="sent as Rime's speedAlpha = 1 / speed (Rime counts slower as more)")),
}

# The options that configure the room rather than a service: service_options.daily, whatever the STT.
TRANSPORT_OPTIONS = frozenset({"enable_noise_cancellation", "mute_on_third_participant_join"})


def types_of(provider: str) -> tuple[str, ...]:
    """The ``config`` service types whose options go to ``provider``."""
    kind = PROVIDERS[provider].kind
    return ("llm", "s2s") if kind is ServiceType.S2S else (kind.value,)


def entry(provider: str, name: str) -> Entry | None:
    """What ``name`` is for ``provider``: its entry; a refusal when it is another provider's
    option of the same service type; None when no provider of that type has it."""
    own = CATALOGUE.get(provider, {})
    if name in own:
        return own[name]
    kind = PROVIDERS[provider].kind
    owners = sorted(p for p, options in CATALOGUE.items() if PROVIDERS[p].kind == kind and name in options
                    and isinstance(options[name], Honoured))
    if owners:
        return Refused(f"{name} is an option of {', '.join(owners)}; {provider}'s Pipecat service has no such setting")
    return None


def honoured(provider: str) -> Iterator[tuple[str, Honoured]]:
    for name, found in CATALOGUE.get(provider, {}).items():
        if isinstance(found, Honoured):
            yield name, found


def checked(provider: str, name: str, value: Any) -> Any:
    """``value`` of option ``name`` as ``provider``'s Pipecat parameter takes it.

    Raises ``ValueError`` starting with the option's name: unknown, refused (with why), or a bad value."""
    found = entry(provider, name)
    if found is None:
        raise ValueError(f"{name}: unknown option for {provider}")
    if isinstance(found, Refused):
        raise ValueError(f"{name}: refused for {provider}: {found.reason}")
    try:
        return found.check(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _check_option(provider: str, name: Any, value: Any, path: str, label: str) -> None:
    found = entry(provider, name) if isinstance(name, str) else None
    if found is None:
        raise OptionError(f"{path}: unknown {label} {name!r}")
    if isinstance(found, Refused):
        raise OptionError(f"{path}: {name} is refused for {provider}: {found.reason}")
    if value is None:
        return  # null leaves the option at its default, as the builders read it
    try:
        found.check(value)
    except ValueError as exc:
        raise OptionError(f"{path}: {name}: {exc}") from None


def check_request(profile: str, services: Mapping[str, str], config: Sequence[Any],
                  service_options: Mapping[str, Any], kinds: Sequence[str]) -> None:
    """Check every option a Daily Bots body sets against the table: ``service_options.<p>.<name>``
    against provider ``p``, a ``config`` option against the provider the profile runs for that
    service type (``kinds``: the types it configures). The body's shape (lists, objects) is
    the caller's to have checked; a ``config`` entry of a type that is not a service here
    (``vad``) is left to it too.

    Raises ``OptionError`` naming the option's path and why: unknown, refused, a bad value,
    one given under two names, or a service the profile does not run."""
    for provider, options in service_options.items():
        if provider not in CATALOGUE or not isinstance(options, Mapping):
            continue  # an unknown provider or a malformed entry: the caller's 422
        for name, value in options.items():
            _check_option(provider, name, value, f"service_options.{provider}.{name}", f"option for {provider}")
    try:
        chosen = resolve(profile, services, tuple(kinds))
    except (KeyError, ValueError):
        return  # an unknown provider: the caller's 422
    by_type = {t: name for name in chosen.values() for t in types_of(name)}
    for i, item in enumerate(config):
        kind = item.get("service") if isinstance(item, Mapping) else None
        if kind not in {t.value for t in ServiceType}:
            continue
        runs = by_type.get(kind)
        if runs is None:
            raise OptionError(f"config[{i}].service: profile {profile} runs no {kind} service "
                              f"(it runs {', '.join(sorted(by_type))})")
        for j, option in enumerate(item.get("options") or []):
            if isinstance(option, Mapping) and option.get("name") in TRANSPORT_OPTIONS:
                raise OptionError(f"config[{i}].options[{j}]: {option['name']} is the room's option, not the "
                                  f"{kind} service's: set it in service_options.daily")
            if isinstance(option, Mapping):
                _check_option(runs, option.get("name"), option.get("value"), f"config[{i}].options[{j}]",
                              f"{kind} option for {runs}")
    for provider in set(chosen.values()):
        merged = merged_options(provider, config, service_options)
        for name, found in honoured(provider):
            if found.alias_of and merged.get(name) is not None and merged.get(found.alias_of) is not None:
                raise OptionError(f"{name}: {provider} takes it as {found.alias_of}; give one of them")


def merged_options(provider: str, config: Sequence[Any], service_options: Mapping[str, Any]) -> dict[str, Any]:
    """The options the pipeline applies to ``provider``, merged as the worker merges them
    (``worker.daily_bots.request``): ``service_options.<provider>`` under the ``config``
    options of its service type, later entries winning (speech to speech: ``s2s`` over ``llm``)."""
    given = service_options.get(provider)
    merged = dict(given) if isinstance(given, Mapping) else {}
    for kind in types_of(provider):
        for item in config:
            if isinstance(item, Mapping) and item.get("service") == kind:
                for option in item.get("options") or []:
                    if isinstance(option, Mapping) and isinstance(option.get("name"), str):
                        merged[option["name"]] = option.get("value")
    return merged


def requirements(provider: str, merged: Mapping[str, Any], environ: Mapping[str, str],
                 is_installed: Callable[[str], bool] = installed) -> list[str]:
    """What running ``provider`` with ``merged`` options still lacks here: a required option
    (azure_tts' region, unless the operator set AZURE_SPEECH_REGION) or the distribution an
    option set true needs. Each item names the option and what to do."""
    missing = []
    if provider == "azure_tts" and not merged.get("region") and not environ.get("AZURE_SPEECH_REGION"):
        missing.append("service_options.azure_tts.region: required for azure_tts (or AZURE_SPEECH_REGION "
                       "in the supervisor's environment)")
    for name, found in honoured(provider):
        if found.requires and merged.get(name) and not is_installed(found.requires[0]):
            missing.append(f"service_options.{provider}.{name}: install {found.requires[1]} "
                           f"(the {found.requires[0]} distribution is missing)")
    return missing


def transport_options(service_options: Mapping[str, Any]) -> dict[str, Any]:
    """``service_options.daily``'s transport options (noise cancellation, muting on a third
    participant), whatever the request's STT."""
    daily = service_options.get("daily")
    return {k: v for k, v in daily.items() if k in TRANSPORT_OPTIONS} if isinstance(daily, Mapping) else {}


def markdown_table() -> str:
    """The README's table: each option, the providers that honour it and where it lands in
    Pipecat, or the providers that refuse it and why."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for provider, options in CATALOGUE.items():
        for name, found in options.items():
            if isinstance(found, Honoured):
                what = found.target + (f" ({found.note})" if found.note else "")
                key = (name, "honoured", what)
            else:
                key = (name, "**422**", found.reason)
            rows.setdefault(key, []).append(f"`{provider}`")
    lines = ["| option | providers | in Pipecat 1.14 |", "|---|---|---|"]
    for (name, status, what), providers in sorted(rows.items(), key=lambda r: (r[0][0], r[0][1] != "honoured")):
        shown = what if status == "honoured" else f"{status}: {what}"
        lines.append(f"| `{name}` | {', '.join(providers)} | {shown} |")
    return "\n".join(lines)

