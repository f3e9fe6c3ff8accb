"""Fixtures for the multi-node suite: a real ``redis-server`` on a free loopback port, one
shared sandbox (``callfleet sandbox``), a pass-through witness in front of the sandbox's
REST API that notes every call the nodes make (the sandbox keeps no per-room delete count),
and supervisors started as real processes with ``[cluster]`` settings."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import SandboxProcess, free_port
from tests.fakes.rest_witness import RestWitness
from tests.supervisor_harness import SupervisorProcess

LEASE_S = 2.0  # short, so a lost node is found within seconds


class RedisServer:
    """``redis-server --port P --save "" --appendonly no``: nothing survives a restart, as
    with a Redis that lost its data."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (scripts/test installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        import socket

        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("redis-server did not answer")
            time.sleep(0.05)

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


@pytest.fixture
async def witness(sandbox_proc: SandboxProcess) -> AsyncIterator[RestWitness]:
    w = RestWitness(sandbox_proc.base_url)
    await w.start()
    try:
        yield w
    finally:
        await w.close()


class Node(SupervisorProcess):
    """A supervisor in the cluster, reached as ``node_id``."""

    def __init__(self, tmp: Path, sandbox: SandboxProcess, witness: RestWitness, redis: RedisServer, node_id: str,
                 **overrides: dict[str, Any]) -> None:
        daily = {"api_url": witness.api_url, **overrides.pop("daily", {})}
        # A worker's boot imports Pipecat: slow while three nodes share two cores.
        pool = {"min_idle": 1, "max_workers": 2, "start_timeout_s": 60, **overrides.pop("pool", {})}
        cluster = {"redis_url": redis.url, "node_id": node_id, "lease_s": LEASE_S, **overrides.pop("cluster", {})}
        super().__init__(tmp, sandbox.port, daily=daily, pool=pool, cluster=cluster, **overrides)
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


async def wait_until(fetch: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
                     interval: float = 0.05) -> Any:
    """Poll ``fetch`` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
