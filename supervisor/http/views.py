"""Views. Each validates its body into a Struct and hands the work to the daemon's parts;
the views that start sessions are ``supervisor.http.starts``."""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

import msgspec
from aiohttp import web

from supervisor.bots.stream import EngineBusy, StreamBot
from supervisor.daemon_state import DaemonState
from supervisor.http import client_page, daily_proxy, dashboard, forward, middlewares, phone, phone_bots, webrtc
from supervisor.http.bodies import AppMessageBody, read_body
from supervisor.http.errors import ApiError, invalid, not_found
from supervisor.http.keys import DAEMON, HttpDaemon
from supervisor.http.openapi import document
from supervisor.http.session_logs import session_logs
from supervisor.http.starts import dialin
from supervisor.sessions.actor import SessionGone
from supervisor.sessions.session import CommandRefused
from supervisor.sessions.state import SessionState


def _daemon(request: web.Request) -> HttpDaemon:
    return request.app[DAEMON]


# -- sessions ------------------------------------------------------------------------------------


async def list_sessions(request: web.Request) -> web.Response:
    name = request.query.get("state")
    try:
        state = None if name is None else SessionState(name)
    except ValueError:
        raise invalid(f"state: unknown state {name!r} (known: {', '.join(SessionState)})") from None
    daemon = _daemon(request)
    # A forwarded ask lists this node's only: the asking node reads the directory itself.
    listing = await forward.list_sessions(daemon.registry, forward.may_forward(daemon, request), state,
                                          forward.LISTING_LIMIT)
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
    token = request.query.get("token") or request.headers.get("X-Stream-Token") or ""
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
    can_start = daemon.pool.capacity() > 0 or not daemon.pool.boot_failing()
    sandbox = status["sandbox"]
    # The embedded sandbox (a dict) is Daily here; an external one's health is its own to report.
    daily_up = not isinstance(sandbox, dict) or sandbox["state"] == "up"
    healthy = daemon.state is DaemonState.RUNNING and can_start and daily_up
    body = {"status": "ok" if healthy else "unavailable", "state": daemon.state.value,
            "workers": status["workers"], "sessions": status["sessions"], "capacity": status["pool"]["capacity"],
            "sandbox": sandbox}
    return web.json_response(body, status=200 if healthy else 503)


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 only while taking sessions and able to start one at once (Kubernetes
    takes a 503 node out of its Service, so a draining, full or still cold node -- fewer
    than ``min_idle`` workers of each lane booted since start-up -- gets no new calls)."""
    daemon = _daemon(request)
    status = daemon.status()
    sandbox = status["sandbox"]
    reasons = []
    if daemon.state is not DaemonState.RUNNING:
        reasons.append(f"the supervisor is {daemon.state.value}")
    reasons += daemon.pool.warming()  # else the first callers would wait for a forkserver's preload and a boot
    if status["pool"]["capacity"] <= 0:
        reasons.append("every worker is busy and max_workers is reached")
    if isinstance(sandbox, dict) and sandbox["state"] != "up":
        reasons.append("the embedded sandbox is down")
    body = {"status": "ready" if not reasons else "unavailable", "state": daemon.state.value,
            "capacity": status["pool"]["capacity"], "idle": status["pool"]["idle"],
            "min_idle": status["pool"]["min_idle"], "reasons": reasons}
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
    ("POST", "/bots/start", phone_bots.bots_start),  # a phone profile's; any other is starts.bots_start
    ("POST", "/start", phone.start),  # Pipecat Cloud's; its "daily" transport is starts.pipecat_start
    ("POST", "/dialin", dialin),
    ("POST", "/telephony/twilio", phone.twilio_webhook),
    ("GET", "/ws/{profile}", phone.phone_socket),
    ("GET", "/ws/{profile}/{token}", phone.phone_socket),
    ("GET", "/sessions", list_sessions),
    ("GET", "/sessions/{id}", get_session),
    ("DELETE", "/sessions/{id}", delete_session),
    ("POST", "/sessions/{id}/app-message", app_message),
    ("GET", "/sessions/{id}/stream", stream),
    ("GET", "/sessions/{id}/logs", session_logs),
    ("POST", "/sessions/{id}/api/offer", webrtc.offer),  # a WebRTC session's browser: its SDP offer
    ("PATCH", "/sessions/{id}/api/offer", webrtc.candidates),  # ... and its trickled ICE candidates
    ("GET", "/client", client_page.client_redirect),  # Pipecat's prebuilt SmallWebRTC page
    ("GET", "/client/", client_page.client_index),
    ("GET", "/client/{path:.+}", client_page.client_asset),
    ("GET", "/talk", client_page.talk_page),  # callfleet's own page for it, offline
    ("GET", "/talk/{asset}", client_page.talk_asset),
    ("GET", "/healthz", healthz),
    ("GET", "/readyz", readyz),
    ("GET", "/livez", livez),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi),
    ("GET", "/dashboard", dashboard.page),
    ("GET", "/dashboard/{asset}", dashboard.asset),
    ("GET", "/workers", dashboard.workers),
    *((method, daily_proxy.PREFIX + "/{tail:.*}", daily_proxy.daily_proxy) for method in ("GET", "POST", "DELETE")),
]


# What answers without the bearer key (middlewares.bearer_auth).
# A phone's WebSocket checks its one-time token; Twilio's webhook needs the bearer key unless
# [telephony] auth_token_env makes it check Twilio's signature instead.
# The dashboard's page and assets hold no data: the data routes it calls ask for the key.
OPEN_HANDLERS = {healthz, readyz, livez, metrics, openapi, stream, daily_proxy.daily_proxy, phone.phone_socket,
                 dashboard.page, dashboard.asset,
                 # A WebRTC session's id is its capability (Pipecat Cloud's public session routes);
                 # Pipecat's prebuilt page holds no data and no key.
                 webrtc.offer, webrtc.candidates, client_page.client_redirect, client_page.client_index,
                 client_page.client_asset, client_page.talk_page, client_page.talk_asset}


def setup_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app[middlewares.OPEN_HANDLERS] = set(OPEN_HANDLERS)
    daily_proxy.setup(app)
