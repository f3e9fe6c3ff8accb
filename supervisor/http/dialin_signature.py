"""Daily's pinless dial-in webhook signature, checked before the bearer key.

With ``[dialin] hmac_secret_env`` naming the variable that holds the secret given to Daily
(the ``hmac`` of the domain's pinless dial-in config, base64), every request to the dial-in
webhook must carry Daily's signature (``reference/daily.md``): ``X-Pinless-Timestamp``
(Unix seconds) and ``X-Pinless-Signature`` = base64(HMAC-SHA256(key = the decoded secret,
message = f"{timestamp}.{raw body}")). A signed webhook needs no bearer key, which Daily
cannot send; a missing, malformed, wrong, stale or replayed signature is a 401 and starts
nothing. The webhook's ``{"test": ...}`` ping is signed like any other call.

Replays are refused: a node remembers each signature it accepted until its timestamp goes
stale, and in a cluster the first node to claim a signature in Redis takes the webhook, so a
replay handed to another node is refused too (while Redis is away, per node only).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import re
import time
from collections.abc import Callable, Mapping

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from supervisor.config import DialinSection
from supervisor.http.errors import ApiError
from supervisor.http.keys import HttpDaemon
from supervisor.http.middlewares import AUTHENTICATED, Handler

log = structlog.get_logger("supervisor.http.dialin")

TIMESTAMP = "X-Pinless-Timestamp"
SIGNATURE = "X-Pinless-Signature"
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")  # int() would also take " 12", "+12" and "1_2"
_DIGEST_SIZE = hashlib.sha256().digest_size


class SignatureError(Exception):
    """A webhook whose signature is refused; the message says why (the 401's info)."""


def secret_from(section: DialinSection, environ: Mapping[str, str]) -> bytes | None:
    """The decoded HMAC secret ``section.hmac_secret_env`` names, or None when verification
    is off. Raises ``ValueError`` naming ``dialin.hmac_secret_env`` when the variable is not
    set or is not base64."""
    name = section.hmac_secret_env
    if not name:
        return None
    text = environ.get(name, "").strip()  # a Secret's value often ends in a newline
    if not text:
        raise ValueError(f"dialin.hmac_secret_env: ${name} is not set")
    try:
        secret = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"dialin.hmac_secret_env: ${name} is not base64 (Daily's pinless `hmac` is)") from None
    if not secret:
        raise ValueError(f"dialin.hmac_secret_env: ${name} decodes to nothing")
    return secret


class Verifier:
    """Checks Daily's pinless signature on a webhook's raw body and refuses replays."""

    def __init__(self, secret: bytes, max_skew_s: float, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.max_skew_s = max_skew_s
        self._clock = clock  # Unix seconds: Daily's timestamps are wall-clock
        self._seen: set[bytes] = set()
        self._forget: list[tuple[float, bytes]] = []  # (when the timestamp goes stale, digest), a heap

    def verify(self, timestamp: str | None, signature: str | None, body: bytes) -> bytes:
        """Accept the webhook once; returns its signature (the digest). Raises
        ``SignatureError`` when a header is missing or malformed, the signature does not
        match, the timestamp is more than ``max_skew_s`` from now (either way), or this
        signature was already accepted."""
        if not timestamp or not signature:
            missing = " and ".join(h for h, v in ((TIMESTAMP, timestamp), (SIGNATURE, signature)) if not v)
            raise SignatureError(f"{missing} missing: this webhook takes only calls signed with Daily's pinless "
                                 f"HMAC secret")
        if not _UNIX_SECONDS.fullmatch(timestamp):
            raise SignatureError(f"{TIMESTAMP} is not Unix seconds")
        try:
            digest = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(f"{SIGNATURE} is not base64") from None
        if len(digest) != _DIGEST_SIZE:
            raise SignatureError(f"{SIGNATURE} is not an HMAC-SHA256 ({len(digest)} bytes, not {_DIGEST_SIZE})")
        expected = hmac.new(self._secret, timestamp.encode() + b"." + body, hashlib.sha256).digest()
        if not hmac.compare_digest(digest, expected):
            raise SignatureError(f"{SIGNATURE} does not match the body and timestamp")
        now = self._clock()
        skew = now - int(timestamp)
        if abs(skew) > self.max_skew_s:
            when = "old" if skew > 0 else "ahead of this server's clock"
            raise SignatureError(f"{TIMESTAMP} is {abs(skew):.0f} s {when} (dialin.max_skew_s is "
                                 f"{self.max_skew_s:g})")
        self._forget_stale(now)
        if expected in self._seen:
            raise SignatureError(f"{SIGNATURE} was already used: a webhook is taken once")
        self._seen.add(expected)
        heapq.heappush(self._forget, (int(timestamp) + self.max_skew_s, expected))
        return expected

    def _forget_stale(self, now: float) -> None:
        # A signature whose timestamp is stale is refused as stale: no need to remember it.
        while self._forget and self._forget[0][0] < now:
            self._seen.discard(heapq.heappop(self._forget)[1])

    @property
    def remembered(self) -> int:
        """How many accepted signatures are still remembered against replays."""
        return len(self._seen)


def verify_webhook(daemon: HttpDaemon, webhook: Handler) -> Middleware:
    """The middleware that checks Daily's signature on requests routed to ``webhook`` (the
    ``/dialin`` view) when ``[dialin] hmac_secret_env`` is set, and marks them authenticated
    so the bearer check after it lets them through. A request another check already
    authenticated (a node of the same cluster handing over a start) is left alone.

    Raises ``ValueError`` naming the config key when the secret is not usable (the daemon
    checks that at start-up, before this is built)."""
    section = daemon.config.dialin
    secret = secret_from(section, daemon.environ) if section.hmac_secret_env else None
    verifier = None if secret is None else Verifier(secret, section.max_skew_s)

    @web.middleware
    async def dialin_signature(request: web.Request, handler: Handler) -> web.StreamResponse:
        if verifier is None or request.match_info.handler is not webhook or request.get(AUTHENTICATED):
            return await handler(request)
        body = await request.read()  # aiohttp keeps it: the view reads the same bytes
        try:
            digest = verifier.verify(request.headers.get(TIMESTAMP), request.headers.get(SIGNATURE), body)
            # In a cluster, the load balancer may hand a replay to another node: the first
            # node to claim the signature takes the call (while Redis is away, each node's own
            # memory is all there is).
            if daemon.cluster is not None and not await daemon.cluster.claim_once(
                    "cf:dialin-signature:" + digest.hex(), 2 * section.max_skew_s):
                raise SignatureError(f"{SIGNATURE} was already used on another node: a webhook is taken once")
        except SignatureError as exc:
            log.warning("dial-in webhook refused", reason=str(exc), peer=request.remote)
            raise ApiError(401, "authentication-error", str(exc)) from None
        request[AUTHENTICATED] = True
        return await handler(request)

    return dialin_signature
