"""Daily Bots' service tables, as its API documents them: which providers exist for each
service type and which options each takes, the validation of a ``/bots/start`` body
against them, and the provider keys a built-in pipeline's session is handed
(``session_keys``).

An unknown service type, provider or option, a missing key, or a request-chosen URL that
would receive the operator's key is a ``ServiceError`` whose message names the offending
path (``services.tts: unknown provider 'foo'``); the API answers it with 422.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from callfleet import options as option_table
from callfleet import providers as provider_table
from callfleet import vad

PROVIDERS: dict[str, tuple[str, ...]] = {
    "stt": ("deepgram", "assemblyai", "gladia", "daily"),  # "daily": callfleet's, the room's own transcription
    "llm": ("anthropic", "together", "gemini", "grok", "groq", "openai", "custom_llm"),
    "tts": ("cartesia", "deepgram_tts", "elevenlabs", "azure_tts", "aws_tts", "google_tts", "openai_tts",
            "playht", "rime"),
    "s2s": ("openai_realtime",),
}

# Which option each provider takes, and what Pipecat makes of it, is callfleet.options' table
# (CATALOGUE): validate() checks a body against it, the worker's builders apply it.

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


def _json_object(value: Any) -> bool:
    try:
        return isinstance(value, str) and isinstance(json.loads(value), dict)
    except ValueError:
        return False


def validate(profile: str, services: dict[str, str], config: list[dict[str, Any]],
             service_options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Check ``services``, ``config`` and ``service_options``; returns them normalised.

    Raises ``ServiceError`` naming the first offending path."""
    allowed = PROFILE_SERVICES.get(profile, tuple(PROVIDERS))
    for kind, provider in services.items():
        if kind == vad.VAD_SERVICE:  # what Daily's RTVI clients may name beside stt, llm and tts
            try:
                vad.check_provider(provider, has_vad=profile not in provider_table.S2S_PROFILES)
            except ValueError as exc:
                raise ServiceError(str(exc)) from None
            continue
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
        if kind == vad.VAD_SERVICE:  # Daily's RTVI clients send one: Pipecat's VADParams
            if profile in provider_table.S2S_PROFILES:
                raise ServiceError(f"config[{i}].service: profile {profile} has no VAD of its own (the "
                                   f"speech-to-speech service takes turns); leave the vad entry out and set "
                                   f"turn_detection in config llm")
            try:
                vad.entry_params(entry, f"config[{i}]")
            except ValueError as exc:
                raise ServiceError(str(exc)) from None
            continue
        if kind not in PROVIDERS:
            raise ServiceError(f"config[{i}].service: unknown service type {kind!r}")
        options = entry.get("options", [])
        if not isinstance(options, list):
            raise ServiceError(f"config[{i}].options: expected a list of {{name, value}}")
        for j, option in enumerate(options):
            if not isinstance(option, dict) or "name" not in option or "value" not in option:
                raise ServiceError(f"config[{i}].options[{j}]: expected {{\"name\", \"value\"}}")
    for provider, options in service_options.items():
        if provider not in _TYPE_OF:
            raise ServiceError(f"service_options.{provider}: unknown provider")
        if not isinstance(options, dict):
            raise ServiceError(f"service_options.{provider}: expected an object of option: value")
        table_entry = provider_table.PROVIDERS.get(provider)
        if table_entry is not None and table_entry.key_in_file and "api_key" in options \
                and not _json_object(options["api_key"]):
            # A request's key is the credentials document itself, never a path (a file of its
            # choosing, whose error would quote it); every profile kind, before anything else.
            raise ServiceError(f"service_options.{provider}.api_key: expected the service account's JSON key")
    try:  # every option honoured by the pipeline or refused with why: never accepted and dropped
        option_table.check_request(profile, services, config, service_options,
                                   PROFILE_SERVICES.get(profile, ("stt", "llm", "tts")))
    except option_table.OptionError as exc:
        raise ServiceError(str(exc)) from None
    return {"services": dict(services), "config": list(config), "service_options": dict(service_options)}


# Daily Bots profiles whose bot is one of callfleet's built-in pipelines (worker/daily_bots/).
PIPELINE_BOT_PREFIX = "worker.daily_bots."


def runs_pipeline(kind: str, config: Mapping[str, Any]) -> bool:
    """Whether a profile runs one of the built-in Daily Bots pipelines (whose providers need keys)."""
    return kind == "pipecat" and str(config.get("bot", "")).startswith(PIPELINE_BOT_PREFIX)


# The built-in pipeline that talks over a Twilio Media Stream (twilio_ws_voice_2024_09) instead of a room.
PHONE_PIPELINE_BOT_PREFIX = "worker.daily_bots.phone:"
# The operator's Twilio credentials its serializer hangs calls up with, handed over like provider keys.
TWILIO_KEY_ENVS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")


def runs_phone_pipeline(kind: str, config: Mapping[str, Any]) -> bool:
    """Whether a profile runs the built-in phone pipeline: its session is a phone call."""
    return kind == "pipecat" and str(config.get("bot", "")).startswith(PHONE_PIPELINE_BOT_PREFIX)


def twilio_keys(environ: Mapping[str, str]) -> dict[str, str]:
    """The operator's ``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN`` (those set), for a
    phone pipeline's session: without them its bot does not hang calls up through Twilio's
    API (the socket closing still ends the call)."""
    return {name: environ[name] for name in TWILIO_KEY_ENVS if environ.get(name)}


def session_keys(profile: str, services: Mapping[str, str], config: Sequence[Any],
                 service_options: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str],
                 allowed_base_urls: Sequence[str] = (),
                 is_installed: Callable[[str], bool] = provider_table.installed,
                 api_keys: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Check every provider the profile's pipeline will run (defaults included) and return
    what its worker is handed in memory (``RunBot.provider_keys``): each key, and each
    setting its services read, by the provider's usual variable name.

    A service's key is the request's own (``service_options.<provider>.api_key``, or the
    top-level ``api_keys.<provider>``, Daily Bots' other way to bring one), else the
    operator's from ``environ`` (the supervisor's snapshot, never ``os.environ``); the
    operator's only where the service connects to its provider's default URL or below an
    ``allowed_base_urls`` entry. A request's key serves every service of the session that
    reads the same variable (``openai`` and ``openai_tts``). Raises one ``ServiceError``
    naming every missing variable and extra, and every request-chosen URL that would have
    got the operator's key, each with what to do."""
    kinds = PROFILE_SERVICES.get(profile, ("stt", "llm", "tts"))
    try:
        chosen = provider_table.resolve(profile, services, kinds)
    except KeyError as exc:
        raise ServiceError(f"services: unknown provider {exc.args[0]!r}") from None
    keys: dict[str, str] = {}
    owners: dict[str, str] = {}  # variable -> the option whose request key went under it
    problems: list[str] = []  # everything missing, reported together: one 422 to fix them all
    for service_type, name in chosen.items():
        entry = provider_table.PROVIDERS[name]
        if entry.kind != service_type:
            known = ", ".join(provider_table.providers_of(service_type))
            raise ServiceError(f"services.llm: profile {profile} runs a speech-to-speech provider (known: {known})")
        try:
            provider_table.check(entry, is_installed)
        except provider_table.ProviderUnavailable as exc:
            problems.append(str(exc))
            if entry.module is None and not entry.in_transport:
                continue  # nothing runs it, so neither its key nor its URL matters
        # what its options need here: a required one (azure_tts' region), an extra one of them needs
        problems.extend(option_table.requirements(
            name, option_table.merged_options(name, config, service_options), environ, is_installed))
        try:
            url = _chosen_url(entry, service_type, config, service_options)
            own = _own_key(entry, service_options.get(name) or {}, api_keys or {})
            if entry.key_env is not None:  # a provider without a key (daily's STT) has none to choose
                _choose_key(entry, own, url, keys, owners, environ, allowed_base_urls)
            if entry.key_required and entry.key_env and entry.key_env not in keys:
                raise ServiceError(f"{name}: no API key; set {entry.key_env} in the supervisor's environment, or "
                                   f"give api_keys.{name} (or service_options.{name}.api_key)")
        except ServiceError as exc:
            problems.append(str(exc))
            continue
        keys.update({setting: environ[setting] for setting in entry.settings if environ.get(setting)})
    if len(problems) == 1:
        raise ServiceError(problems[0])
    if problems:
        listed = " ".join(f"({n}) {problem}" for n, problem in enumerate(problems, start=1))
        raise ServiceError(f"{profile} cannot run this request; {len(problems)} things to fix: {listed}")
    return keys


def _choose_key(entry: provider_table.Provider, own: tuple[str, str] | None,
                url: provider_table.RequestedURL | None, keys: dict[str, str], owners: dict[str, str],
                environ: Mapping[str, str], allowed_base_urls: Sequence[str]) -> None:
    """Put the key ``entry`` runs with in ``keys``: the request's own (``own``: the option and
    the key), else the operator's, which goes only to the provider's own URL or an allowed one.
    Raises ``ServiceError`` for a request-chosen URL without the request's key, or two own keys
    for one variable."""
    assert entry.key_env is not None
    name = entry.name
    if own is not None:
        option, key = own
        earlier = owners.setdefault(entry.key_env, option)
        if earlier != option and keys[entry.key_env] != key:
            raise ServiceError(f"{option}: differs from {earlier}; both providers read {entry.key_env}, "
                               f"so one session gives them one key")
        keys[entry.key_env] = key  # over an operator's key another service of the session had
    elif url is not None and not provider_table.operator_may_use(entry, url.value, allowed_base_urls):
        if entry.key_required:
            default = f"{entry.default_url} or " if entry.default_url else ""
            raise ServiceError(f"{url.option}: a request-chosen URL needs the request's own key "
                               f"(api_keys.{name} or service_options.{name}.api_key); the operator's key "
                               f"only goes to {default}[providers] allowed_base_urls")
        # A key-optional endpoint (custom_llm) runs without one rather than with the operator's.
    elif entry.key_env not in keys:
        keys.update(_operator_key(entry, environ))


def _chosen_url(entry: provider_table.Provider, service_type: provider_table.ServiceType, config: Sequence[Any],
                service_options: Mapping[str, Mapping[str, Any]]) -> provider_table.RequestedURL | None:
    """The URL the request chose for this service (None: its default); raises ``ServiceError``
    for one that is not a string, one its service cannot take, or a missing required one."""
    url = provider_table.requested_url(service_type, entry.name, config, service_options)
    if url is not None and url.value is None:
        url = None  # a null option leaves the service at its default, as the pipeline reads it
    if url is not None:
        if not isinstance(url.value, str) or not url.value:
            raise ServiceError(f"{url.option}: expected a URL, got {url.value!r}")
        if not entry.takes_base_url:
            raise ServiceError(f"{url.option}: {entry.name} takes no base_url")
    elif entry.requires_base_url:
        raise ServiceError(f"service_options.{entry.name}.base_url: required for {entry.name} "
                           f"(an OpenAI-compatible endpoint)")
    return url


def _own_key(entry: provider_table.Provider, options: Mapping[str, Any],
             api_keys: Mapping[str, Any]) -> tuple[str, str] | None:
    """The request's own key for a provider and the option it came in: its
    ``service_options.<provider>.api_key``, else ``api_keys.<provider>``. Raises
    ``ServiceError`` for a malformed one, or for two that differ."""
    given = [(f"service_options.{entry.name}.api_key", options.get("api_key")),
             (f"api_keys.{entry.name}", api_keys.get(entry.name))]
    found = [(option, key) for option, key in given if key is not None]
    for option, key in found:
        if not isinstance(key, str) or not key:
            raise ServiceError(f"{option}: expected a non-empty string")
    if len(found) == 2 and found[0][1] != found[1][1]:
        raise ServiceError(f"{found[1][0]}: differs from {found[0][0]}; give the provider one key")
    return found[0] if found else None  # (a key kept in a file is a JSON document: checked before)


def check_api_keys(api_keys: Mapping[str, Any]) -> None:
    """Check a request's top-level ``api_keys`` (Daily Bots' ``{"<provider>": "<key>"}``):
    every name a provider of the tables, every key a non-empty string, and a key kept in a
    file (``google_tts``) the credentials document itself, never a path. Raises
    ``ServiceError`` naming the first offending entry."""
    for provider, key in api_keys.items():
        if provider not in _TYPE_OF:
            raise ServiceError(f"api_keys.{provider}: unknown provider (known: {', '.join(sorted(_TYPE_OF))})")
        if not isinstance(key, str) or not key:
            raise ServiceError(f"api_keys.{provider}: expected a non-empty string")
        entry = provider_table.PROVIDERS.get(provider)
        if entry is not None and entry.key_in_file and not _json_object(key):
            raise ServiceError(f"api_keys.{provider}: expected the service account's JSON key")


def _operator_key(entry: provider_table.Provider, environ: Mapping[str, str]) -> dict[str, str]:
    """The operator's key for a provider and the rest of its credential (nothing when unset);
    a key kept in a file is read here, so a worker never needs the file."""
    assert entry.key_env is not None
    value = environ.get(entry.key_env)
    if not value:
        return {}
    if entry.key_in_file:
        try:
            value = Path(value).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ServiceError(f"{entry.name}: {entry.key_env} names a file the supervisor cannot read "
                               f"({type(exc).__name__})") from None
    return {entry.key_env: value, **{name: environ[name] for name in entry.companions if environ.get(name)}}


def redact_keys(service_options: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``service_options`` without any ``api_key``: what a session record may keep."""
    return {name: {key: value for key, value in options.items() if key != "api_key"}
            for name, options in service_options.items()}
