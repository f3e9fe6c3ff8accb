"""Views. Each validates its body into a Struct and hands work to the daemon's parts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
from aiohttp import web

from supervisor.daily_rest import DailyAPIError
from supervisor.http.errors import ApiError, invalid, not_found
from supervisor.http.keys import DAEMON
from supervisor.pool import PoolFull
from supervisor.sessions import SessionGone, StartRequest

START_REPLY_TIMEOUT_S = 60.0


class BotsStartBody(msgspec.Struct, forbid_unknown_fields=False):
    """Daily Bots' ``/bots/start`` body (services/config validation: see the bots module)."""

    bot_profile: str
    max_duration: int | None = None
    services: dict[str, str] = {}
    config: list[dict[str, Any]] = []
    service_options: dict[str, dict[str, Any]] = {}
    room_url: str | None = None
    token: str | None = None


async def read_body(request: web.Request, struct: type[Any]) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "invalid-request-error", "request body is larger than 1 MB") from None
    try:
        return msgspec.json.decode(raw or b"{}", type=struct)
    except msgspec.ValidationError as exc:
        raise invalid(_field_message(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise invalid(f"body is not valid JSON: {exc}") from None


def _field_message(text: str) -> str:
    # "Expected `int`, got `str` - at `$.max_duration`" -> "max_duration: expected int, got str"
    what, _, where = text.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    what = what.replace("`", "")
    return f"{path}: {what[:1].lower()}{what[1:]}" if path else what


def _daemon(request: web.Request) -> Any:
    return request.app[DAEMON]


def _refuse_if_draining(daemon: Any) -> None:
    if daemon.state != "running":
        raise ApiError(503, "service-unavailable", f"the supervisor is {daemon.state}; not taking sessions")


async def start_session(daemon: Any, start: StartRequest) -> Any:
    """Start a session and wait until its room and tokens exist; map failures to statuses."""
    _refuse_if_draining(daemon)
    try:
        session = daemon.registry.start(start)
    except PoolFull as exc:
        raise ApiError(429, "rate-limit-error", f"no worker free: {exc}", headers={"Retry-After": "1"}) from None
    try:
        return await asyncio.wait_for(asyncio.shield(session.prepared), START_REPLY_TIMEOUT_S)
    except DailyAPIError as exc:
        status = 504 if exc.status == 0 and exc.error == "timeout" else 502
        raise ApiError(status, "daily-api-error", f"Daily REST failed: {exc}") from None
    except (TimeoutError, SessionGone) as exc:
        raise ApiError(500, "server-error", f"session could not start: {exc}") from None


async def bots_start(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    body: BotsStartBody = await read_body(request, BotsStartBody)
    profile = daemon.profiles.get(body.bot_profile)
    if profile is None:
        raise ApiError(422, "invalid-request-error", f"unknown bot_profile {body.bot_profile!r}")
    from supervisor.bots import BOT_KINDS

    if profile.kind not in BOT_KINDS:
        raise ApiError(422, "invalid-request-error", f"bot kind {profile.kind!r} is not available in this build")
    max_duration = body.max_duration or profile.max_duration_s or daemon.config.sessions.max_duration_s
    if not 60 <= max_duration <= 14400:
        raise invalid("max_duration: expected int in 60..14400")
    start = StartRequest(profile=profile.name, kind=profile.kind, bot_config=dict(profile.config),
                         max_duration_s=max_duration, room_url=body.room_url,
                         end_on_last_leave=profile.end_on_last_leave)
    prepared = await start_session(daemon, start)
    return web.json_response({"room_url": prepared.room_url, "token": prepared.user_token,
                              "session_id": prepared.session_id, "stream_token": prepared.stream_token})


async def list_sessions(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    state = request.query.get("state")
    return web.json_response({"data": daemon.registry.list(state, 200)}, dumps=_dumps)


async def get_session(request: web.Request) -> web.Response:
    found = _daemon(request).registry.describe(request.match_info["id"])
    if found is None:
        raise not_found(f"session {request.match_info['id']} not found")
    return web.json_response(found, dumps=_dumps)


async def delete_session(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    sid = request.match_info["id"]
    if not await daemon.stop_session(sid):
        if daemon.registry.describe(sid) is None:
            raise not_found(f"session {sid} not found")
        return web.json_response({"session_id": sid, "stopping": False, "info": "already finished"})
    return web.json_response({"session_id": sid, "stopping": True})


async def healthz(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    status = daemon.status()
    healthy = daemon.state == "running" and (daemon.pool.capacity() > 0 or daemon.pool.boot.failures == 0)
    body = {"status": "ok" if healthy else "unavailable", "state": daemon.state,
            "workers": status["workers"], "sessions": status["sessions"], "capacity": status["pool"]["capacity"]}
    return web.json_response(body, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=_daemon(request).metrics.render(), content_type="text/plain", charset="utf-8")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/bots/start", bots_start)
    r.add_get("/sessions", list_sessions)
    r.add_get("/sessions/{id}", get_session)
    r.add_delete("/sessions/{id}", delete_session)
    r.add_get("/healthz", healthz)
    r.add_get("/metrics", metrics)
