"""A Daily Bots ``/bots/start`` body, as a bot receives it in ``runner_args.body``, parsed
into what the pipeline builders need: per service type, the provider, its merged options and
its key; plus the conversation options (``initial_messages``, ``run_on_config``, ``tools``).

Options merge the way Daily Bots applies them: ``service_options.<provider>`` (set at
initialisation) under the ``config`` options of that service type (``config`` wins). The
key is the one the supervisor handed this session under the provider's usual variable
(``worker.daily_bots.keys``: the request's own key or the operator's, as the supervisor
decided); never one from the body or from ``os.environ``, and never part of ``options``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from callfleet.options import TRANSPORT_OPTIONS, transport_options
from callfleet.providers import PROVIDERS, S2S_PROFILES, Provider, ServiceType, resolve
from callfleet.vad import VAD_SERVICE, vad_params
from worker.daily_bots.tools import Tool, parse_tools

# What every profile but the speech-to-speech one configures (Daily Bots' profile table).
VOICE_SERVICES: tuple[str, ...] = ("stt", "llm", "tts")
# LLM options that shape the conversation rather than the LLM service.
# (``system_prompt`` stays: the LLM builders make it the system instruction.)
CONVERSATION_OPTIONS = frozenset({"initial_messages", "run_on_config", "tools"})


class RequestError(ValueError):
    """A body the bots cannot build a pipeline from; the message names the offending path."""


class ServiceRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One service of the pipeline: its provider, merged options, key, and the operator's
    settings and credential parts it reads (a region, AWS's access key id)."""

    kind: ServiceType
    provider: str
    options: dict[str, Any]
    api_key: str | None = None
    settings: dict[str, str] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:  # never show a key in a log line or a failed assertion
        key = "set" if self.api_key else None
        return (f"ServiceRequest(kind={self.kind.value}, provider={self.provider!r}, options={self.options!r}, "
                f"api_key={key}, settings={sorted(self.settings)})")


class BotRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed ``/bots/start`` body."""

    profile: str
    services: dict[ServiceType, ServiceRequest]
    initial_messages: list[dict[str, Any]] = msgspec.field(default_factory=list)
    run_on_config: bool = False
    tools: list[Tool] = msgspec.field(default_factory=list)  # the functions the LLM may call
    vad: dict[str, float] = msgspec.field(default_factory=dict)  # Pipecat's VADParams the RTVI client set
    # service_options.daily's room options (noise cancellation, muting on a third participant)
    transport: dict[str, Any] = msgspec.field(default_factory=dict)

    def service(self, kind: ServiceType) -> ServiceRequest | None:
        return self.services.get(kind)


def config_options(config: Any) -> dict[ServiceType, dict[str, Any]]:
    """Daily Bots' ``config`` list (``[{"service", "options": [{"name", "value"}]}]``) as
    options by service type; a later entry overrides an earlier one.

    Raises ``RequestError`` naming the first malformed path."""
    if config is None:
        return {}
    if not isinstance(config, list):
        raise RequestError("config: expected a list of {service, options}")
    merged: dict[ServiceType, dict[str, Any]] = {}
    for i, entry in enumerate(config):
        if not isinstance(entry, Mapping):
            raise RequestError(f"config[{i}]: expected {{service, options}}")
        if entry.get("service") == VAD_SERVICE:
            continue  # the VAD's, not a service's (vad_params)
        try:
            kind = ServiceType(entry.get("service"))
        except ValueError:
            raise RequestError(f"config[{i}].service: unknown service type {entry.get('service')!r}") from None
        options = entry.get("options", [])
        if not isinstance(options, list):
            raise RequestError(f"config[{i}].options: expected a list of {{name, value}}")
        target = merged.setdefault(kind, {})
        for j, option in enumerate(options):
            if not isinstance(option, Mapping) or "name" not in option or "value" not in option:
                raise RequestError(f"config[{i}].options[{j}]: expected {{\"name\", \"value\"}}")
            target[str(option["name"])] = option["value"]
    return merged


def _initial_messages(llm_options: dict[str, Any]) -> list[dict[str, Any]]:
    messages = llm_options.get("initial_messages") or []
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) and "role" in m for m in messages):
        raise RequestError("config.llm.initial_messages: expected a list of {role, content} messages")
    return [dict(m) for m in messages]


def _settings(provider: Provider, keys: Mapping[str, str]) -> dict[str, str]:
    names = (*provider.companions, *provider.settings)
    return {name: keys[name] for name in names if name in keys}


def parse_request(body: Mapping[str, Any] | None, keys: Mapping[str, str]) -> BotRequest:
    """Parse ``runner_args.body`` of a ``/bots/start`` session; ``keys`` are the session's
    (``worker.daily_bots.keys.current()``), the only place a service's key comes from.

    Providers the body omits get Daily Bots' integrated defaults (``callfleet.providers``).
    An ``api_key`` in the body is ignored. Raises ``RequestError`` for a body that names no
    profile, an unknown provider or a malformed ``config``/``service_options``."""
    body = body or {}
    profile = body.get("bot_profile")
    if not isinstance(profile, str) or not profile:
        raise RequestError("bot_profile: required")
    services = body.get("services") or {}
    service_options = body.get("service_options") or {}
    if not isinstance(services, Mapping):
        raise RequestError("services: expected an object of service type: provider")
    if not isinstance(service_options, Mapping):
        raise RequestError("service_options: expected an object of provider: options")
    config = config_options(body.get("config"))
    try:
        vad = vad_params(body.get("config"))
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    try:
        chosen = resolve(profile, services, ("llm",) if profile in S2S_PROFILES else VOICE_SERVICES)
    except KeyError as exc:
        raise RequestError(f"services: unknown provider {exc.args[0]!r}") from None
    except ValueError as exc:
        raise RequestError(f"services: {exc}") from None

    parsed: dict[ServiceType, ServiceRequest] = {}
    for kind, name in chosen.items():
        given = service_options.get(name) or {}
        if not isinstance(given, Mapping):
            raise RequestError(f"service_options.{name}: expected an object of option: value")
        # The speech-to-speech profile configures its one service under ``llm`` (as Daily Bots does) or ``s2s``.
        runtime = {**config.get(ServiceType.LLM, {}), **config.get(ServiceType.S2S, {})} \
            if kind is ServiceType.S2S else config.get(kind, {})
        # (service_options.daily also holds the room's own options: the transport's, not its STT's)
        options = {k: v for k, v in {**given, **runtime}.items() if k != "api_key" and k not in TRANSPORT_OPTIONS}
        provider = PROVIDERS[name]
        parsed[kind] = ServiceRequest(kind=kind, provider=name, options=options,
                                      api_key=keys.get(provider.key_env) if provider.key_env else None,
                                      settings=_settings(provider, keys))

    conversation = parsed.get(ServiceType.LLM) or parsed.get(ServiceType.S2S)
    initial: list[dict[str, Any]] = []
    run_on_config = False
    tools: list[Tool] = []
    if conversation is not None:
        initial = _initial_messages(conversation.options)
        run_on_config = bool(conversation.options.get("run_on_config", False))
        try:
            tools = parse_tools(conversation.options.get("tools"), "config.llm.tools")
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        trimmed = {k: v for k, v in conversation.options.items() if k not in CONVERSATION_OPTIONS}
        parsed[conversation.kind] = msgspec.structs.replace(conversation, options=trimmed)
    return BotRequest(profile=profile, services=parsed, initial_messages=initial, run_on_config=run_on_config,
                      tools=tools, vad=vad, transport=transport_options(service_options))
