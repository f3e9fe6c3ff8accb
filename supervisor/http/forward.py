"""Cluster mode: answering on any node for a session another node owns.

A request for a session this node does not have goes to the owner's ``advertise_url``
(HTTP relayed as is, the stream WebSocket relayed both ways), and a start this node has
no worker for goes to the nodes with free capacity, in order. Everything forwarded is
signed with the cluster's node secret (``supervisor.http.node_auth``: the receiving node
checks the proof before anything else) and carries ``X-Callfleet-Forwarded: <node_id>``;
a request whose proof was accepted is never forwarded again, so two nodes with stale
views of each other cannot bounce a request between them. The client's ``Authorization``
is never passed on: this node checked it, the owner trusts the proof.

In single-node mode (``daemon.cluster`` is None) none of this runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from yarl import URL

from supervisor.http import node_auth
from supervisor.http.errors import ApiError, not_found
from supervisor.http.keys import ClusterNode, HttpDaemon, Node, SessionRegistry
from supervisor.sessions.state import SessionState

log = structlog.get_logger("supervisor.http.forward")

# What the owner needs to see of the original request; hop-by-hop headers stay behind, and
# so does the client's Authorization (the bearer key is this node's to check, and a BYO
# credential must not travel further than it has to).
PASSED_HEADERS = ("Content-Type", "X-Request-Id", "X-Stream-Token")
RELAYED_REPLY_HEADERS = ("Retry-After",)
CONNECT_TIMEOUT_S = 3.0  # a node that does not accept a connection by then is unreachable
REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 65.0  # the owner waits up to 60 s for a session's room and tokens
WS_MAX_MSG = 1024 * 1024
WS_CLOSE_TIMEOUT_S = 5.0
LISTING_LIMIT = 200
DIRECTORY_RETRY_AFTER_S = 2  # the Redis link reconnects with back-off capped at min(2 s, lease_s / 3)


def cluster_of(daemon: HttpDaemon) -> ClusterNode | None:
    """The daemon's Cluster, or None in single-node mode."""
    return daemon.cluster


def is_forwarded(request: web.Request) -> bool:
    """True when another node sent this request here (its proof was accepted): it is
    answered here, never sent on. A client's own ``X-Callfleet-Forwarded`` never counts."""
    return node_auth.forwarded_by(request) is not None


def may_forward(daemon: HttpDaemon, request: web.Request) -> ClusterNode | None:
    """The Cluster when this request may be sent to another node, else None."""
    cluster = cluster_of(daemon)
    return None if cluster is None or is_forwarded(request) else cluster


def _headers(request: web.Request, cluster: ClusterNode | None, node: Node, body: bytes) -> dict[str, str]:
    """What goes to ``node``: the passed headers and this node's signed proof."""
    auth: node_auth.NodeAuth | None = request.app[node_auth.NODE_AUTH]
    if auth is None or cluster is None:  # not reached by the daemon, which does not start a cluster node without its secret
        raise ApiError(500, "server-error", "this node has no node secret; it cannot forward")
    headers = {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}
    headers.update(auth.sign(request.method, request.raw_path, body, cluster.node_id, node.node_id))
    return headers


def _url(node: Node, request: web.Request) -> URL:
    # The target exactly as it came (already encoded), since that is what the proof covers.
    return URL(node.advertise_url.rstrip("/") + request.raw_path, encoded=True)


def unreachable(node: Node, exc: BaseException) -> ApiError:
    detail = str(exc) or type(exc).__name__
    return ApiError(502, "node-unreachable",
                    f"node {node.node_id} ({node.advertise_url}) owns this session but did not answer: {detail}")


async def remote_owner(daemon: HttpDaemon, request: web.Request, session_id: str) -> Node | None:
    """The other node that owns ``session_id``, when this request should go there.

    None in single-node mode, for a forwarded request, for a session this node knows (live
    or finished) and for one the directory does not place on another node."""
    cluster = may_forward(daemon, request)
    if cluster is None or daemon.registry.describe(session_id) is not None:
        return None
    owner: Node | None = await cluster.owner_of(session_id)
    if owner is None and not cluster.directory_whole:
        raise directory_unreachable(session_id)  # "not found" would tell a client a live session is gone
    if owner is None or owner.node_id == cluster.node_id:
        return None
    return owner


async def directory_view(daemon: HttpDaemon, request: web.Request, session_id: str) -> dict[str, Any] | None:
    """The directory's copy of a session no node owns any more (finished elsewhere)."""
    cluster = may_forward(daemon, request)
    if cluster is None:
        return None
    view: dict[str, Any] | None = await cluster.view_of(session_id)
    if view is None and not cluster.directory_whole:
        raise directory_unreachable(session_id)
    return view


def directory_unreachable(session_id: str) -> ApiError:
    """503: the directory (Redis) cannot be read, or is still being re-published after an
    outage, so whether another node runs the session is unknown; the link retries at least
    every 2 s."""
    return ApiError(503, "server-error", f"session {session_id} is not on this node and the cluster directory is "
                    "unreachable; try again", headers={"Retry-After": str(DIRECTORY_RETRY_AFTER_S)})


def listing_note(daemon: HttpDaemon, request: web.Request) -> dict[str, Any]:
    """What ``GET /sessions`` adds to its reply when the directory could not be read."""
    cluster = may_forward(daemon, request)
    if cluster is None or cluster.directory_whole:
        return {}
    return {"partial": True, "info": f"the cluster directory is unreachable: only node {cluster.node_id}'s "
                                     "sessions are listed"}


async def relay(daemon: HttpDaemon, request: web.Request, node: Node, timeout_s: float = REQUEST_TIMEOUT_S) -> web.Response:
    """Send this request to ``node`` and answer with its reply as it is (status, body, type).

    Raises a 502 ``node-unreachable`` ``ApiError`` when the node does not answer."""
    cluster = cluster_of(daemon)
    body = await request.read()
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=CONNECT_TIMEOUT_S)
    try:
        async with daemon.http_session.request(request.method, _url(node, request), data=body or None,
                                               headers=_headers(request, cluster, node, body), timeout=timeout,
                                               allow_redirects=False) as resp:
            payload = await resp.read()
            return _reply(resp, payload)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("node did not answer", node=node.node_id, path=request.path, error=str(exc) or type(exc).__name__)
        raise unreachable(node, exc) from None


def _reply(resp: aiohttp.ClientResponse, payload: bytes) -> web.Response:
    headers = {name: resp.headers[name] for name in RELAYED_REPLY_HEADERS if name in resp.headers}
    reply = web.Response(status=resp.status, body=payload, headers=headers)
    if resp.content_type:
        reply.content_type = resp.content_type
        if resp.charset:
            reply.charset = resp.charset
    return reply


# -- listings ------------------------------------------------------------------------------------


def merge_listings(local: list[dict[str, Any]], directory: list[dict[str, Any]], state: str | None,
                   limit: int = LISTING_LIMIT) -> list[dict[str, Any]]:
    """This node's views and the directory's, one per session, newest first.

    A local view wins over the directory's copy of the same session (it is live, the copy
    is as of the last publish); ``state`` filters the directory's too."""
    seen = {view["session_id"] for view in local}
    merged = list(local)
    for view in directory:
        sid = view.get("session_id")
        if sid in seen or (state is not None and view.get("state") != state):
            continue
        seen.add(sid)
        merged.append(view)
    merged.sort(key=lambda v: v.get("requested_at") or 0.0, reverse=True)
    return merged[:limit] if limit else merged


async def list_sessions(registry: SessionRegistry, cluster: ClusterNode | None, state: SessionState | None,
                        limit: int) -> list[dict[str, Any]]:
    """Sessions newest first: this node's and, given its ``cluster``, every node's from the
    directory. ``GET /sessions`` and ``ctl sessions`` both list through here."""
    local = registry.list(state, limit)
    if cluster is None:
        return local
    # The Cluster never raises: with Redis down the directory reads as empty, this node's own
    # remain, and listing_note says so in GET /sessions' reply.
    name = None if state is None else state.value
    return merge_listings(local, await cluster.all_sessions(name, limit), name, limit)


# -- starts --------------------------------------------------------------------------------------


def pool_full(info: str) -> ApiError:
    return ApiError(429, "rate-limit-error", info, headers={"Retry-After": "1"})


# A node answering these has no room for the start (full, or draining): the next one may.
NO_ROOM = (429, 503)


async def hand_off_start(daemon: HttpDaemon, request: web.Request, local_full: str) -> web.Response:
    """Give a start this node cannot place to the nodes with free capacity, most free first.

    The first 2xx is the reply, as the node gave it (Daily's or Pipecat Cloud's shape); a
    node that is full, draining or unreachable passes it on; any other reply (a 4xx about
    the request, a Daily failure) is returned as is. Raises a 429 ``ApiError`` with
    ``Retry-After`` when no node takes it (``local_full`` is the single-node text)."""
    cluster = may_forward(daemon, request)
    if cluster is None:
        raise pool_full(local_full)
    nodes = await cluster.nodes_with_capacity()  # [] while Redis is down
    tried = []
    for node in nodes:
        if node.node_id == cluster.node_id:
            continue
        tried.append(node.node_id)
        try:
            reply = await relay(daemon, request, node, timeout_s=START_TIMEOUT_S)
        except ApiError:
            continue  # unreachable: logged by relay
        if reply.status not in NO_ROOM:
            log.info("start handed to another node", node=node.node_id, status=reply.status)
            return reply
    asked = f"; asked {', '.join(tried)}" if tried else ""
    raise pool_full(f"{local_full}; no node in the cluster has a free worker{asked}")


# -- the stream WebSocket ------------------------------------------------------------------------


async def relay_stream(daemon: HttpDaemon, request: web.Request, node: Node) -> web.StreamResponse:
    """Relay the stream WebSocket to its owner: text and binary both ways, closed together.

    The owner's refusal (401 bad token, 409 an engine attached, ...) is answered as the
    owner gave it; a 502 ``node-unreachable`` ``ApiError`` when it does not answer."""
    cluster = cluster_of(daemon)
    headers = _headers(request, cluster, node, b"")
    timeout = aiohttp.ClientWSTimeout(ws_close=WS_CLOSE_TIMEOUT_S)
    try:
        upstream = await daemon.http_session.ws_connect(
            _url(node, request), headers=headers, max_msg_size=WS_MAX_MSG, heartbeat=20, timeout=timeout)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status in (0, 101):
            raise unreachable(node, exc) from None
        # The body of the owner's refusal is lost in the handshake; the owner refuses a plain
        # GET the same way (its checks run before the upgrade), so ask once more for it.
        return await relay(daemon, request, node)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise unreachable(node, exc) from None
    downstream = web.WebSocketResponse(heartbeat=20, max_msg_size=WS_MAX_MSG)
    try:
        await downstream.prepare(request)
        await _pump_both(downstream, upstream)
    finally:
        # Also reached when aiohttp cancels this handler as the engine's connection drops.
        if not upstream.closed:
            await upstream.close(code=close_code(downstream.close_code if downstream.closed else None))
        if not downstream.closed:
            await downstream.close(code=close_code(upstream.close_code if upstream.closed else None))
    return downstream


Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump_both(a: web.WebSocketResponse, b: aiohttp.ClientWebSocketResponse) -> None:
    pumps = [asyncio.ensure_future(_pump(a, b)), asyncio.ensure_future(_pump(b, a))]
    try:
        _, closing = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        # The first pump to end has closed the other socket; let the other pump see it,
        # since cancelling it mid-close would lose the close code.
        await asyncio.wait(closing, timeout=WS_CLOSE_TIMEOUT_S)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def _pump(source: Socket, sink: Socket) -> None:
    """Copy messages until ``source`` closes, then close ``sink`` with the same code."""
    async for msg in source:  # ends at a close (answered by aiohttp) or an error
        if sink.closed:
            return
        if msg.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
    if not sink.closed:
        await sink.close(code=close_code(source.close_code))


def close_code(code: int | None) -> int:
    """The code to pass on: 1005/1006 (no code, connection lost) may not be sent in a frame."""
    if code is None or code in (1005, 1006, 1015) or not 1000 <= code < 5000:
        return int(aiohttp.WSCloseCode.GOING_AWAY if code in (1006, None) else aiohttp.WSCloseCode.OK)
    return code


# -- a session's logs ----------------------------------------------------------------------------


async def logs_node(daemon: HttpDaemon, request: web.Request, session_id: str) -> Node | None:
    """The other node whose sessions.db holds the session's logs: the one running it, or
    the one that ran it. None in single-node mode, for a forwarded request, for a session
    this node knows and for one the directory does not know (404 here). Raises 404 when the
    node that ran it has left the cluster (its logs went with it), 503 while the directory
    cannot be read."""
    cluster = may_forward(daemon, request)
    if cluster is None or daemon.registry.describe(session_id) is not None:
        return None
    owner = await remote_owner(daemon, request, session_id)
    if owner is not None:
        return owner
    view = await directory_view(daemon, request, session_id)
    node_id = str(view.get("node_id") or "") if view is not None else ""
    if not node_id or node_id == cluster.node_id:
        return None
    node: Node | None = await cluster.node(node_id)
    if node is None:
        raise not_found(f"session {session_id} ran on node {node_id}, which has left the cluster; "
                        "its logs were kept there")
    return node


async def relay_streamed(daemon: HttpDaemon, request: web.Request, node: Node) -> web.StreamResponse:
    """Send this GET to ``node`` and stream its reply back as it comes (a followed log lasts
    as long as its session). Raises a 502 ``node-unreachable`` ``ApiError`` when the node
    does not answer."""
    cluster = cluster_of(daemon)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
    try:
        async with daemon.http_session.get(_url(node, request), headers=_headers(request, cluster, node, b""),
                                           timeout=timeout, allow_redirects=False) as resp:
            reply = web.StreamResponse(status=resp.status)
            if resp.content_type:
                reply.content_type = resp.content_type
            await reply.prepare(request)
            async for chunk in resp.content.iter_any():
                await reply.write(chunk)
            await reply.write_eof()
            return reply
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("node did not answer", node=node.node_id, path=request.path, error=str(exc) or type(exc).__name__)
        raise unreachable(node, exc) from None
