"""Fixtures for the multi-node suite: a real ``redis-server`` on a free loopback port (with a
password and TLS when a test asks), one shared sandbox (``callfleet sandbox``), a
pass-through witness in front of the sandbox's REST API that notes every call the nodes
make (the sandbox keeps no per-room delete count), and supervisors started as real
processes with ``[cluster]`` settings and the cluster's node secret."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import SandboxProcess, free_port
from tests.doubles.rest_witness import RestWitness
from tests.supervisor_harness import SupervisorProcess

LEASE_S = 2.0  # short, so a lost node is found within seconds
# Every test node's [cluster] node_secret_env, and the secret the nodes share.
NODE_SECRET_ENV = "CALLFLEET_NODE_SECRET"
NODE_SECRET = "test-cluster-node-secret-0123456789abcdef"


@dataclass
class Tls:
    """A CA and a server certificate for 127.0.0.1 it signed (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> Tls:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it, made with ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed (needed to make the test's certificates)")
    directory.mkdir(parents=True, exist_ok=True)
    tls = Tls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca_key, csr, ext = directory / "ca.key", directory / "server.csr", directory / "san.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    for args in (["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", tls.ca, "-days", "2",
                  "-subj", "/CN=callfleet test CA"],
                 ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", tls.key, "-out", csr, "-subj", "/CN=127.0.0.1"],
                 ["x509", "-req", "-in", csr, "-CA", tls.ca, "-CAkey", ca_key, "-CAcreateserial", "-out", tls.cert,
                  "-days", "2", "-extfile", ext]):
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)
    return tls


class RedisServer:
    """``redis-server --port P --save "" --appendonly no``: nothing survives a restart, as
    with a Redis that lost its data. With ``password`` it runs ``--requirepass``; with
    ``tls`` it serves TLS only (``rediss://``, the client checks the certificate against
    the test's CA)."""

    def __init__(self, workdir: Path, password: str | None = None, tls: Tls | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.tls = tls
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def url_with(self, password: str | None) -> str:
        """This server's URL, with ``password`` (which may be wrong) in it."""
        auth = f":{password}@" if password else ""
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca}"

    @property
    def url(self) -> str:
        return self.url_with(self.password)

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (scripts/test installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [exe, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls.cert),
                     "--tls-key-file", str(self.tls.key), "--tls-ca-cert-file", str(self.tls.ca),
                     "--tls-auth-clients", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._answers():
            if time.monotonic() > deadline:
                raise AssertionError("redis-server did not answer")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as raw:
                sock = raw
                if self.tls is not None:
                    sock = ssl.create_default_context(cafile=str(self.tls.ca)).wrap_socket(raw,
                                                                                            server_hostname="127.0.0.1")
                sock.sendall(b"PING\r\n")
                # NOAUTH is an answer too: the server is up and wants the password.
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self) -> Redis:
        return Redis.from_url(self.url)


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = redis_server.client()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="package")
def sandbox_proc() -> Iterator[SandboxProcess]:
    """One sandbox for the whole multi-node suite: every test reaches it through a witness
    of its own (or reads only rooms it made), and none changes how it answers."""
    sandbox = SandboxProcess("--no-rate-limits")
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
async def witness(sandbox_proc: SandboxProcess) -> AsyncIterator[RestWitness]:
    w = RestWitness(sandbox_proc.base_url)
    await w.start()
    try:
        yield w
    finally:
        await w.close()


class Node(SupervisorProcess):
    """A supervisor in the cluster, reached as ``node_id``; it knows the cluster's node
    secret unless ``env`` says otherwise."""

    def __init__(self, tmp: Path, sandbox: SandboxProcess, witness: RestWitness, redis: RedisServer, node_id: str,
                 **overrides: dict[str, Any]) -> None:
        daily = {"api_url": witness.api_url, **overrides.pop("daily", {})}
        # A worker's boot imports Pipecat: slow while three nodes share two cores.
        pool = {"min_idle": 1, "max_workers": 2, "start_timeout_s": 60, **overrides.pop("pool", {})}
        cluster = {"redis_url": redis.url, "node_id": node_id, "lease_s": LEASE_S, "node_secret_env": NODE_SECRET_ENV,
                   **overrides.pop("cluster", {})}
        env = {NODE_SECRET_ENV: NODE_SECRET, **overrides.pop("env", {})}
        super().__init__(tmp, sandbox.port, env=env, daily=daily, pool=pool, cluster=cluster, **overrides)
        self.node_id = node_id

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, no goodbye to Redis."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def log_events(self) -> list[dict[str, Any]]:
        """The supervisor's JSON log lines."""
        events = []
        for line in self.log_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events


NodeFactory = Callable[..., Node]
NodesFactory = Callable[..., Awaitable[list[Node]]]


@pytest.fixture
async def started_nodes() -> AsyncIterator[list[Node]]:
    """Every node a test started; stopped together at its end."""
    nodes: list[Node] = []
    try:
        yield nodes
    finally:
        # In parallel: each drain takes a moment and the machine is small.
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        await asyncio.gather(*(asyncio.to_thread(node.stop) for node in nodes))


@pytest.fixture
async def make_node(tmp_path: Path, sandbox_proc: SandboxProcess, witness: RestWitness, redis_server: RedisServer,
                    started_nodes: list[Node]) -> NodeFactory:
    """``make_node("n1", daily={"room_pool": 2})``: a started supervisor in the cluster."""

    def make(node_id: str, **overrides: dict[str, Any]) -> Node:
        (tmp_path / node_id).mkdir(exist_ok=True)
        node = Node(tmp_path / node_id, sandbox_proc, witness, redis_server, node_id, **overrides)
        started_nodes.append(node)
        node.start(60)
        return node

    return make


@pytest.fixture
async def make_nodes(tmp_path: Path, sandbox_proc: SandboxProcess, witness: RestWitness, redis_server: RedisServer,
                     started_nodes: list[Node]) -> NodesFactory:
    """``await make_nodes("n1", "n2", n1={"daily": {"room_pool": 2}})``: supervisors in the
    cluster, started side by side (each start imports the bots: seconds on a small machine)."""

    async def make(*node_ids: str, **overrides: dict[str, dict[str, Any]]) -> list[Node]:
        made = []
        for node_id in node_ids:
            (tmp_path / node_id).mkdir(exist_ok=True)
            made.append(Node(tmp_path / node_id, sandbox_proc, witness, redis_server, node_id,
                             **{k: dict(v) for k, v in overrides.get(node_id, {}).items()}))
        started_nodes.extend(made)
        await asyncio.gather(*(asyncio.to_thread(node.start, 60) for node in made))
        return made

    return make

