"""Shared fixtures. End-to-end helpers start real processes on real sockets."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from protocol.messages import Ping, Welcome
from protocol.transport import Channel, Received, bind_router

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def drop_dir() -> Iterator[Path]:
    """A folder hosted bots may write to but not list. Bots run as another user (the tests
    run as root, so the supervisor isolates its workers), who cannot reach pytest's own
    temporary folders: a test bot reports to a file in here."""
    path = Path(tempfile.mkdtemp(prefix="callfleet-bots-"))
    os.chmod(path, 0o733)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def dropped(drop_dir: Path, name: str) -> Path:
    """A fresh path in ``drop_dir`` for a bot to write ``name`` to."""
    return drop_dir / f"{uuid.uuid4().hex[:8]}-{name}"


class FakeSupervisor:
    """The supervisor's side of the worker socket, driven by hand from a test."""

    def __init__(self, tmp: Path) -> None:
        self.endpoint = f"ipc://{tmp}/workers.sock"
        self.ctx = zmq.Context()
        self.channel = Channel(bind_router(self.ctx, self.endpoint), routed=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.next_id = 1

    def spawn(self, worker_id: str = "w1", backend: str = "sandbox", env: dict[str, str] | None = None,
              extra: list[str] | None = None) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "worker", "--connect", self.endpoint,
               "--worker-id", worker_id, "--backend", backend, *(extra or [])]
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    async def recv(self, timeout: float = 10.0) -> Received:
        return await asyncio.wait_for(self.channel.recv(), timeout)

    async def expect(self, kind: type, timeout: float = 10.0) -> Received:
        """Receive until a message of ``kind`` arrives (others are skipped, pongs included)."""
        deadline = time.monotonic() + timeout
        while True:
            got = await self.recv(max(0.01, deadline - time.monotonic()))
            if isinstance(got.message, kind):
                return got

    async def send(self, peer: bytes, msg: msgspec.Struct) -> None:
        await self.channel.send_control(msg, to=peer)

    async def welcome(self, ping_timeout_s: float = 5.0, sessions_per_worker: int = 0) -> bytes:
        from protocol.messages import Hello

        hello = await self.expect(Hello, timeout=20)
        assert hello.peer is not None
        await self.send(hello.peer, Welcome(ping_interval_s=1.0, ping_timeout_s=ping_timeout_s,
                                            sessions_per_worker=sessions_per_worker))
        return hello.peer

    async def command(self, peer: bytes, cmd: Any, timeout: float = 15.0, keepalive: bool = True) -> Any:
        """Send a command and return its reply, pinging meanwhile so the worker stays alive."""
        from protocol.messages import Err, Ok

        await self.send(peer, cmd)
        deadline = time.monotonic() + timeout
        next_ping = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if keepalive and time.monotonic() >= next_ping:
                await self.send(peer, Ping(seq=0, sent_at=time.time()))
                next_ping = time.monotonic() + 1.0
            try:
                got = await self.recv(1.0)
            except TimeoutError:
                continue
            if isinstance(got.message, (Ok, Err)) and got.message.id == cmd.id:
                return got.message
        raise AssertionError(f"no reply to {type(cmd).__name__} within {timeout}s")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
        self.channel.close()
        self.ctx.term()


@pytest.fixture
async def fake_supervisor(tmp_path: Path) -> AsyncIterator[FakeSupervisor]:
    sup = FakeSupervisor(tmp_path)
    try:
        yield sup
    finally:
        sup.close()


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The process's exit code if it exits within ``timeout``, else None."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Any]:
    """The Daily stand-in, in this process, on a free loopback port (rate limits off); its
    ``wall_clock`` is a ``WallClock`` the test may move forward past an expiry."""
    from sandbox.server import Sandbox
    from tests.doubles.wall_clock import WallClock

    sb = Sandbox(rate_limits=False, data_dir=tmp_path / "sandbox", wall_clock=WallClock())
    await sb.start()
    try:
        yield sb
    finally:
        await sb.stop()


class DailyRest:
    """A tiny REST client for tests: returns (status, json body, headers)."""

    def __init__(self, api_url: str, key: str = "test-key") -> None:
        import aiohttp

        self.api_url = api_url
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"})

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        async with self.session.request(method, self.api_url + path, **kwargs) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body, resp.headers

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body, _ = await self.call(method, path, **kwargs)
        assert status == 200, (status, body)
        return body

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def rest(sandbox: Any) -> AsyncIterator[DailyRest]:
    client = DailyRest(sandbox.api_url)
    try:
        yield client
    finally:
        await client.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxProcess:
    """``callfleet sandbox`` in its own process, as operators run it."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "sandbox", "--port", str(self.port), *extra],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        assert "sandbox: REST" in line, line
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_url = self.base_url + "/v1"

    def cpu_seconds(self) -> float:
        from callfleet.procfs import cpu_seconds

        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
async def sandbox_proc(request: pytest.FixtureRequest) -> AsyncIterator[SandboxProcess]:
    """``callfleet sandbox`` as its own process (rate limits off): a test's own, or in a
    module that sets ``ONE_SANDBOX = True`` (its tests each look only at their own rooms and
    sessions) one for the whole module."""
    if getattr(request.module, "ONE_SANDBOX", False):
        yield request.getfixturevalue("module_sandbox")
        return
    sb = SandboxProcess("--no-rate-limits")
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[SandboxProcess]:
    """The one sandbox of a module that sets ``ONE_SANDBOX = True`` (``sandbox_proc``)."""
    sb = SandboxProcess("--no-rate-limits")
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
async def sandbox_rest(sandbox_proc: SandboxProcess) -> AsyncIterator[DailyRest]:
    rest = DailyRest(sandbox_proc.api_url)
    try:
        yield rest
    finally:
        await rest.close()
