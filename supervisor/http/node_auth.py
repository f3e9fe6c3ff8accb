"""Trust between the nodes of a cluster: a forwarded request proves the sender
knows the cluster's shared secret (``[cluster] node_secret_env``).

A node that hands a request to another (``supervisor.http.forward``) signs it: the header
``X-Callfleet-Node-Proof: v1 t=<unix seconds> n=<nonce> s=<hmac>``, where the HMAC-SHA256
with the node secret covers the method, the raw path and query, the time, the nonce, the
sending node (``X-Callfleet-Forwarded``), the receiving node and the body's SHA-256. The
receiving node checks that proof before anything else: a request that says it was
forwarded (either header) with a missing, wrong, stale (more than ``MAX_SKEW_S`` off this
node's clock), replayed or misaddressed proof is a 401 and is not served; a valid one
needs no bearer key (the client's ``Authorization`` stays with the first node). Only a
request that passed here counts as forwarded (``forwarded_by``), so a client cannot send
the header to make a node skip its forwarding.

The proof authenticates; it does not hide anything. Bodies travel as they came (BYO
keys included), so node-to-node traffic belongs on a private network (the Kubernetes
NetworkPolicy in ``deploy/``) or an ``https://`` ``advertise_url``.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping

import structlog
from aiohttp import web

from supervisor.config import ClusterSection
from supervisor.http.errors import ApiError
from supervisor.http.keys import DAEMON, HttpDaemon
from supervisor.http.middlewares import AUTHENTICATED, Handler

log = structlog.get_logger("supervisor.http.node_auth")

FORWARDED = "X-Callfleet-Forwarded"  # the sending node's id
PROOF = "X-Callfleet-Node-Proof"
# Nodes' clocks are NTP-synced; a proof older (or newer) than this is refused, and one
# that is not yet that old is remembered so that it cannot be replayed.
MAX_SKEW_S = 30
MIN_SECRET_CHARS = 16  # `openssl rand -hex 32` gives 64
_PROOF = re.compile(r"v1 t=([0-9]{1,12}) n=([0-9a-f]{32}) s=([0-9a-f]{64})")
_NODE_ID = re.compile(r"[A-Za-z0-9_.-]{1,63}")  # as [cluster] node_id
# Set by the check on a request whose proof it accepted: the sending node's id.
FORWARDED_BY = web.RequestKey("forwarded_by", str)


class ProofError(Exception):
    """A node request whose proof is refused; the message says why (the 401's info)."""


def node_secret(section: ClusterSection, environ: Mapping[str, str]) -> bytes | None:
    """The secret ``section.node_secret_env`` names, or None outside a cluster. Raises
    ``ValueError`` naming ``cluster.node_secret_env`` when it is not set or too short."""
    if not section.redis_url:
        return None
    name = section.node_secret_env
    value = environ.get(name, "").strip() if name else ""  # a Secret's value often ends in a newline
    if not value:
        raise ValueError(f"cluster.node_secret_env: ${name} is not set (every node of the cluster needs the "
                         f"same secret, e.g. `openssl rand -hex 32`)")
    if len(value) < MIN_SECRET_CHARS:
        raise ValueError(f"cluster.node_secret_env: ${name} is shorter than {MIN_SECRET_CHARS} characters")
    return value.encode()


def _message(method: str, target: str, timestamp: str, nonce: str, sender: str, receiver: str, body: bytes) -> bytes:
    # One field a line: none of them can hold a newline (HTTP forbids it in a method or a
    # target, node ids are [A-Za-z0-9_.-], the rest are digits and hex).
    return "\n".join(("callfleet-node-v1", method.upper(), target, timestamp, nonce, sender, receiver,
                      hashlib.sha256(body).hexdigest())).encode()


class NodeAuth:
    """Signs what this node forwards and checks what other nodes forward here."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._clock = clock  # Unix seconds: proofs from other machines are wall-clock
        self._seen: set[str] = set()
        self._forget: list[tuple[int, str]] = []  # (when its timestamp goes stale, nonce), a heap

    def sign(self, method: str, target: str, body: bytes, sender: str, receiver: str) -> dict[str, str]:
        """The headers that prove a request from ``sender`` to ``receiver`` comes from a node
        of this cluster (``target``: the raw path and query it is sent to)."""
        timestamp, nonce = str(int(self._clock())), secrets.token_hex(16)
        digest = hmac.new(self._secret, _message(method, target, timestamp, nonce, sender, receiver, body),
                          hashlib.sha256).hexdigest()
        return {FORWARDED: sender, PROOF: f"v1 t={timestamp} n={nonce} s={digest}"}

    def verify(self, method: str, target: str, headers: Mapping[str, str], body: bytes, receiver: str) -> str:
        """The sending node's id when the proof in ``headers`` is valid for this request to
        ``receiver``, accepted once. Raises ``ProofError`` when it is missing, malformed,
        does not match, is more than ``MAX_SKEW_S`` from now, or was already used."""
        sender, proof = headers.get(FORWARDED, ""), headers.get(PROOF, "")
        if not sender or not proof:
            raise ProofError(f"a forwarded request needs {FORWARDED} and {PROOF}: only nodes of this cluster "
                             f"forward requests")
        match = _PROOF.fullmatch(proof)
        if match is None or not _NODE_ID.fullmatch(sender):
            raise ProofError(f"{PROOF} or {FORWARDED} is malformed")
        timestamp, nonce, signature = match.groups()
        expected = hmac.new(self._secret, _message(method, target, timestamp, nonce, sender, receiver, body),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise ProofError(f"{PROOF} does not match: not signed with this cluster's node secret (or not for this "
                             f"request, or not for node {receiver})")
        now = self._clock()
        skew = now - int(timestamp)
        if abs(skew) > MAX_SKEW_S:
            when = "old" if skew > 0 else "ahead of this node's clock"
            raise ProofError(f"{PROOF} is {abs(skew):.0f} s {when} (at most {MAX_SKEW_S} s: are the nodes' clocks "
                             f"synced?)")
        self._forget_stale(now)
        if nonce in self._seen:
            raise ProofError(f"{PROOF} was already used: a node request is taken once")
        self._seen.add(nonce)
        heapq.heappush(self._forget, (int(timestamp) + MAX_SKEW_S, nonce))
        return sender

    def _forget_stale(self, now: float) -> None:
        # A proof whose timestamp is stale is refused as stale: no need to remember it.
        while self._forget and self._forget[0][0] < now:
            self._seen.discard(heapq.heappop(self._forget)[1])


NODE_AUTH: web.AppKey[NodeAuth | None] = web.AppKey("node_auth")


def for_daemon(daemon: HttpDaemon) -> NodeAuth | None:
    """This node's ``NodeAuth``; None outside a cluster (then every forwarded request is
    refused). Raises ``ValueError`` naming the config key when the secret is not usable
    (the daemon checks that at start-up, before the app is built)."""
    section = daemon.config.cluster
    secret = node_secret(section, daemon.environ) if section.redis_url else None
    return None if secret is None else NodeAuth(secret)


def claims_forwarded(request: web.Request) -> bool:
    """Whether the request says it comes from another node (then it must prove it)."""
    return FORWARDED in request.headers or PROOF in request.headers


def forwarded_by(request: web.Request) -> str | None:
    """The node that forwarded this request, when its proof was accepted; else None."""
    return request.get(FORWARDED_BY)


@web.middleware
async def verify_nodes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse, with a 401 and before anything else runs, a request that says it was
    forwarded but cannot prove it; mark a proven one authenticated (no bearer key needed)."""
    if not claims_forwarded(request):
        return await handler(request)
    auth = request.app[NODE_AUTH]
    cluster = request.app[DAEMON].cluster
    try:
        if auth is None or cluster is None:
            raise ProofError("this node is not in a cluster: it takes no forwarded requests")
        body = await request.read()  # aiohttp keeps it: the view reads the same bytes
        sender = auth.verify(request.method, request.raw_path, request.headers, body, cluster.node_id)
    except ProofError as exc:
        log.warning("node request refused", reason=str(exc), claimed_node=request.headers.get(FORWARDED, "")[:63],
                    peer=request.remote, method=request.method, path=request.path)
        raise ApiError(401, "authentication-error", str(exc)) from None
    request[FORWARDED_BY] = sender
    request[AUTHENTICATED] = True
    return await handler(request)
