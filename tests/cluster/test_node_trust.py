"""Trust between nodes (issue 16 item 7): a request that says another node sent
it must prove the cluster's node secret, the client's ``Authorization`` never leaves the
node it was sent to, and Redis may ask for a password and speak TLS."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from redis.asyncio import Redis
from yarl import URL

from supervisor.cluster.link import redacted
from supervisor.http.node_auth import FORWARDED, PROOF, NodeAuth, ProofError
from tests.cluster.conftest import (
    NODE_SECRET,
    NODE_SECRET_ENV,
    Node,
    NodeFactory,
    NodesFactory,
    RedisServer,
    make_tls,
)
from tests.cluster.test_cluster_http import placeable
from tests.conftest import REPO, SandboxProcess, free_port
from tests.doubles.rest_witness import RestWitness
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

API_KEY_ENV = "CALLFLEET_API_KEY"
API_KEY = "the-clients-bearer-key"
BEARER = {"Authorization": f"Bearer {API_KEY}"}
# Both nodes ask for the bearer key, so a request that skipped it would show.
WITH_BEARER: dict[str, Any] = {"supervisor": {"api_key_env": API_KEY_ENV}, "env": {API_KEY_ENV: API_KEY}}


def proof(method: str, path: str, receiver: str, *, secret: str = NODE_SECRET, sender: str = "n2",
          body: bytes = b"", age_s: float = 0.0) -> dict[str, str]:
    """The headers a node holding ``secret`` sends with a request it forwards, made ``age_s`` ago."""
    return NodeAuth(secret.encode(), clock=lambda: time.time() - age_s).sign(method, path, body, sender, receiver)


# -- the proof itself ------------------------------------------------------------------------------


def test_a_proof_holds_for_its_own_request_once_and_for_nothing_else() -> None:
    auth = NodeAuth(NODE_SECRET.encode())
    headers = auth.sign("DELETE", "/sessions/s1?x=1", b"", "n2", "n1")
    assert NodeAuth(NODE_SECRET.encode()).verify("DELETE", "/sessions/s1?x=1", headers, b"", "n1") == "n2"
    refusals = {
        "another method": ("GET", "/sessions/s1?x=1", headers, b"", "n1"),
        "another path": ("DELETE", "/sessions/s2?x=1", headers, b"", "n1"),
        "another query": ("DELETE", "/sessions/s1?x=2", headers, b"", "n1"),
        "a body added": ("DELETE", "/sessions/s1?x=1", headers, b"{}", "n1"),
        "another receiver": ("DELETE", "/sessions/s1?x=1", headers, b"", "n3"),
        "another sender": ("DELETE", "/sessions/s1?x=1", {**headers, FORWARDED: "n3"}, b"", "n1"),
        "no proof": ("DELETE", "/sessions/s1?x=1", {FORWARDED: "n2"}, b"", "n1"),
        "a proof of another shape": ("DELETE", "/sessions/s1?x=1", {**headers, PROOF: headers[PROOF] + " "}, b"", "n1"),
    }
    for what, (method, path, sent, body, receiver) in refusals.items():
        with pytest.raises(ProofError):
            NodeAuth(NODE_SECRET.encode()).verify(method, path, sent, body, receiver)
            pytest.fail(f"accepted with {what}")
    n1 = NodeAuth(NODE_SECRET.encode())
    n1.verify("DELETE", "/sessions/s1?x=1", headers, b"", "n1")
    with pytest.raises(ProofError, match="already used"):
        n1.verify("DELETE", "/sessions/s1?x=1", headers, b"", "n1")


def test_a_proof_made_with_another_secret_or_too_long_ago_is_refused() -> None:
    wrong = proof("GET", "/sessions", "n1", secret="some-other-clusters-secret")
    with pytest.raises(ProofError, match="does not match"):
        NodeAuth(NODE_SECRET.encode()).verify("GET", "/sessions", wrong, b"", "n1")
    for age in (120.0, -120.0):  # old, or from a clock far ahead
        stale = proof("GET", "/sessions", "n1", age_s=age)
        with pytest.raises(ProofError, match="s old|ahead"):
            NodeAuth(NODE_SECRET.encode()).verify("GET", "/sessions", stale, b"", "n1")


def test_a_redis_url_is_shown_without_its_password() -> None:
    assert redacted("rediss://:s3cret@redis.internal:6380/0?ssl_ca_certs=/etc/ca.pem") == \
        "rediss://:***@redis.internal:6380/0?ssl_ca_certs=/etc/ca.pem"
    assert redacted("redis://callfleet:s3cret@redis:6379/0") == "redis://callfleet:***@redis:6379/0"
    assert redacted("redis://redis:6379/0?password=s3cret&db=1") == "redis://redis:6379/0?password=***&db=1"
    assert redacted("redis://redis:6379/0") == "redis://redis:6379/0"


# -- a witness between two nodes -------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


HOP_BY_HOP = {"host", "content-length", "connection", "upgrade", "transfer-encoding", "sec-websocket-key",
              "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}


class NodeWitness:
    """A pass-through in front of one node, set as that node's ``advertise_url``: every
    request another node sends it (HTTP or the stream WebSocket) is noted as it arrived,
    then relayed unchanged to ``target``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target = ""
        self.seen: list[Seen] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None and self.target
        body = await request.read()
        self.seen.append(Seen(request.method, request.raw_path, request.headers.copy(), body))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        url = URL(self.target + request.raw_path, encoded=True)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            async with self._session.ws_connect(url, headers=headers) as upstream:
                downstream = web.WebSocketResponse()
                await downstream.prepare(request)
                await asyncio.gather(_pump(downstream, upstream), _pump(upstream, downstream))
                return downstream
        async with self._session.request(request.method, url, data=body or None, headers=headers) as resp:
            return web.Response(status=resp.status, body=await resp.read(),
                                headers={"Content-Type": resp.headers.get("Content-Type", "application/json")})


async def _pump(source: Any, sink: Any) -> None:
    async for msg in source:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
    await sink.close()


@pytest.fixture
async def node_witness() -> AsyncIterator[NodeWitness]:
    witness = NodeWitness()
    await witness.start()
    try:
        yield witness
    finally:
        await witness.close()


async def call(node: SupervisorProcess, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    status, body, _ = await node.http(method, path, **kwargs)
    return status, body


# -- forged node requests --------------------------------------------------------------------------


async def test_a_forged_node_request_is_a_401_and_changes_nothing(make_nodes: NodesFactory) -> None:
    n1, n2 = await make_nodes("n1", "n2")
    bot = await n1.start_bot("echo")
    sid = bot["session_id"]
    await n1.wait_session(sid, lambda d: d["state"] == "joined")
    path = f"/sessions/{sid}"
    forgeries = {
        "the header alone": {FORWARDED: "n2"},
        "a proof made with another secret": proof("DELETE", path, "n1", secret="not-this-clusters-secret"),
        "a proof made two minutes ago": proof("DELETE", path, "n1", age_s=120),
        "a proof for another node": proof("DELETE", path, "n2"),
        "a proof for another request": proof("GET", path, "n1"),
    }
    for what, headers in forgeries.items():
        status, body = await call(n1, "DELETE", path, headers=headers)
        assert status == 401 and body["error"] == "authentication-error", (what, status, body)
    # A client cannot make a node skip forwarding either: the owner is not asked, nothing answers.
    status, body = await call(n2, "GET", path, headers={FORWARDED: "n1"})
    assert status == 401, body
    # A proof that was good once is not good twice.
    replayed = proof("GET", path, "n1")
    assert (await call(n1, "GET", path, headers=replayed))[0] == 200
    status, body = await call(n1, "GET", path, headers=replayed)
    assert status == 401 and "already used" in body["info"], body
    # The session never noticed; the refusals are in the owner's log.
    detail = await n1.session(sid)
    assert detail["state"] == "joined", detail
    refused = [e for e in n1.log_events() if e.get("event") == "node request refused"]
    assert len(refused) == len(forgeries) + 1
    # Through the real path the same DELETE works.
    status, body = await call(n2, "DELETE", path)
    assert status == 200 and body["stopping"] is True, body
    await n1.wait_session(sid, lambda d: d["state"] == "ended")


# -- what travels between nodes --------------------------------------------------------------------


async def test_the_owner_gets_a_proof_and_never_the_clients_authorization(make_nodes: NodesFactory,
                                                                          node_witness: NodeWitness,
                                                                          redis_client: Redis) -> None:
    n1_full = {**WITH_BEARER, "pool": {"min_idle": 1, "max_workers": 1}}
    n1, n2 = await make_nodes("n1", "n2", n1=n1_full,
                              n2={**WITH_BEARER, "cluster": {"advertise_url": node_witness.url}})
    node_witness.target = n2.url
    status, on_n1 = await call(n1, "POST", "/bots/start", json={"bot_profile": "echo"}, headers=BEARER)
    assert status == 200, on_n1
    await n1.http("GET", f"/sessions/{on_n1['session_id']}", headers=BEARER)
    await wait_until(lambda: placeable(redis_client, "n2"), what="n2 published with a free worker")
    # n1 is full: this start (and its body) goes to n2, through the witness.
    status, on_n2 = await call(n1, "POST", "/bots/start", json={"bot_profile": "stream"}, headers=BEARER)
    assert status == 200, on_n2
    sid = on_n2["session_id"]
    await wait_until(lambda: redis_client.exists(f"cf:session:{sid}"), what="n2's session in the directory")
    for method, path, kwargs in (("GET", f"/sessions/{sid}", {}),
                                 ("POST", f"/sessions/{sid}/app-message", {"json": {"message": {"hi": 1}}})):
        status, body = await call(n1, method, path, headers=BEARER, **kwargs)
        assert status in (200, 409), (method, path, status, body)  # 409: the bot may not have joined yet
    # The stream WebSocket relayed through n1, from an engine that also sends the bearer key.
    url = f"{n1.url}/sessions/{sid}/stream?token={on_n2['stream_token']}"
    async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=BEARER) as ws:
        config = await ws.receive_json(timeout=20)
        assert config["type"] == "config" and config["session_id"] == sid
    status, body = await call(n1, "DELETE", f"/sessions/{sid}", headers=BEARER)
    assert status == 200, body

    seen = [(s.method, s.path.partition("?")[0]) for s in node_witness.seen]
    assert seen == [("POST", "/bots/start"), ("GET", f"/sessions/{sid}"), ("POST", f"/sessions/{sid}/app-message"),
                    ("GET", f"/sessions/{sid}/stream"), ("DELETE", f"/sessions/{sid}")], seen
    for request in node_witness.seen:
        assert "Authorization" not in request.headers, request
        # Each carries a proof, for n2, from n1, over exactly what n2 got.
        sender = NodeAuth(NODE_SECRET.encode()).verify(request.method, request.path, request.headers, request.body,
                                                       "n2")
        assert sender == "n1"
    assert json.loads(node_witness.seen[0].body) == {"bot_profile": "stream"}  # the start's body, as the client sent it
    status, _ = await call(n1, "DELETE", f"/sessions/{on_n1['session_id']}", headers=BEARER)
    assert status == 200


# -- Redis with a password, and TLS ----------------------------------------------------------------


def start_failing(node: Node, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the node's supervisor, expecting it to stop at start-up; its exit and stderr."""
    env = {**os.environ, **(node.env or {})}
    return subprocess.run([sys.executable, "-m", "cli", "supervisor", "--config", str(node.config_path)],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
async def password_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis-pw", password="redis-password-for-the-test")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_nodes_share_a_password_protected_redis_and_a_wrong_password_stops_start_up(
        make_nodes: NodesFactory, password_redis: RedisServer, tmp_path: Path, sandbox_proc: SandboxProcess,
        witness: RestWitness) -> None:
    on_it = {"cluster": {"redis_url": password_redis.url}}
    n1, n2 = await make_nodes("n1", "n2", n1=on_it, n2=on_it)
    bot = await n1.start_bot("echo")
    detail = await wait_until(lambda: _found(n2, bot["session_id"]), what="n1's session read through n2")
    assert detail["node_id"] == "n1"
    async with password_redis.client() as redis:
        assert await redis.exists("cf:lease:n1") and await redis.exists("cf:lease:n2")
    await n2.http("DELETE", f"/sessions/{bot['session_id']}")

    wrong = start_failing(Node(_dir(tmp_path, "n3"), sandbox_proc, witness, password_redis, "n3",
                               cluster={"redis_url": password_redis.url_with("not-the-password")}))
    assert wrong.returncode == 2, wrong.stderr
    assert "cluster.redis_url" in wrong.stderr and "refused this node: authentication failed" in wrong.stderr
    missing = start_failing(Node(_dir(tmp_path, "n4"), sandbox_proc, witness, password_redis, "n4",
                                 cluster={"redis_url": password_redis.url_with(None)}))
    assert missing.returncode == 2 and "requires a password" in missing.stderr, missing.stderr
    # The passwords are in no log and no error.
    assert password_redis.password is not None
    for text in (n1.log_path.read_text(), n2.log_path.read_text(), wrong.stderr):
        assert password_redis.password not in text and "not-the-password" not in text


async def test_a_rediss_url_works_and_a_certificate_that_does_not_verify_stops_start_up(
        make_node: NodeFactory, tmp_path: Path, sandbox_proc: SandboxProcess, witness: RestWitness) -> None:
    server = RedisServer(tmp_path / "redis-tls", password="tls-redis-password", tls=make_tls(tmp_path / "tls"))
    server.start()
    try:
        n1 = make_node("n1", cluster={"redis_url": server.url})
        bot = await n1.start_bot("echo")
        async with server.client() as redis:
            assert await redis.exists("cf:lease:n1")
            await wait_until(lambda: redis.exists(f"cf:session:{bot['session_id']}"), what="the session in Redis")
        await n1.http("DELETE", f"/sessions/{bot['session_id']}")
        untrusted = server.url.partition("?")[0]  # no ssl_ca_certs: the test's CA is not trusted
        n2 = Node(_dir(tmp_path, "n2"), sandbox_proc, witness, server, "n2", cluster={"redis_url": untrusted})
        result = start_failing(n2)
        assert result.returncode == 2, result.stderr
        assert "TLS certificate does not verify" in result.stderr and "tls-redis-password" not in result.stderr
    finally:
        server.stop()


async def test_a_node_without_its_node_secret_does_not_start(tmp_path: Path, sandbox_proc: SandboxProcess,
                                                             witness: RestWitness, redis_server: RedisServer) -> None:
    node = Node(_dir(tmp_path, "n1"), sandbox_proc, witness, redis_server, "n1", env={NODE_SECRET_ENV: ""})
    result = start_failing(node)
    assert result.returncode == 1, result.stderr
    assert f"cluster.node_secret_env: ${NODE_SECRET_ENV} is not set" in result.stderr


async def _found(node: SupervisorProcess, sid: str) -> dict[str, Any] | None:
    status, body, _ = await node.http("GET", f"/sessions/{sid}")
    return dict(body) if status == 200 else None


def _dir(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).mkdir(exist_ok=True)
    return tmp_path / name


async def test_a_signed_dialin_webhook_replayed_to_another_node_is_refused(make_nodes: Any) -> None:
    """The load balancer may hand a captured webhook to any node: the first node to claim
    its signature in Redis takes it, every other node refuses it."""
    import base64
    import hashlib
    import hmac as hmac_mod

    secret = base64.b64encode(b"pinless-secret-for-the-cluster!!").decode()
    dialin = {"dialin": {"hmac_secret_env": "CALLFLEET_TEST_PINLESS"}, "env": {"CALLFLEET_TEST_PINLESS": secret}}
    n1, n2 = await make_nodes("n1", "n2", n1=dialin, n2=dialin)

    def signed(body: bytes) -> dict[str, str]:
        ts = str(int(time.time()))
        mac = hmac_mod.new(base64.b64decode(secret), ts.encode() + b"." + body, hashlib.sha256).digest()
        return {"Content-Type": "application/json", "X-Pinless-Timestamp": ts,
                "X-Pinless-Signature": base64.b64encode(mac).decode()}

    body = json.dumps({"test": "ping"}).encode()
    headers = signed(body)
    status, reply, _ = await n1.http("POST", "/dialin", data=body, headers=headers)
    assert (status, reply) == (200, {"status": "OK"})
    status, reply, _ = await n2.http("POST", "/dialin", data=body, headers=headers)
    assert status == 401 and "already used on another node" in reply["info"], reply
    other = json.dumps({"test": "another ping"}).encode()
    status, _, _ = await n2.http("POST", "/dialin", data=other, headers=signed(other))
    assert status == 200
