"""Cluster forwarding without processes: one node's app over a small stand-in daemon and a
fake Cluster, and the other nodes as small aiohttp apps that record what reached them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from supervisor.config import parse
from supervisor.http.app import make_app
from supervisor.http.forward import merge_listings
from supervisor.http.node_auth import FORWARDED, PROOF, NodeAuth
from supervisor.pool import PoolFull
from supervisor.profiles import parse as parse_profiles
from tests.conftest import free_port
from tests.doubles.http_daemon import BareDaemon, NoSessions
from tests.waiting import wait_until


@dataclass
class NodeInfo:
    node_id: str
    advertise_url: str


@dataclass
class FakeCluster:
    """The ``supervisor.cluster.Cluster`` interface, answered from plain fields."""

    node_id: str = "here"
    advertise_url: str = "http://127.0.0.1:1"
    owners: dict[str, NodeInfo] = field(default_factory=dict)
    directory: list[dict[str, Any]] = field(default_factory=list)
    with_capacity: list[NodeInfo] = field(default_factory=list)
    owner_asks: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return True

    @property
    def directory_whole(self) -> bool:
        return True

    async def owner_of(self, session_id: str) -> NodeInfo | None:
        self.owner_asks.append(session_id)
        return self.owners.get(session_id)

    async def view_of(self, session_id: str) -> dict[str, Any] | None:
        return next((v for v in self.directory if v["session_id"] == session_id), None)

    async def all_sessions(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        return [v for v in self.directory if state is None or v["state"] == state][:limit]

    async def nodes_with_capacity(self) -> list[NodeInfo]:
        return list(self.with_capacity)

    async def claim_once(self, key: str, ttl_s: float) -> bool:
        return True


class FullRegistry(NoSessions):
    """A node with no worker free and the given sessions of its own."""

    def __init__(self, local: list[dict[str, Any]]) -> None:
        self.local = local

    def start(self, request: Any) -> Any:
        raise PoolFull("1 of 1 workers busy")

    def describe(self, session_id: str) -> dict[str, Any] | None:
        return next((v for v in self.local if v["session_id"] == session_id), None)

    def list(self, state: Any = None, limit: int = 100) -> list[dict[str, Any]]:
        return [v for v in self.local if state is None or v["state"] == state.value]


NODE_SECRET = "a-secret-the-nodes-share"


def signed(method: str, target: str, body: bytes = b"", sender: str = "b", receiver: str = "here") -> dict[str, str]:
    """The headers node ``sender`` sends with a request it forwards to ``receiver``."""
    return NodeAuth(NODE_SECRET.encode()).sign(method, target, body, sender, receiver)


class StandInDaemon(BareDaemon):
    config = parse('[cluster]\nredis_url = "redis://127.0.0.1:1/0"\nnode_secret_env = "NODE_SECRET"\n')
    environ = {"NODE_SECRET": NODE_SECRET}
    profiles = parse_profiles('[profiles.echo]\nkind = "echo"\n')

    def __init__(self, cluster: FakeCluster | None, http_session: aiohttp.ClientSession,
                 local: list[dict[str, Any]] | None = None) -> None:
        self.cluster = cluster
        self.http_session = http_session
        self.registry = FullRegistry(local or [])

    async def stop_session(self, session_id: str) -> bool:
        return False


def view(sid: str, state: str = "joined", node: str = "here", at: float = 1.0) -> dict[str, Any]:
    return {"session_id": sid, "state": state, "node_id": node, "requested_at": at}


@dataclass
class Peer:
    """Another node: answers every request with ``reply`` and remembers what it got."""

    server: TestServer
    seen: list[tuple[str, str, CIMultiDict[str], bytes]]
    info: NodeInfo


Reply = Callable[[web.Request], web.StreamResponse]


@pytest.fixture
async def peers() -> AsyncIterator[Callable[..., Any]]:
    started: list[TestServer] = []

    async def start(node_id: str, reply: Any) -> Peer:
        seen: list[tuple[str, str, CIMultiDict[str], bytes]] = []

        async def handle(request: web.Request) -> web.StreamResponse:
            seen.append((request.method, request.path_qs, request.headers.copy(), await request.read()))
            return await reply(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        server = TestServer(app)
        await server.start_server()
        started.append(server)
        return Peer(server, seen, NodeInfo(node_id, str(server.make_url("")).rstrip("/")))

    yield start
    for server in started:
        await server.close()


def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    async def reply(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers=headers)
    return reply


@pytest.fixture
async def node() -> AsyncIterator[Callable[..., Any]]:
    """This node's app over a stand-in daemon: ``await node(cluster, local=[...])``."""
    clients: list[TestClient[Any, Any]] = []
    session = aiohttp.ClientSession()

    async def start(cluster: FakeCluster | None, local: list[dict[str, Any]] | None = None) -> TestClient[Any, Any]:
        client = TestClient(TestServer(make_app(StandInDaemon(cluster, session, local))))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    await session.close()


# -- requests for one session --------------------------------------------------------------------


async def test_a_request_for_a_session_another_node_owns_gets_the_owners_reply_as_it_is(node: Any, peers: Any) -> None:
    owner = await peers("b", answer(409, {"error": "invalid-request-error", "info": "session s1 has finished"}))
    client = await node(FakeCluster(owners={"s1": owner.info}))
    resp = await client.post("/sessions/s1/app-message?x=1", json={"message": {"hi": 1}},
                             headers={"Authorization": "Bearer k", "X-Request-Id": "r1"})
    assert resp.status == 409
    assert await resp.json() == {"error": "invalid-request-error", "info": "session s1 has finished"}
    method, path, headers, body = owner.seen[0]
    assert (method, path, json.loads(body)) == ("POST", "/sessions/s1/app-message?x=1", {"message": {"hi": 1}})
    assert headers["X-Request-Id"] == "r1" and "Authorization" not in headers
    # The owner can check where it came from: signed by "here" for "b", over this very request.
    assert NodeAuth(NODE_SECRET.encode()).verify(method, path, headers, body, "b") == "here"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_get_and_delete_of_a_session_elsewhere_reach_its_owner(node: Any, peers: Any, method: str) -> None:
    owner = await peers("b", answer(200, {"session_id": "s1", "node_id": "b"}))
    client = await node(FakeCluster(owners={"s1": owner.info}))
    resp = await client.request(method, "/sessions/s1")
    assert resp.status == 200 and (await resp.json())["node_id"] == "b"
    assert [(m, p) for m, p, _, _ in owner.seen] == [(method, "/sessions/s1")]


async def test_a_forwarded_request_is_answered_here_and_never_forwarded_again(node: Any, peers: Any) -> None:
    owner = await peers("b", answer(200, {}))
    cluster = FakeCluster(owners={"s1": owner.info})
    client = await node(cluster)
    body = b'{"message": 1}'
    for method, path in (("GET", "/sessions/s1"), ("DELETE", "/sessions/s1"), ("POST", "/sessions/s1/app-message"),
                         ("GET", "/sessions/s1/stream")):
        resp = await client.request(method, path, data=body, headers=signed(method, path, body))
        assert resp.status == 404, (method, path)
        assert (await resp.json())["error"] == "not-found"
    assert owner.seen == [] and cluster.owner_asks == []


async def test_a_client_saying_its_request_was_forwarded_is_refused_not_answered_locally(node: Any,
                                                                                         peers: Any) -> None:
    owner = await peers("b", answer(200, {"session_id": "s1", "node_id": "b"}))
    cluster = FakeCluster(owners={"s1": owner.info})
    client = await node(cluster)
    resp = await client.get("/sessions/s1", headers={FORWARDED: "b"})
    assert resp.status == 401 and (await resp.json())["error"] == "authentication-error"
    assert owner.seen == [] and cluster.owner_asks == []
    # Without the header the same request reaches the owner.
    resp = await client.get("/sessions/s1")
    assert resp.status == 200 and (await resp.json())["node_id"] == "b"


async def test_a_session_this_node_has_is_answered_here_without_asking_the_directory(node: Any) -> None:
    cluster = FakeCluster(owners={"s1": NodeInfo("b", "http://127.0.0.1:1")})
    client = await node(cluster, local=[view("s1", "ended")])
    resp = await client.get("/sessions/s1")
    assert resp.status == 200 and (await resp.json())["node_id"] == "here"
    assert cluster.owner_asks == []


async def test_an_owner_that_does_not_answer_is_a_502_naming_the_node(node: Any) -> None:
    gone = NodeInfo("node-b", f"http://127.0.0.1:{free_port()}")
    client = await node(FakeCluster(owners={"s1": gone}))
    for method, path in (("GET", "/sessions/s1"), ("DELETE", "/sessions/s1"), ("GET", "/sessions/s1/stream")):
        resp = await client.request(method, path)
        body = await resp.json()
        assert resp.status == 502 and body["error"] == "node-unreachable", (method, path, body)
        assert "node-b" in body["info"]


async def test_a_session_unknown_everywhere_is_a_404_and_one_finished_elsewhere_a_409(node: Any) -> None:
    client = await node(FakeCluster(directory=[view("s2", "ended", node="b")]))
    resp = await client.post("/sessions/nope/app-message", json={"message": {}})
    assert resp.status == 404
    resp = await client.post("/sessions/s2/app-message", json={"message": {}})
    assert resp.status == 409 and "finished" in (await resp.json())["info"]
    resp = await client.get("/sessions/s2")
    assert resp.status == 200 and (await resp.json())["node_id"] == "b"
    resp = await client.delete("/sessions/s2")
    assert resp.status == 200 and (await resp.json())["stopping"] is False


# -- listings ------------------------------------------------------------------------------------


def test_a_local_view_wins_over_the_directorys_copy_and_each_session_is_listed_once() -> None:
    local = [view("s1", "joined", at=3.0)]
    directory = [view("s1", "joining", at=3.0), view("s2", "joined", node="b", at=5.0),
                 view("s2", "joined", node="b", at=5.0), view("s3", "ended", node="c", at=4.0)]
    merged = merge_listings(local, directory, None)
    assert [(v["session_id"], v["state"], v["node_id"]) for v in merged] == [
        ("s2", "joined", "b"), ("s3", "ended", "c"), ("s1", "joined", "here")]


def test_a_merged_listing_honours_the_state_filter_and_the_limit() -> None:
    directory = [view(f"s{i}", "joined" if i % 2 else "ended", node="b", at=float(i)) for i in range(10)]
    merged = merge_listings([], directory, "joined", limit=3)
    assert [v["session_id"] for v in merged] == ["s9", "s7", "s5"]


async def test_get_sessions_lists_every_nodes_sessions_each_with_its_node(node: Any) -> None:
    cluster = FakeCluster(directory=[view("s1", "joining", at=2.0), view("s2", "joined", node="b", at=1.0),
                                     view("s3", "ended", node="c", at=3.0)])
    client = await node(cluster, local=[view("s1", "joined", at=2.0)])
    listing = (await (await client.get("/sessions")).json())["data"]
    assert [(v["session_id"], v["state"], v["node_id"]) for v in listing] == [
        ("s3", "ended", "c"), ("s1", "joined", "here"), ("s2", "joined", "b")]
    joined = (await (await client.get("/sessions", params={"state": "joined"})).json())["data"]
    assert [v["session_id"] for v in joined] == ["s1", "s2"]
    # A node asked by another (forwarded) answers with its own sessions only.
    own = (await (await client.get("/sessions", headers=signed("GET", "/sessions"))).json())["data"]
    assert [v["session_id"] for v in own] == ["s1"]


# -- starts --------------------------------------------------------------------------------------


async def test_a_start_this_node_cannot_place_goes_to_the_first_node_that_takes_it(node: Any, peers: Any) -> None:
    full = await peers("b", answer(429, {"error": "rate-limit-error", "info": "full"}, {"Retry-After": "1"}))
    taker = await peers("c", answer(200, {"room_url": "r", "token": "t", "session_id": "s9", "stream_token": "x"}))
    spare = await peers("d", answer(200, {}))
    client = await node(FakeCluster(with_capacity=[full.info, taker.info, spare.info]))
    resp = await client.post("/bots/start", json={"bot_profile": "echo", "max_duration": 300},
                             headers={"Authorization": "Bearer k"})
    assert resp.status == 200
    assert await resp.json() == {"room_url": "r", "token": "t", "session_id": "s9", "stream_token": "x"}
    method, path, headers, body = taker.seen[0]
    assert (method, path) == ("POST", "/bots/start")
    assert json.loads(body) == {"bot_profile": "echo", "max_duration": 300}  # the original body
    assert "Authorization" not in headers and headers[FORWARDED] == "here" and PROOF in headers
    assert len(full.seen) == 1 and spare.seen == []


async def test_the_pipecat_start_shape_comes_back_as_the_owner_gave_it(node: Any, peers: Any) -> None:
    reply = {"dailyRoom": "r", "dailyToken": "t", "sessionId": "s9", "streamToken": "x"}
    taker = await peers("c", answer(200, reply))
    client = await node(FakeCluster(with_capacity=[taker.info]))
    resp = await client.post("/start", json={"createDailyRoom": True, "profile": "echo"})
    assert resp.status == 200 and await resp.json() == reply


async def test_a_start_refused_for_its_content_is_returned_as_is_and_not_tried_elsewhere(node: Any, peers: Any) -> None:
    refusing = await peers("b", answer(400, {"error": "invalid-request-error", "info": "Daily refused the request"}))
    spare = await peers("c", answer(200, {}))
    client = await node(FakeCluster(with_capacity=[refusing.info, spare.info]))
    resp = await client.post("/bots/start", json={"bot_profile": "echo"})
    assert resp.status == 400 and "Daily refused" in (await resp.json())["info"]
    assert spare.seen == []


async def test_429_with_retry_after_only_when_every_node_is_full_or_gone(node: Any, peers: Any) -> None:
    full = await peers("b", answer(429, {"error": "rate-limit-error", "info": "full"}))
    draining = await peers("c", answer(503, {"error": "service-unavailable", "info": "draining"}))
    gone = NodeInfo("d", f"http://127.0.0.1:{free_port()}")
    client = await node(FakeCluster(with_capacity=[full.info, draining.info, gone]))
    resp = await client.post("/bots/start", json={"bot_profile": "echo"})
    body = await resp.json()
    assert resp.status == 429 and resp.headers["Retry-After"] == "1" and body["error"] == "rate-limit-error"
    assert "b, c, d" in body["info"]
    assert len(full.seen) == len(draining.seen) == 1


async def test_a_forwarded_start_or_a_single_node_gets_its_own_429(node: Any, peers: Any) -> None:
    spare = await peers("b", answer(200, {}))
    clustered = await node(FakeCluster(with_capacity=[spare.info]))
    body = b'{"bot_profile": "echo"}'
    resp = await clustered.post("/bots/start", data=body, headers=signed("POST", "/bots/start", body, sender="x"))
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    single = await node(None)
    resp = await single.post("/bots/start", json={"bot_profile": "echo"})
    assert resp.status == 429 and (await resp.json())["info"] == "no worker free: 1 of 1 workers busy"
    assert spare.seen == []


# -- the stream WebSocket ------------------------------------------------------------------------


async def engine_side(request: web.Request) -> web.StreamResponse:
    """The owner's stream endpoint: refuses a bad token like the real one, else sends a
    config message and echoes text and binary (reversed) until the engine closes."""
    if request.query.get("token") != "good":
        return web.json_response({"error": "authentication-error", "info": "missing or invalid stream token"},
                                 status=401)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"type": "config", "session_id": "s1"})
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            if msg.data == "hang up":
                await ws.close(code=4000)
                break
            await ws.send_str("echo " + msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


async def test_the_stream_websocket_is_relayed_both_ways_through_a_non_owner(node: Any, peers: Any) -> None:
    owner = await peers("b", engine_side)
    client = await node(FakeCluster(owners={"s1": owner.info}))
    ws = await client.ws_connect("/sessions/s1/stream?token=good")
    assert (await ws.receive_json(timeout=5))["type"] == "config"
    await ws.send_str("hello")
    assert await ws.receive_str(timeout=5) == "echo hello"
    await ws.send_bytes(b"\x01\x02\x03")
    assert await ws.receive_bytes(timeout=5) == b"\x03\x02\x01"
    method, path, headers, _ = owner.seen[0]
    assert NodeAuth(NODE_SECRET.encode()).verify(method, path, headers, b"", "b") == "here"
    # The owner closing closes the engine's side too, with the owner's code.
    await ws.send_str("hang up")
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4000


async def test_the_engine_closing_closes_the_owners_side(node: Any, peers: Any) -> None:
    closed: list[int | None] = []

    async def owner_ws(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        closed.append(ws.close_code)
        return ws

    owner = await peers("b", owner_ws)
    client = await node(FakeCluster(owners={"s1": owner.info}))
    ws = await client.ws_connect("/sessions/s1/stream?token=good")
    await ws.close(code=4001)
    assert await wait_until(lambda: closed, 5, "the owner's side closed") == [4001]


async def test_the_owners_refusal_of_a_stream_comes_back_with_its_status_and_body(node: Any, peers: Any) -> None:
    owner = await peers("b", engine_side)
    client = await node(FakeCluster(owners={"s1": owner.info}))
    resp = await client.get("/sessions/s1/stream", params={"token": "bad"},
                            headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert resp.status == 401
    assert await resp.json() == {"error": "authentication-error", "info": "missing or invalid stream token"}
