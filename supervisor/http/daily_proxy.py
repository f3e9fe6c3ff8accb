"""``/daily/v1/…``: Daily's REST API as a hosted bot sees it, so that bots never hold the
account's key.

Each session has its own key (``Session.daily_key``); its worker gets it as
``DAILY_API_KEY`` with ``DAILY_API_URL`` pointing here, and a dial-in bot gets the same
pair in its ``DailyDialinRequest`` body. A request with that key is forwarded to Daily
(or the sandbox) with the real key, through the supervisor's REST client -- so under the
same rate limits and retries -- and only when it concerns the session's own room or call:

* ``GET rooms/ROOM``, ``GET rooms/ROOM/presence``, ``POST rooms/ROOM/send-app-message``,
  ``POST rooms/ROOM/eject``;
* ``POST meeting-tokens`` whose ``properties.room_name`` is ROOM (see below);
* ``POST dialin/pinlessCallUpdate`` whose ``callId`` is the session's call: made once
  per call, whoever asks first (the bot, or the supervisor on ``dialin-ready``); a second
  ask gets the first one's answer.

Anything else is 403 ``forbidden-error``; a missing or unknown key is 401.

A bot is someone else's code, so the proxy also keeps it from spending what belongs to
the account (Daily's rate limit is per account) or outliving its session:

* **Its own quota.** Each session has a token bucket of ``[daily]
  proxy_requests_per_second`` with bursts of ``BURST`` requests (or one second's worth,
  if that is more): enough for a bot's start-up look at its room and a token or two.
  Every request the session's key makes spends one, whatever it is answered. An empty
  bucket answers 429 ``rate-limit-error`` with ``Retry-After`` at once, before the
  request reaches the account's limiter (the REST client's buckets, shared by every node
  in a cluster), so a bot looping on ``presence`` cannot delay another session's room.
  The bucket goes when the session ends.
* **Tokens end with the session.** A token's ``properties.exp`` is capped at the
  session's deadline (``Session.ends_by``: when its max-duration timer ends it, or before
  the bot has joined the latest that can be): an absent or later ``exp`` becomes the
  deadline, one that is not a number is 400. Owner powers are refused with 403 naming
  the property: ``is_owner`` other than false, and ``permissions.canAdmin`` (a subset of
  an owner's powers). Without these a bot could hand out a token that lets anyone run a
  room the caller gave us long after the session.
* **Rooms end with the session.** Nothing here changes a room: ``POST rooms/ROOM``
  (which could move its ``exp`` or turn off ``eject_at_room_exp``) and ``DELETE`` are
  refused, so the room keeps the expiry the session gave it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from aiohttp import web

from callfleet.ratelimit import TokenBucket
from supervisor.daily_rest import DailyAPIError
from supervisor.http.errors import ApiError
from supervisor.http.keys import DAEMON
from supervisor.sessions.actor import SessionGone

log = structlog.get_logger("supervisor.daily_proxy")

PREFIX = "/daily/v1"
ROOM_READS = ("", "/presence")
ROOM_WRITES = ("/send-app-message", "/eject")
BURST = 5  # requests a session may make at once before its rate applies


class SessionQuotas:
    """Every live session's own bucket of proxy requests, made on its first request and
    dropped when its actor ends. Raises ValueError for a rate that is not positive."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.burst = max(float(BURST), rate)
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._refused: set[str] = set()  # sessions already logged as over their quota

    def __len__(self) -> int:
        return len(self._buckets)

    def refusal(self, session: Any) -> float | None:
        """Spend one of ``session``'s requests and return None; or, when it has none left,
        spend nothing and return the seconds until it will."""
        bucket = self._buckets.get(session.id)
        if bucket is None:
            bucket = self._buckets[session.id] = TokenBucket(self.rate, self.burst, clock=self._clock)
            session.task.add_done_callback(lambda _task: self._drop(session.id))
        if bucket.try_take():
            return None
        if session.id not in self._refused:  # once a session: a looping bot must not flood the log
            self._refused.add(session.id)
            log.warning("a bot is over its Daily proxy quota; its requests get 429", session_id=session.id,
                        requests_per_second=self.rate)
        return bucket.wait_time()

    def _drop(self, session_id: str) -> None:
        self._buckets.pop(session_id, None)
        self._refused.discard(session_id)


QUOTAS = web.AppKey("daily_proxy_quotas", SessionQuotas)


def setup(app: web.Application) -> None:
    """Give ``app`` the sessions' quotas, at ``[daily] proxy_requests_per_second``."""
    app[QUOTAS] = SessionQuotas(app[DAEMON].config.daily.proxy_requests_per_second)


def _forbidden(what: str) -> ApiError:
    return ApiError(403, "forbidden-error", f"{what}: a bot's key reaches only its own session's room and call")


async def daily_proxy(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    session = daemon.registry.by_daily_key(key.strip()) if scheme.lower() == "bearer" else None
    if session is None:
        raise ApiError(401, "authentication-error", "missing or unknown session key")
    quotas = request.app[QUOTAS]
    wait_s = quotas.refusal(session)
    if wait_s is not None:
        raise ApiError(429, "rate-limit-error",
                       f"this session's Daily API quota is spent ({quotas.rate:g} requests a second, "
                       f"bursts of {quotas.burst:g})", headers={"Retry-After": str(max(1, math.ceil(wait_s)))})
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
            body = _token_request(body, room, session.ends_by)
            return web.json_response(await daemon.rest.request("POST", path, json=body, idempotent=True))
    except DailyAPIError as exc:
        if exc.status == 0:
            raise ApiError(504 if exc.timed_out else 502, "server-error", f"Daily did not answer: {exc.info}") from None
        raise ApiError(exc.status, exc.error, exc.info) from None
    raise _forbidden(f"{method} {path}")


def _token_request(body: Any, room: str | None, deadline: float) -> dict[str, Any]:
    """``body`` for ``POST /meeting-tokens`` as it may go to Daily: for ``room`` only,
    never an owner's, expiring by ``deadline`` (Unix seconds). Raises ``ApiError`` (403
    naming what is refused, 400 for an ``exp`` that is not a time)."""
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict) or not room or props.get("room_name") != room:
        raise _forbidden("a token for another room")
    if props.get("is_owner") not in (None, False):
        raise ApiError(403, "forbidden-error", "properties.is_owner: a bot's key cannot mint owner tokens")
    permissions = props.get("permissions")
    if isinstance(permissions, dict) and permissions.get("canAdmin") not in (None, False, []):
        raise ApiError(403, "forbidden-error",
                       "properties.permissions.canAdmin: a bot's key cannot mint tokens with an owner's powers")
    exp = props.get("exp")
    cap = int(deadline)  # rounded down: never a moment past the deadline
    if exp is None:
        exp = cap
    elif isinstance(exp, bool) or not isinstance(exp, int | float):
        raise ApiError(400, "invalid-request-error", "properties.exp: expected a Unix time in seconds")
    else:
        exp = min(exp, cap)
    return {**body, "properties": {**props, "exp": exp}}


async def _pinless_call_update(session: Any, body: Any) -> Any:
    dialin = session.dialin
    if not isinstance(body, dict) or dialin is None or body.get("callId") != dialin.settings.call_id:
        raise _forbidden("pinlessCallUpdate for another call")
    sip_uri = body.get("sipUri")
    if not isinstance(sip_uri, str) or not sip_uri:
        raise ApiError(400, "invalid-request-error", "sipUri: expected a SIP URI")
    try:
        forwarded = await session.ask(lambda: dialin.forward(sip_uri))  # the one call's future, not its answer
    except SessionGone:
        raise ApiError(401, "authentication-error", "the session has ended; its key is void") from None
    return await asyncio.shield(forwarded)  # shared with the supervisor: a bot that hangs up must not cancel it
