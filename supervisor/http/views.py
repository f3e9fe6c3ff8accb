"""Views. Each validates its body into a Struct and hands the work to the daemon's parts."""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

import msgspec
from aiohttp import web

from supervisor.bots.services import ServiceError, redact_keys, runs_pipeline, session_keys, validate
from supervisor.bots.stream import EngineBusy, StreamBot
from supervisor.config import sentence, split_validation_error
from supervisor.daemon_state import DaemonState
from supervisor.daily_rest import DailyAPIError
from supervisor.http import daily_proxy, forward, middlewares
from supervisor.http.bodies import AppMessageBody, BotsStartBody, DialinWebhook, PipecatStartBody
from supervisor.http.errors import ApiError, invalid, not_found
from supervisor.http.keys import DAEMON
from supervisor.http.openapi import document
from supervisor.pool import PoolFull
from supervisor.sessions.requests import CommandRefused, InvalidStart, SessionGone, StartRequest
from supervisor.sessions.state import SessionState

START_REPLY_TIMEOUT_S = 60.0


async def read_body(request: web.Request, struct: type[Any]) -> Any:
    """Read, decode and validate a JSON body; 400 naming the field, 413 past 1 MB."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "invalid-request-error", "request body is larger than 1 MB") from None
    return decode_body(raw, struct)


def decode_body(raw: bytes, struct: type[Any]) -> Any:
    """Decode and validate a JSON body; raises a 400 ``ApiError`` naming the field."""
    try:
        return msgspec.json.decode(raw or b"{}", type=struct)
    except msgspec.ValidationError as exc:
        raise invalid(_field_message(str(exc))) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # bad UTF-8 inside a string is the latter
        raise invalid(f"body is not valid JSON: {exc}") from None


def _field_message(text: str) -> str:
    # "Expected `int`, got `str` - at `$.max_duration`" -> "max_duration: expected int, got str"
    path, what = split_validation_error(text)
    return f"{path}: {sentence(what)}" if path else what.replace("`", "")


def _daemon(request: web.Request) -> Any:
    return request.app[DAEMON]


# -- starting sessions ---------------------------------------------------------------------------


async def start_session(daemon: Any, start: StartRequest) -> Any:
    """Start a session and wait until its room and tokens exist; map failures to statuses.

    Raises ``PoolFull`` when no worker here can be promised (``start_reply`` hands it on)."""
    if daemon.state is not DaemonState.RUNNING:
        raise ApiError(503, "service-unavailable", f"the supervisor is {daemon.state.value}; not taking sessions")
    session = daemon.registry.start(start)
    try:
        return await asyncio.wait_for(asyncio.shield(session.prepared), START_REPLY_TIMEOUT_S)
    except DailyAPIError as exc:
        if exc.status == 400:
            raise ApiError(400, "invalid-request-error", f"Daily refused the request: {exc.info}") from None
        status = 504 if exc.timed_out else 502
        raise ApiError(status, "daily-api-error", f"Daily REST failed: {exc}") from None
    except InvalidStart as exc:
        raise invalid(str(exc)) from None
    except (TimeoutError, SessionGone) as exc:
        raise ApiError(500, "server-error", f"session could not start: {exc}") from None


async def start_reply(request: web.Request, start: StartRequest, shape: Any) -> web.Response:
    """Start here and answer ``shape(prepared)``; with no worker free here, another node with
    one takes the original request (cluster mode), else 429 with ``Retry-After``."""
    daemon = _daemon(request)
    try:
        prepared = await start_session(daemon, start)
    except PoolFull as exc:
        return await forward.hand_off_start(daemon, request, f"no worker free: {exc}")
    return web.json_response(shape(prepared))


def _profile(daemon: Any, name: str) -> Any:
    profile = daemon.profiles.get(name)
    if profile is None:
        known = ", ".join(sorted(daemon.profiles.profiles))
        raise ApiError(422, "invalid-request-error", f"unknown profile {name!r} (known: {known})")
    return profile


def _check_room_url(url: str) -> None:
    from urllib.parse import urlsplit

    from supervisor.daily_rest import get_name_from_url

    try:
        parts = urlsplit(url)
        name = get_name_from_url(url)
    except ValueError:
        raise invalid(f"room_url: not a Daily room URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or not name.replace("-", "").replace("_", "").isalnum():
        raise invalid(f"room_url: not a Daily room URL: {url!r}")


def _max_duration(daemon: Any, requested: int | None, profile: Any) -> int:
    value = requested or profile.max_duration_s or daemon.config.sessions.max_duration_s
    if not 60 <= value <= 14400:
        raise invalid(f"max_duration: expected int in 60..14400, got {value}")
    return int(value)


def _daily_bots_services(daemon: Any, profile: Any, services: dict[str, str], config: list[Any],
                         service_options: dict[str, dict[str, Any]], where: str = "") -> tuple[dict[str, Any], dict[str, str]]:
    """Validate the Daily Bots fields; returns them normalised, and for a built-in pipeline the
    keys its worker is handed (``RunBot.provider_keys``). Raises a 422 naming the option
    (prefixed by ``where``): unknown, missing a key, or a request-chosen URL that would get
    the operator's key."""
    try:
        validated = validate(profile.name, services, config, service_options)
        keys: dict[str, str] = {}
        if runs_pipeline(profile.kind, profile.config):
            keys = session_keys(profile.name, services, config, service_options, daemon.environ,
                                daemon.config.providers.allowed_base_urls)
    except ServiceError as exc:
        raise ApiError(422, "invalid-request-error", f"{where}{exc}") from None
    return validated, keys


def _pipeline_start_body(daemon: Any, profile: Any, body: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A ``/start`` body for a built-in Daily Bots pipeline: its Daily Bots fields checked as
    ``/bots/start`` checks them; returns the body its bot gets (no keys: those travel in
    ``RunBot.provider_keys``, returned beside it). Raises a 400 or 422 naming the field."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise invalid(f"body: profile {profile.name} runs a Daily Bots pipeline; expected an object of "
                      f"services, config and service_options")
    fields = {"bot_profile": profile.name, **{k: body[k] for k in ("services", "config", "service_options") if k in body}}
    try:
        given = msgspec.convert(fields, BotsStartBody)
    except msgspec.ValidationError as exc:
        raise invalid(f"body.{_field_message(str(exc))}") from None
    config = msgspec.to_builtins(given.config)
    _, keys = _daily_bots_services(daemon, profile, given.services, config, given.service_options, "body.")
    # the bot builds the profile it runs: bot_profile is the profile's, whatever the body said
    return {**body, "bot_profile": profile.name, "services": given.services, "config": config,
            "service_options": redact_keys(given.service_options)}, keys


async def bots_start(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    body: BotsStartBody = await read_body(request, BotsStartBody)
    profile = _profile(daemon, body.bot_profile)
    if body.token and not body.room_url:
        raise invalid("token: given without room_url")
    if body.room_url is not None:
        _check_room_url(body.room_url)
    config = msgspec.to_builtins(body.config)
    services, keys = _daily_bots_services(daemon, profile, body.services, config, body.service_options)
    # what a hosted Pipecat bot gets as runner_args.body (SPEC §4); the record keeps it without BYO keys
    daily_bots = {"bot_profile": body.bot_profile, "services": body.services, "config": config,
                  "service_options": body.service_options}
    recorded = {**daily_bots, "service_options": redact_keys(body.service_options)}
    pipeline = runs_pipeline(profile.kind, profile.config)
    start = StartRequest(profile=profile.name, kind=profile.kind, bot_config={**profile.config, **services},
                         max_duration_s=_max_duration(daemon, body.max_duration, profile), room_url=body.room_url,
                         bot_token=body.token,
                         end_on_last_leave=profile.end_on_last_leave,
                         extra={"body": body.body, "daily_bots": recorded},
                         # a built-in pipeline gets its keys in provider_keys; your own bot reads them here
                         runner_body=recorded if pipeline else daily_bots, provider_keys=keys)
    return await start_reply(request, start, lambda p: {"room_url": p.room_url, "token": p.user_token,
                                                         "session_id": p.session_id, "stream_token": p.stream_token})


async def pipecat_start(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    body: PipecatStartBody = await read_body(request, PipecatStartBody)
    if not body.createDailyRoom:
        raise invalid("createDailyRoom: callfleet runs Daily sessions; it must be true")
    profile = _profile(daemon, body.profile)
    token_props = dict(body.dailyMeetingTokenProperties)
    token_props.pop("room_name", None)  # the token is for the session's room
    runner, keys = body.body, dict[str, str]()
    if runs_pipeline(profile.kind, profile.config):
        runner, keys = _pipeline_start_body(daemon, profile, body.body)
    start = StartRequest(profile=profile.name, kind=profile.kind, bot_config=dict(profile.config),
                         max_duration_s=_max_duration(daemon, None, profile),
                         room_properties=dict(body.dailyRoomProperties), user_token_properties=token_props,
                         end_on_last_leave=profile.end_on_last_leave, extra={"body": runner}, provider_keys=keys)
    return await start_reply(request, start, lambda p: {"dailyRoom": p.room_url, "dailyToken": p.user_token,
                                                         "sessionId": p.session_id, "streamToken": p.stream_token})


async def dialin(request: web.Request) -> web.Response:
    daemon = _daemon(request)
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
    settings = {"call_id": hook.callId, "call_domain": hook.callDomain, "To": hook.To, "From": hook.From,
                "sip_headers": hook.sipHeaders}
    # a built-in Daily Bots pipeline answering the phone runs its default providers, with the operator's keys
    _, keys = _daily_bots_services(daemon, profile, {}, [], {}, f"[dialin] profile {profile.name}: ")
    start = StartRequest(profile=profile.name, kind=profile.kind, bot_config=dict(profile.config),
                         max_duration_s=_max_duration(daemon, None, profile),
                         sip={"display_name": hook.From[:60] or "caller", "video": False, "sip_mode": "dial-in",
                              "num_endpoints": 1},
                         end_on_last_leave=profile.end_on_last_leave,
                         extra={"dialin_settings": settings,
                                "body": {"dialin_settings": settings, "daily_api_url": daemon.config.daily_api_url}},
                         provider_keys=keys)
    return await start_reply(request, start,
                             lambda p: {"status": "OK", "session_id": p.session_id, "room_url": p.room_url})


# -- sessions ------------------------------------------------------------------------------------


async def list_sessions(request: web.Request) -> web.Response:
    name = request.query.get("state")
    try:
        state = None if name is None else SessionState(name)
    except ValueError:
        raise invalid(f"state: unknown state {name!r} (known: {', '.join(SessionState)})") from None
    daemon = _daemon(request)
    local = daemon.registry.list(state, 200)
    listing = await forward.list_everywhere(daemon, request, local, None if state is None else state.value)
    return web.json_response({"data": listing, **forward.listing_note(daemon, request)}, dumps=_dumps)


async def get_session(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    sid = request.match_info["id"]
    owner = await forward.remote_owner(daemon, request, sid)
    if owner is not None:
        return await forward.relay(daemon, request, owner)
    found = daemon.registry.describe(sid) or await forward.directory_view(daemon, request, sid)
    if found is None:
        raise not_found(f"session {sid} not found")
    return web.json_response(found, dumps=_dumps)


async def delete_session(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    sid = request.match_info["id"]
    owner = await forward.remote_owner(daemon, request, sid)
    if owner is not None:
        return await forward.relay(daemon, request, owner)
    if not await daemon.stop_session(sid):
        if daemon.registry.describe(sid) is None and await forward.directory_view(daemon, request, sid) is None:
            raise not_found(f"session {sid} not found")
        return web.json_response({"session_id": sid, "stopping": False, "info": "already finished"})
    return web.json_response({"session_id": sid, "stopping": True})


async def _live_session(request: web.Request) -> Any:
    """The live session here; raises 404 (unknown anywhere) or 409 (finished)."""
    daemon = _daemon(request)
    sid = request.match_info["id"]
    session = daemon.registry.get(sid)
    if session is None:
        if daemon.registry.describe(sid) is None and await forward.directory_view(daemon, request, sid) is None:
            raise not_found(f"session {sid} not found")
        raise ApiError(409, "invalid-request-error", f"session {sid} has finished")
    return session


async def app_message(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    owner = await forward.remote_owner(daemon, request, request.match_info["id"])
    if owner is not None:
        return await forward.relay(daemon, request, owner)
    session = await _live_session(request)
    body: AppMessageBody = await read_body(request, AppMessageBody)
    if len(msgspec.json.encode(body.message)) > 4096:
        raise invalid("message: larger than 4 KB (Daily's app-message limit)")
    if session.record.state != SessionState.JOINED:
        raise ApiError(409, "invalid-request-error",
                       f"session is {session.record.state.value}; the bot is not in the call")
    try:
        await session.ask(lambda: session.send_app_message(body.message, body.participant_id))
    except SessionGone as exc:
        raise ApiError(409, "invalid-request-error", str(exc)) from None
    except CommandRefused as exc:
        raise ApiError(502, "daily-api-error", f"the call refused the message: {exc}") from None
    return web.json_response({"sent": True})


async def stream(request: web.Request) -> web.StreamResponse:
    daemon = _daemon(request)
    owner = await forward.remote_owner(daemon, request, request.match_info["id"])
    if owner is not None:
        return await forward.relay_stream(daemon, request, owner)
    session = await _live_session(request)
    token = request.query.get("token") or request.headers.get("X-Stream-Token", "")
    if not hmac.compare_digest(token.encode(), session.stream_token.encode()):
        raise ApiError(401, "authentication-error", "missing or invalid stream token")
    if session.request.kind != "stream":
        raise ApiError(409, "invalid-request-error", f"session {session.id} runs a {session.request.kind} bot, not stream")
    for _ in range(100):  # the bot exists once the actor has started it
        if isinstance(session.bot, StreamBot):
            break
        await asyncio.sleep(0.05)
    bot = session.bot
    if not isinstance(bot, StreamBot):
        raise ApiError(409, "invalid-request-error", "the session's bot is not running yet")
    if bot.ws is not None and not bot.ws.closed:
        raise ApiError(409, "invalid-request-error", "an engine is already attached to this session")
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=1024 * 1024)
    await ws.prepare(request)
    try:
        await bot.attach(ws, session.stream_config())
    except EngineBusy as exc:
        await ws.send_json({"type": "error", "error": str(exc)})
        await ws.close()
        return ws
    try:
        await bot.serve(ws)
    finally:
        await bot.detach(ws)
    return ws


# -- health, metrics, docs ---------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    status = daemon.status()
    can_start = daemon.pool.capacity() > 0 or daemon.pool.boot.failures == 0
    sandbox = status["sandbox"]
    daily_up = sandbox is None or sandbox["state"] == "up"  # the embedded sandbox is Daily here
    healthy = daemon.state is DaemonState.RUNNING and can_start and daily_up
    body = {"status": "ok" if healthy else "unavailable", "state": daemon.state.value,
            "workers": status["workers"], "sessions": status["sessions"], "capacity": status["pool"]["capacity"],
            "sandbox": sandbox}
    return web.json_response(body, status=200 if healthy else 503)


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 only while taking sessions and able to start one (Kubernetes takes a
    503 node out of its Service, so a draining or full node gets no new calls)."""
    daemon = _daemon(request)
    status = daemon.status()
    sandbox = status["sandbox"]
    reasons = []
    if daemon.state is not DaemonState.RUNNING:
        reasons.append(f"the supervisor is {daemon.state.value}")
    if status["pool"]["capacity"] <= 0:
        reasons.append("every worker is busy and max_workers is reached")
    if sandbox is not None and sandbox["state"] != "up":
        reasons.append("the embedded sandbox is down")
    body = {"status": "ready" if not reasons else "unavailable", "state": daemon.state.value,
            "capacity": status["pool"]["capacity"], "reasons": reasons}
    return web.json_response(body, status=503 if reasons else 200)


async def livez(request: web.Request) -> web.Response:
    """Liveness: answered by the daemon's own loop, so a 200 means the loop runs (also
    while draining: a draining node must not be killed for it)."""
    return web.json_response({"status": "alive", "state": _daemon(request).state.value})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=_daemon(request).metrics.render(), content_type="text/plain", charset="utf-8")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/bots/start", bots_start),
    ("POST", "/start", pipecat_start),
    ("POST", "/dialin", dialin),
    ("GET", "/sessions", list_sessions),
    ("GET", "/sessions/{id}", get_session),
    ("DELETE", "/sessions/{id}", delete_session),
    ("POST", "/sessions/{id}/app-message", app_message),
    ("GET", "/sessions/{id}/stream", stream),
    ("GET", "/healthz", healthz),
    ("GET", "/readyz", readyz),
    ("GET", "/livez", livez),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi),
    *((method, daily_proxy.PREFIX + "/{tail:.*}", daily_proxy.daily_proxy) for method in ("GET", "POST", "DELETE")),
]


# What answers without the bearer key (middlewares.bearer_auth).
OPEN_HANDLERS = {healthz, readyz, livez, metrics, openapi, stream, daily_proxy.daily_proxy}


def setup_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app[middlewares.OPEN_HANDLERS] = set(OPEN_HANDLERS)
    daily_proxy.setup(app)
