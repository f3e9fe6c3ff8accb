"""``/daily/v1/…``: Daily's REST API as a hosted bot sees it, so that bots never hold the
account's key.

Each session has its own key (``Session.daily_key``); its worker gets it as
``DAILY_API_KEY`` with ``DAILY_API_URL`` pointing here, and a dial-in bot gets the same
pair in its ``DailyDialinRequest`` body. A request with that key is forwarded to Daily
(or the sandbox) with the real key, through the supervisor's REST client -- so under the
same rate limits and retries -- and only when it concerns the session's own room or call:

* ``GET rooms/ROOM``, ``GET rooms/ROOM/presence``, ``POST rooms/ROOM/send-app-message``,
  ``POST rooms/ROOM/eject``;
* ``POST meeting-tokens`` whose ``properties.room_name`` is ROOM;
* ``POST dialin/pinlessCallUpdate`` whose ``callId`` is the session's call: made once
  per call, whoever asks first (the bot, or the supervisor on ``dialin-ready``); a second
  ask gets the first one's answer.

Anything else is 403 ``forbidden-error``; a missing or unknown key is 401.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from supervisor.daily_rest import DailyAPIError
from supervisor.http.errors import ApiError
from supervisor.http.keys import DAEMON
from supervisor.session_request import SessionGone

PREFIX = "/daily/v1"
ROOM_READS = ("", "/presence")
ROOM_WRITES = ("/send-app-message", "/eject")


def _forbidden(what: str) -> ApiError:
    return ApiError(403, "forbidden-error", f"{what}: a bot's key reaches only its own session's room and call")


async def daily_proxy(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    session = daemon.registry.by_daily_key(key.strip()) if scheme.lower() == "bearer" else None
    if session is None:
        raise ApiError(401, "authentication-error", "missing or unknown session key")
    path = "/" + request.match_info["tail"].strip("/")
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw) if raw else None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise ApiError(400, "json-parsing-error", "body is not valid JSON") from None
    method = request.method
    room = session.room.name
    try:
        if method == "POST" and path == "/dialin/pinlessCallUpdate":
            return web.json_response(await _pinless_call_update(session, body))
        if room and method == "GET" and path in (f"/rooms/{room}{tail}" for tail in ROOM_READS):
            return web.json_response(await daemon.rest.request("GET", path, params=dict(request.query)))
        if room and method == "POST" and path in (f"/rooms/{room}{tail}" for tail in ROOM_WRITES):
            return web.json_response(await daemon.rest.request("POST", path, json=body))
        if method == "POST" and path == "/meeting-tokens":
            props = (body or {}).get("properties") if isinstance(body, dict) else None
            if not isinstance(props, dict) or props.get("room_name") != room:
                raise _forbidden("a token for another room")
            return web.json_response(await daemon.rest.request("POST", path, json=body, idempotent=True))
    except DailyAPIError as exc:
        if exc.status == 0:
            raise ApiError(504 if exc.timed_out else 502, "server-error", f"Daily did not answer: {exc.info}") from None
        raise ApiError(exc.status, exc.error, exc.info) from None
    raise _forbidden(f"{method} {path}")


async def _pinless_call_update(session: Any, body: Any) -> Any:
    settings = session.request.extra.get("dialin_settings") or {}
    if not isinstance(body, dict) or not settings or body.get("callId") != settings.get("call_id"):
        raise _forbidden("pinlessCallUpdate for another call")
    sip_uri = body.get("sipUri")
    if not isinstance(sip_uri, str) or not sip_uri:
        raise ApiError(400, "invalid-request-error", "sipUri: expected a SIP URI")
    try:
        forwarded = await session.ask(lambda: session.forward_dialin(sip_uri))  # the one call's future, not its answer
    except SessionGone:
        raise ApiError(401, "authentication-error", "the session has ended; its key is void") from None
    return await asyncio.shield(forwarded)  # shared with the supervisor: a bot that hangs up must not cancel it
