"""Browsers talking to bots over Pipecat's SmallWebRTC: the start and the signalling relay.

The flow is Pipecat Cloud's and its development runner's (``pipecat.runner.run``), so
Pipecat's own clients (``/client``, ``@pipecat-ai/small-webrtc-transport``) work unchanged:

- ``POST /start`` with ``"transport": "webrtc"`` (bearer key as for any start): a session
  of ``profile`` (else ``[webrtc] default_profile``, else the ``profile`` query parameter of
  the ``/client`` page that sent it) answers ``{"sessionId", "iceConfig"}``. No Daily room
  is made. ``iceConfig.iceServers`` is ``[webrtc] ice_servers``, none by default: host
  candidates only, which works offline; a client's ``enableDefaultIceServers`` (a public
  STUN server) is not honoured, since callfleet reaches nothing outside.
- ``POST /sessions/{id}/api/offer`` ``{"sdp", "type": "offer", "pc_id"?, "restart_pc"?}``:
  the first offer is the session's join, answered by the worker's aiortc peer
  ``{"sdp", "type": "answer", "pc_id"}``; a later one renegotiates that peer (it must name
  its ``pc_id``). ``PATCH`` there ``{"pc_id", "candidates": [{"candidate", "sdp_mid",
  "sdp_mline_index"}]}``: trickled ICE candidates.

A ``kind = "pipecat"`` profile's bot gets ``SmallWebRTCRunnerArguments``; a built-in Daily
Bots pipeline's body is checked as ``/bots/start`` checks it, with no room to transcribe
(``"stt": "daily"`` is a 422), and the vision and phone pipelines are refused (422).

The offer routes need no bearer key: the session id, a random UUID only its starter was
told, is the capability, as on Pipecat Cloud's public session routes. An unknown id is a
404; a session that is not a WebRTC one, or has finished, a 409.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
from aiohttp import web

from protocol.messages import IceCandidate
from supervisor.bots import BOT_KINDS
from supervisor.bots.services import PIPELINE_BOT_PREFIX, runs_phone_pipeline, runs_pipeline
from supervisor.http import forward, starts
from supervisor.http.bodies import decode_body, read_body
from supervisor.http.errors import ApiError, invalid, not_found
from supervisor.http.keys import DAEMON, HttpDaemon
from supervisor.sessions.actor import SessionGone
from supervisor.sessions.requests import RequestSecrets, WebRTCStart
from supervisor.sessions.session import Session
from supervisor.sessions.webrtc import SignalRefused

WEBRTC = "webrtc"
VISION_PIPELINE = PIPELINE_BOT_PREFIX + "vision:"
CLIENT_PATH = "/client/"  # the prebuilt page (supervisor.http.client_page)


class WebRTCStartBody(msgspec.Struct, forbid_unknown_fields=True):
    """``/start``'s body for a WebRTC session: Pipecat's development runner's, plus ``profile``."""

    transport: str
    body: Any = None
    profile: str | None = None
    createDailyRoom: bool = False  # what Pipecat's prebuilt client sends; a Daily room makes no sense here
    enableDefaultIceServers: bool = False  # Pipecat's clients ask for a public STUN server; offline, none


class OfferBody(msgspec.Struct):
    """An SDP offer as Pipecat's clients POST it (their other fields, ``request_data``, are
    ignored: the bot's body is the one its ``/start`` gave)."""

    sdp: str
    type: str
    pc_id: str | None = None
    restart_pc: bool | None = None


class CandidatesBody(msgspec.Struct):
    """Trickled ICE candidates as Pipecat's clients PATCH them."""

    pc_id: str
    candidates: list[IceCandidate]


# -- POST /start, transport "webrtc" -----------------------------------------------------------------


def _profile_name(daemon: HttpDaemon, request: web.Request, body: WebRTCStartBody) -> str:
    if body.profile:
        return body.profile
    # Pipecat's prebuilt page POSTs /start with no profile: the page's own ?profile= names it
    # (its Referer, sent by the browser on a same-origin fetch). Choosing a profile is no
    # privilege -- any start may name one -- so a forged Referer gains nothing.
    referer = urlsplit(request.headers.get("Referer", ""))
    if referer.netloc == request.host and referer.path.rstrip("/") == CLIENT_PATH.rstrip("/"):
        chosen = parse_qs(referer.query).get("profile")
        if chosen and chosen[0]:
            return chosen[0]
    if daemon.config.webrtc.default_profile:
        return daemon.config.webrtc.default_profile
    raise ApiError(422, "invalid-request-error", "profile: missing, and no [webrtc] default_profile is configured "
                                                 "(the /client page takes ?profile=NAME)")


def _webrtc_profile(daemon: HttpDaemon, name: str) -> Any:
    profile = starts._profile(daemon, name)
    bot_cls = BOT_KINDS.get(profile.kind)
    if bot_cls is None or not bot_cls.hosted:
        raise ApiError(422, "invalid-request-error", f"profile {name} runs a {profile.kind} bot: only kind = "
                                                     f"\"pipecat\" bots take WebRTC sessions (the worker hosts "
                                                     f"the browser's peer)")
    spec = str(profile.config.get("bot", ""))
    if runs_phone_pipeline(profile.kind, profile.config):
        raise ApiError(422, "invalid-request-error", f"profile {name} runs a phone call's pipeline: it takes "
                                                     f"calls over WebSockets, not WebRTC")
    if spec.startswith(VISION_PIPELINE):
        raise ApiError(422, "invalid-request-error", f"profile {name} runs a vision pipeline, which reads a Daily "
                                                     f"room's camera: not over WebRTC")
    return profile


def _no_room_services(name: str, runner: Any) -> None:
    """A Daily Bots pipeline over WebRTC has no room: no room transcription for its STT."""
    services = runner.get("services", {}) if isinstance(runner, dict) else {}
    if services.get("stt") == "daily":
        raise ApiError(422, "invalid-request-error", f"body.services.stt: \"daily\" transcribes a Daily room; "
                                                     f"profile {name} talks to a browser over WebRTC (name an STT "
                                                     f"service, e.g. deepgram)")


async def start(request: web.Request, raw: bytes) -> web.Response:
    """``POST /start`` with ``"transport": "webrtc"``: a session waiting for its browser's offer."""
    daemon = request.app[DAEMON]
    body = decode_body(raw, WebRTCStartBody)
    if body.createDailyRoom:
        raise invalid("createDailyRoom: a WebRTC session has no Daily room; it must be false or absent")
    profile = _webrtc_profile(daemon, _profile_name(daemon, request, body))
    runner, keys, own = body.body, dict[str, str](), dict[str, str]()
    if runs_pipeline(profile.kind, profile.config):  # a built-in Daily Bots pipeline, checked as /bots/start checks it
        runner, keys, own = starts._pipeline_start_body(daemon, profile, body.body)
        _no_room_services(profile.name, runner)
    start = WebRTCStart(profile=profile.name, kind=profile.kind, profile_config=dict(profile.config),
                        max_duration_s=starts._max_duration(daemon, None, profile),
                        end_on_last_leave=profile.end_on_last_leave)
    start.holding(RequestSecrets(body=runner, api_keys=own, provider_keys=keys))
    ice = [{k: v for k, v in s.items() if v is not None}
           for s in msgspec.to_builtins(daemon.config.webrtc.ice_servers)]
    return await starts.start_reply(request, start, lambda p: {"sessionId": p.session_id,
                                                               "iceConfig": {"iceServers": ice}})


# -- /sessions/{id}/api/offer ------------------------------------------------------------------------


async def _session(request: web.Request) -> tuple[Session | None, web.Response | None]:
    """This node's session of the route's id, or the reply of the node that owns it."""
    daemon = request.app[DAEMON]
    session_id = request.match_info["id"]
    owner = await forward.remote_owner(daemon, request, session_id)
    if owner is not None:
        return None, await forward.relay(daemon, request, owner)
    session = daemon.registry.get(session_id)
    if session is None:
        if daemon.registry.describe(session_id) is None and \
                await forward.directory_view(daemon, request, session_id) is None:
            raise not_found(f"session {session_id} not found")
        raise ApiError(409, "invalid-request-error", f"session {session_id} has finished")
    if session.webrtc is None:
        raise ApiError(409, "invalid-request-error", f"session {session_id} is not a WebRTC session (it was not "
                                                     f"started with transport \"webrtc\"): it takes no offer")
    return session, None


async def offer(request: web.Request) -> web.Response:
    """``POST /sessions/{id}/api/offer``: the browser's SDP offer, answered by the worker."""
    session, relayed = await _session(request)
    if relayed is not None:
        return relayed
    assert session is not None and session.webrtc is not None
    given = await read_body(request, OfferBody)
    if given.type != "offer":
        raise invalid(f"type: expected \"offer\", got {given.type!r}")
    if not given.sdp.lstrip().startswith("v=0"):
        raise invalid("sdp: not a session description (it starts with v=0)")
    if "\nm=" not in given.sdp:
        raise invalid("sdp: offers no media (no m= line)")
    try:
        answer = await session.webrtc.offer(given.sdp, given.type, given.pc_id, bool(given.restart_pc))
    except SignalRefused as exc:
        raise _refused(exc) from None
    except SessionGone as exc:
        raise ApiError(409, "invalid-request-error", f"session {session.id} has finished: {exc}") from None
    return web.json_response(answer)


async def candidates(request: web.Request) -> web.Response:
    """``PATCH /sessions/{id}/api/offer``: the browser's trickled ICE candidates."""
    session, relayed = await _session(request)
    if relayed is not None:
        return relayed
    assert session is not None and session.webrtc is not None
    given = await read_body(request, CandidatesBody)
    try:
        await session.webrtc.candidates(given.pc_id, given.candidates)
    except SignalRefused as exc:
        raise _refused(exc) from None
    return web.json_response({"status": "success"})


def _refused(exc: SignalRefused) -> ApiError:
    if exc.status == 404:
        return not_found(str(exc))
    return ApiError(exc.status, "invalid-request-error" if exc.status < 500 else "server-error", str(exc))
