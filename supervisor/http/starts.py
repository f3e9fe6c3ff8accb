"""The views that start sessions, one per origin: each validates its body and builds its
origin's start request (``supervisor.sessions.requests``), its secrets held beside it in
memory, then waits until the session's room and tokens exist."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from supervisor.bots.services import (
    ServiceError,
    check_api_keys,
    redact_keys,
    runs_phone_pipeline,
    runs_pipeline,
    session_keys,
    twilio_keys,
    validate,
)
from supervisor.daemon_state import DaemonState
from supervisor.daily_rest import DailyAPIError, get_name_from_url
from supervisor.http import forward
from supervisor.http.bodies import BotsStartBody, DialinWebhook, PipecatStartBody, decode_body, field_message, read_body
from supervisor.http.errors import ApiError, invalid
from supervisor.http.keys import DAEMON, HttpDaemon
from supervisor.pool import PoolFull
from supervisor.sessions.actor import SessionGone
from supervisor.sessions.requests import (
    BotsStart,
    DialinSettings,
    DialinStart,
    InvalidStart,
    PipecatStart,
    Prepared,
    RequestSecrets,
    StartRequest,
)

START_REPLY_TIMEOUT_S = 60.0


async def start_session(daemon: HttpDaemon, start: StartRequest) -> Prepared:
    """Start a session and wait until its room and tokens exist; map failures to statuses.

    Raises ``PoolFull`` when no worker here can be promised (``start_reply`` hands it on)."""
    if daemon.state is not DaemonState.RUNNING:
        raise ApiError(503, "service-unavailable", f"the supervisor is {daemon.state.value}; not taking sessions")
    session = daemon.registry.start(start)
    try:
        prepared: Prepared = await asyncio.wait_for(asyncio.shield(session.prepared), START_REPLY_TIMEOUT_S)
    except DailyAPIError as exc:
        if exc.status == 400:
            raise ApiError(400, "invalid-request-error", f"Daily refused the request: {exc.info}") from None
        status = 504 if exc.timed_out else 502
        raise ApiError(status, "daily-api-error", f"Daily REST failed: {exc}") from None
    except InvalidStart as exc:
        raise invalid(str(exc)) from None
    except (TimeoutError, SessionGone) as exc:
        raise ApiError(500, "server-error", f"session could not start: {exc}") from None
    return prepared


async def start_reply(request: web.Request, start: StartRequest,
                      shape: Callable[[Prepared], dict[str, Any]]) -> web.Response:
    """Start here and answer ``shape(prepared)``; with no worker free here, another node with
    one takes the original request (cluster mode), else 429 with ``Retry-After``."""
    daemon = request.app[DAEMON]
    try:
        prepared = await start_session(daemon, start)
    except PoolFull as exc:
        return await forward.hand_off_start(daemon, request, f"no worker free: {exc}")
    return web.json_response(shape(prepared))


def _profile(daemon: HttpDaemon, name: str) -> Any:
    profile = daemon.profiles.get(name)
    if profile is None:
        known = ", ".join(sorted(daemon.profiles.profiles))
        raise ApiError(422, "invalid-request-error", f"unknown profile {name!r} (known: {known})")
    return profile


def _check_room_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        name = get_name_from_url(url)
    except ValueError:
        raise invalid(f"room_url: not a Daily room URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or not name.replace("-", "").replace("_", "").isalnum():
        raise invalid(f"room_url: not a Daily room URL: {url!r}")


def _max_duration(daemon: HttpDaemon, requested: int | None, profile: Any) -> int:
    value = requested or profile.max_duration_s or daemon.config.sessions.max_duration_s
    if not 60 <= value <= 14400:
        raise invalid(f"max_duration: expected int in 60..14400, got {value}")
    return int(value)


def _provider_keys(daemon: HttpDaemon, profile: Any, services: dict[str, str], config: list[Any],
                   service_options: dict[str, dict[str, Any]], where: str = "",
                   api_keys: dict[str, str] | None = None) -> dict[str, str]:
    """Validate the Daily Bots fields; returns, for a built-in pipeline, the keys its worker
    is handed (``RunBot.provider_keys``). ``api_keys`` (Daily Bots' top-level
    ``{"<provider>": "<key>"}``) are the request's own keys, as ``service_options.<provider>.api_key``
    is. Raises a 422 naming the option (prefixed by ``where``): unknown, or, all in one,
    every missing key and extra and request-chosen URL that would get the operator's key."""
    try:
        validate(profile.name, services, config, service_options)
        check_api_keys(api_keys or {})
        if not runs_pipeline(profile.kind, profile.config):
            return {}
        phone = runs_phone_pipeline(profile.kind, profile.config)
        if phone and services.get("stt") == "daily":
            raise ServiceError(f"services.stt: \"daily\" transcribes a Daily room; profile {profile.name} "
                               f"runs over a phone call")
        keys = session_keys(profile.name, services, config, service_options, daemon.environ,
                            daemon.config.providers.allowed_base_urls, api_keys=api_keys or {})
        return {**keys, **twilio_keys(daemon.environ)} if phone else keys
    except ServiceError as exc:
        raise ApiError(422, "invalid-request-error", f"{where}{exc}") from None


def _pipeline_start_body(daemon: HttpDaemon, profile: Any,
                         body: Any) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """A ``/start`` body for a built-in Daily Bots pipeline: its Daily Bots fields checked as
    ``/bots/start`` checks them; returns the body its bot gets (no keys: those travel in
    ``RunBot.provider_keys``, returned beside it) and the request's own ``api_keys`` (for the
    scrubber). Raises a 400 or 422 naming the field."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise invalid(f"body: profile {profile.name} runs a Daily Bots pipeline; expected an object of "
                      f"services, config and service_options")
    fields = {"bot_profile": profile.name,
              **{k: body[k] for k in ("services", "config", "service_options", "api_keys") if k in body}}
    try:
        given = msgspec.convert(fields, BotsStartBody)
    except msgspec.ValidationError as exc:
        raise invalid(f"body.{field_message(str(exc))}") from None
    config = msgspec.to_builtins(given.config)
    keys = _provider_keys(daemon, profile, given.services, config, given.service_options, "body.", given.api_keys)
    # the bot builds the profile it runs: bot_profile is the profile's, whatever the body said
    runner = {k: v for k, v in body.items() if k != "api_keys"}
    return {**runner, "bot_profile": profile.name, "services": given.services, "config": config,
            "service_options": redact_keys(given.service_options)}, keys, dict(given.api_keys)


async def bots_start(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    body = await read_body(request, BotsStartBody)
    profile = _profile(daemon, body.bot_profile)
    if body.token and not body.room_url:
        raise invalid("token: given without room_url")
    if body.room_url is not None:
        _check_room_url(body.room_url)
    config = msgspec.to_builtins(body.config)
    keys = _provider_keys(daemon, profile, body.services, config, body.service_options, api_keys=body.api_keys)
    start = BotsStart(profile=profile.name, kind=profile.kind, profile_config=dict(profile.config),
                      max_duration_s=_max_duration(daemon, body.max_duration, profile),
                      end_on_last_leave=profile.end_on_last_leave, services=dict(body.services), config=config,
                      room_url=body.room_url, pipeline=runs_pipeline(profile.kind, profile.config))
    start.holding(RequestSecrets(body=body.body, service_options=dict(body.service_options),
                                 api_keys=dict(body.api_keys), provider_keys=keys, bot_token=body.token))
    return await start_reply(request, start, lambda p: {"room_url": p.room_url, "token": p.user_token,
                                                         "session_id": p.session_id, "stream_token": p.stream_token})


async def pipecat_start(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    body = await read_body(request, PipecatStartBody)
    if body.transport not in (None, "daily"):  # "websocket" is supervisor.http.phone's
        raise invalid(f"transport: expected \"daily\", \"websocket\" or \"webrtc\", got {body.transport!r}")
    if not body.createDailyRoom:
        raise invalid("createDailyRoom: callfleet runs Daily sessions; it must be true")
    profile = _profile(daemon, body.profile)
    token_props = dict(body.dailyMeetingTokenProperties)
    token_props.pop("room_name", None)  # the token is for the session's room
    runner, keys, own = body.body, dict[str, str](), dict[str, str]()
    if runs_pipeline(profile.kind, profile.config):
        runner, keys, own = _pipeline_start_body(daemon, profile, body.body)
    start = PipecatStart(profile=profile.name, kind=profile.kind, profile_config=dict(profile.config),
                         max_duration_s=_max_duration(daemon, None, profile),
                         end_on_last_leave=profile.end_on_last_leave,
                         room_properties=dict(body.dailyRoomProperties), user_token_properties=token_props)
    start.holding(RequestSecrets(body=runner, api_keys=own, provider_keys=keys))
    return await start_reply(request, start, lambda p: {"dailyRoom": p.room_url, "dailyToken": p.user_token,
                                                         "sessionId": p.session_id, "streamToken": p.stream_token})


async def dialin(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    raw = await request.read()
    try:
        peek = json.loads(raw or b"{}")
    except ValueError:
        raise invalid("body is not valid JSON") from None
    if isinstance(peek, dict) and "test" in peek:
        return web.json_response({"status": "OK"})  # Daily's webhook verification ping
    hook = decode_body(raw, DialinWebhook)
    name = daemon.profiles.dialin_profile
    if name is None:
        raise ApiError(422, "invalid-request-error", "no [dialin] profile is configured in profiles.toml")
    profile = _profile(daemon, name)
    # a built-in Daily Bots pipeline answering the phone runs its default providers, with the operator's keys
    keys = _provider_keys(daemon, profile, {}, [], {}, f"[dialin] profile {profile.name}: ")
    start = DialinStart(profile=profile.name, kind=profile.kind, profile_config=dict(profile.config),
                        max_duration_s=_max_duration(daemon, None, profile), end_on_last_leave=profile.end_on_last_leave,
                        settings=DialinSettings(call_id=hook.callId, call_domain=hook.callDomain, To=hook.To,
                                                From=hook.From, sip_headers=hook.sipHeaders),
                        daily_api_url=daemon.config.daily_api_url)
    start.holding(RequestSecrets(provider_keys=keys))
    return await start_reply(request, start,
                             lambda p: {"status": "OK", "session_id": p.session_id, "room_url": p.room_url})
