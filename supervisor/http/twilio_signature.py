"""Twilio's request signature on the voice webhook, checked before the bearer key.

With ``[telephony] auth_token_env`` naming the variable that holds the account's auth
token, every request to ``POST /telephony/twilio`` must carry ``X-Twilio-Signature`` =
base64(HMAC-SHA1(key = the auth token, message = the URL Twilio requested + every form
parameter's name and value, sorted by name)). A signed webhook needs no bearer key, which
Twilio cannot send; a missing or wrong signature is a 401 and starts nothing.

The URL is the one Twilio was given (``[telephony] webhook_url``; by default
``public_url``'s host over https, or the request's own URL without one), since behind a
TLS-terminating proxy the request this server sees is not the one Twilio signed. Twilio's
signature carries no time, so a replay is refused by its call: each ``CallSid`` starts one
session per node (in a cluster, the first node to claim it in Redis takes the call).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from supervisor.config import TelephonySection
from supervisor.http.errors import ApiError
from supervisor.http.keys import HttpDaemon
from supervisor.http.middlewares import AUTHENTICATED, Handler

log = structlog.get_logger("supervisor.http.twilio")

SIGNATURE = "X-Twilio-Signature"
WEBHOOK_PATH = "/telephony/twilio"
CALLS_REMEMBERED = 10_000
CALL_MEMORY_S = 4 * 3600  # a call's webhook is not replayed later than that: Twilio's calls are shorter


def auth_token_from(section: TelephonySection, environ: Mapping[str, str]) -> str | None:
    """The auth token ``section.auth_token_env`` names, or None when signatures are not
    checked. Raises ``ValueError`` naming ``telephony.auth_token_env`` when it is not set."""
    name = section.auth_token_env
    if not name:
        return None
    token = environ.get(name, "").strip()  # a Secret's value often ends in a newline
    if not token:
        raise ValueError(f"telephony.auth_token_env: ${name} is not set")
    return token


def sign(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's signature of a request to ``url`` with form ``params``."""
    payload = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def signed_url(section: TelephonySection, request: web.Request) -> str:
    """The URL Twilio signed for this request: ``webhook_url``, else ``public_url``'s host
    with the matching http scheme, else the request's own; its query string kept."""
    base = section.webhook_url
    if not base and section.public_url:
        parts = urlsplit(section.public_url)
        base = f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}{parts.path.rstrip('/')}{WEBHOOK_PATH}"
    if not base:
        return str(request.url)
    return f"{base}?{request.query_string}" if request.query_string and "?" not in base else base


class CallMemory:
    """The calls whose webhook was taken, so that a replayed one is refused."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first(self, call_sid: str, now: float | None = None) -> bool:
        """Whether this is the first webhook of ``call_sid`` (remembered from now on)."""
        now = time.monotonic() if now is None else now
        while self._seen and (len(self._seen) >= CALLS_REMEMBERED or next(iter(self._seen.values())) < now):
            self._seen.popitem(last=False)
        if call_sid in self._seen:
            return False
        self._seen[call_sid] = now + CALL_MEMORY_S
        return True


def verify_webhook(daemon: HttpDaemon, webhook: Handler) -> Middleware:
    """The middleware that checks Twilio's signature on requests routed to ``webhook``
    (``POST /telephony/twilio``) when ``[telephony] auth_token_env`` is set, and marks them
    authenticated for the bearer check after it. A request another check authenticated (a
    node of the same cluster handing over a start) is left alone.

    Raises ``ValueError`` naming the config key when the token is not set (the daemon checks
    that at start-up, before this is built)."""
    section = daemon.config.telephony
    auth_token = auth_token_from(section, daemon.environ)
    calls = CallMemory()

    @web.middleware
    async def twilio_signature(request: web.Request, handler: Handler) -> web.StreamResponse:
        if auth_token is None or request.match_info.handler is not webhook or request.get(AUTHENTICATED):
            return await handler(request)
        form = await request.post()  # aiohttp keeps it: the view reads the same form
        params = [(name, value) for name, value in form.items() if isinstance(value, str)]
        given = request.headers.get(SIGNATURE, "")
        expected = sign(auth_token, signed_url(section, request), params)
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            why = f"{SIGNATURE} missing" if not given else f"{SIGNATURE} does not match the URL and form"
            log.warning("Twilio webhook refused", reason=why, peer=request.remote)
            raise ApiError(401, "authentication-error", f"{why}: this webhook takes only requests Twilio signed "
                                                        f"with the account's auth token")
        call_sid = str(form.get("CallSid") or "")
        first = calls.first(call_sid) if call_sid else True
        if first and call_sid and daemon.cluster is not None:
            first = await daemon.cluster.claim_once("cf:twilio-call:" + call_sid, CALL_MEMORY_S)
        if not first:
            raise ApiError(401, "authentication-error", f"call {call_sid}'s webhook was already taken: each call once")
        request[AUTHENTICATED] = True
        return await handler(request)

    return twilio_signature
