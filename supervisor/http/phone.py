"""Phone calls over WebSockets: the views that start them and the socket that carries them.

- ``POST /start`` with ``"transport": "websocket"`` (Pipecat Cloud's shape; any other
  transport goes on to ``supervisor.http.starts``): a session of ``profile`` answers
  ``{"wsUrl", "sessionId"}``, the URL good for one call for ``ws_url_ttl_s``. Its ``body``
  (the bot's ``runner_args.body``) is at most 4 KB, as Pipecat Cloud allows for WebSocket
  sessions (413 beyond).
- ``POST /telephony/twilio``: Twilio's voice webhook (form-encoded). A session of
  ``[telephony] twilio_profile`` answers TwiML that connects the call's Media Stream to it:
  ``<Connect><Stream url="{public_url}/ws/{profile}/{token}">`` with the caller's numbers
  as ``<Parameter>``s (Pipecat reads them as ``call_data``). No worker free, or draining:
  ``<Reject reason="busy"/>``, and the caller hears busy.
- ``WS /ws/{profile}/{token}`` (or ``?token=``): the provider's stream. Refused before the
  upgrade: a browser ``Origin`` not in ``[telephony] allowed_origins`` (403), a missing or
  wrong token (401), a URL already used, expired, or whose session has ended (410). Then
  ``supervisor.sessions.phone`` holds the socket for the call's life.

Only a bot the worker hosts (``kind = "pipecat"``) can take a phone call: 422 otherwise.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import quoteattr

import msgspec
from aiohttp import web

from supervisor.bots import BOT_KINDS
from supervisor.bots.services import runs_pipeline
from supervisor.daemon_state import DaemonState
from supervisor.http import forward, starts, webrtc
from supervisor.http.bodies import PipecatStartBody, decode_body
from supervisor.http.errors import ApiError, invalid
from supervisor.http.keys import DAEMON, HttpDaemon
from supervisor.pool import PoolFull
from supervisor.sessions.phone import ClaimRefused, Handshake
from supervisor.sessions.requests import PhoneStart, PhoneVia, Prepared, RequestSecrets

WEBSOCKET = "websocket"
MAX_WEBSOCKET_BODY = 4096  # Pipecat Cloud's limit on a WebSocket session's body
HEARTBEAT_S = 20.0
# What the bot is not shown of the provider's upgrade request: credentials.
HIDDEN_HEADERS = frozenset({"authorization", "cookie", "x-twilio-signature", "sec-websocket-key"})
BUSY_TWIML = '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Reject reason="busy"/></Response>'


def _hosted_profile(daemon: HttpDaemon, name: str, where: str = "") -> Any:
    profile = starts._profile(daemon, name)
    bot_cls = BOT_KINDS.get(profile.kind)
    if bot_cls is None or not bot_cls.hosted:
        raise ApiError(422, "invalid-request-error", f"{where}profile {name} runs a {profile.kind} bot: only "
                                                     f"kind = \"pipecat\" bots take phone calls over WebSockets")
    return profile


def public_base(daemon: HttpDaemon, request: web.Request) -> str:
    """The ws(s):// base the provider reaches: ``[telephony] public_url``, else this server
    as the request reached it."""
    configured = daemon.config.telephony.public_url
    return configured.rstrip("/") if configured else f"ws://{request.host}"


def ws_url(daemon: HttpDaemon, request: web.Request, profile: str, prepared: Prepared) -> str:
    """The session's one-time WebSocket URL, its token in the path (Twilio's ``<Stream url>``
    takes no query string)."""
    return f"{public_base(daemon, request)}/ws/{profile}/{prepared.ws_token}"


def _phone_start(daemon: HttpDaemon, profile: Any, via: PhoneVia, **fields: Any) -> PhoneStart:
    return PhoneStart(profile=profile.name, kind=profile.kind, profile_config=dict(profile.config),
                      max_duration_s=starts._max_duration(daemon, None, profile),
                      end_on_last_leave=profile.end_on_last_leave, via=via, **fields)


# -- POST /start, transport "websocket" --------------------------------------------------------------


async def start(request: web.Request) -> web.StreamResponse:
    """``POST /start``: a ``"transport": "websocket"`` start here, ``"webrtc"`` in ``webrtc``,
    any other in ``starts``."""
    raw = await request.read()
    try:
        peek = json.loads(raw or b"{}")
    except ValueError:
        peek = None
    if isinstance(peek, dict) and peek.get("transport") == webrtc.WEBRTC:
        return await webrtc.start(request, raw)
    if not isinstance(peek, dict) or peek.get("transport") != WEBSOCKET:
        return await starts.pipecat_start(request)
    daemon = request.app[DAEMON]
    body = decode_body(raw, PipecatStartBody)
    if len(msgspec.json.encode(body.body)) > MAX_WEBSOCKET_BODY:
        raise ApiError(413, "invalid-request-error", f"body: larger than {MAX_WEBSOCKET_BODY // 1024} KB, the limit "
                                                     f"for a WebSocket session")
    profile = _hosted_profile(daemon, body.profile)
    runner, keys, own = body.body, dict[str, str](), dict[str, str]()
    if runs_pipeline(profile.kind, profile.config):
        runner, keys, own = starts._pipeline_start_body(daemon, profile, body.body)
    phone = _phone_start(daemon, profile, PhoneVia.START)
    phone.holding(RequestSecrets(body=runner, api_keys=own, provider_keys=keys))
    return await starts.start_reply(request, phone, lambda p: {"wsUrl": ws_url(daemon, request, profile.name, p),
                                                               "sessionId": p.session_id})


# -- POST /telephony/twilio ----------------------------------------------------------------------------


def twiml(url: str, parameters: dict[str, str]) -> str:
    """TwiML that connects the call's Media Stream to ``url``, ``parameters`` its customParameters."""
    params = "".join(f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items() if v)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Connect><Stream url={quoteattr(url)}>{params}'
            f"</Stream></Connect></Response>")


def _xml(text: str) -> web.Response:
    return web.Response(text=text, content_type="application/xml")


async def twilio_webhook(request: web.Request) -> web.StreamResponse:
    """Twilio's voice webhook for an inbound call: TwiML for a new session of
    ``[telephony] twilio_profile``, or busy when there is no worker for it."""
    daemon = request.app[DAEMON]
    name = daemon.config.telephony.twilio_profile
    if not name:
        raise ApiError(422, "invalid-request-error", "no [telephony] twilio_profile is configured")
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    call_sid = fields.get("CallSid", "")
    if not call_sid:
        raise invalid("CallSid: missing (not Twilio's voice webhook)")
    profile = _hosted_profile(daemon, name, "[telephony] twilio_profile: ")
    if daemon.state is not DaemonState.RUNNING:
        return _xml(BUSY_TWIML)  # a draining node takes no call: the caller hears busy, Twilio may retry elsewhere
    keys: dict[str, str] = {}
    if runs_pipeline(profile.kind, profile.config):  # a built-in pipeline answers with its defaults, the operator's keys
        keys = starts._provider_keys(daemon, profile, {}, [], {}, "[telephony] twilio_profile: ")
    phone = _phone_start(daemon, profile, PhoneVia.TWILIO, provider="twilio", call_id=call_sid,
                         from_number=fields.get("From", ""), to_number=fields.get("To", ""))
    phone.holding(RequestSecrets(body=fields, provider_keys=keys))
    try:
        prepared = await starts.start_session(daemon, phone)
    except PoolFull as exc:
        try:
            return await forward.hand_off_start(daemon, request, f"no worker free: {exc}")
        except ApiError as full:
            if full.status_code != 429:
                raise
            return _xml(BUSY_TWIML)
    except ApiError as exc:
        if exc.status_code == 503:
            return _xml(BUSY_TWIML)
        raise
    return _xml(twiml(ws_url(daemon, request, profile.name, prepared),
                      {"from_number": phone.from_number, "to_number": phone.to_number, "session_id": prepared.session_id}))


# -- WS /ws/{profile}/{token} ------------------------------------------------------------------------


def _token(request: web.Request) -> str:
    token = request.match_info.get("token") or request.query.get("token", "")
    if not token:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else ""
    return token


def _handshake(request: web.Request, profile: str) -> Handshake:
    query = urlencode([(k, v) for k, v in request.query.items() if k != "token"])
    headers = [(k.lower(), v) for k, v in request.headers.items() if k.lower() not in HIDDEN_HEADERS]
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
    return f"/ws/{profile}", query, headers, client


async def phone_socket(request: web.Request) -> web.StreamResponse:
    """The provider's Media Stream for a session started with a one-time URL."""
    daemon = request.app[DAEMON]
    tel = daemon.config.telephony
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in {o.lower() for o in tel.allowed_origins}:
        raise ApiError(403, "forbidden-error", f"Origin {origin} is not allowed: phone providers send none "
                                               f"(telephony.allowed_origins lists the ones taken)")
    profile = request.match_info["profile"]
    session_id, _, secret = _token(request).partition(".")
    if not session_id or not secret:
        raise ApiError(401, "authentication-error", "missing or invalid WebSocket token: use the URL its start "
                                                    "answered")
    owner = await forward.remote_owner(daemon, request, session_id)
    if owner is not None:
        return await forward.relay_stream(daemon, request, owner)
    session = daemon.registry.get(session_id)
    line = session.phone if session is not None else None
    if line is None:
        if session is None and daemon.registry.describe(session_id) is not None:
            raise ApiError(410, "invalid-request-error", f"session {session_id} has ended: its WebSocket URL is "
                                                         f"no longer good")
        raise ApiError(401, "authentication-error", "invalid WebSocket token")
    try:
        line.claim(secret, profile)
    except ClaimRefused as exc:
        raise ApiError(exc.status, "authentication-error" if exc.status == 401 else "invalid-request-error",
                       str(exc)) from None
    ws = web.WebSocketResponse(max_msg_size=tel.max_message_bytes, heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    await line.serve(ws, _handshake(request, profile))
    return ws
