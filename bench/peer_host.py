"""The peer's figures: the same Pipecat bot hosted as Pipecat's development runner hosts
it (``bench.peer``, one process, a task per session), on the bench's sandbox, with the
same lone starts, burst, callers and window as callfleet.

Start latency runs from sending ``POST /start`` (the peer creates the room and token
through the sandbox's REST API, as the runner's ``/start`` does, then starts
``bot(runner_args)`` as a task) to the bot's transport joining (noted in the peer, on its
``_on_joined``). Leaks: bot tasks still running once every caller left (the bot ends
when its caller leaves), processes under the peer, and rooms the peer left in the
sandbox (the runner never deletes its rooms; Daily expires them after 2 h).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp

from bench.progress import Progress
from bench.report import host_report
from bench.stack import Stack, free_port
from bench.talk import SANDBOX_AUTH, ProcessTreeWindow, json_request, talk
from callfleet.procfs import descendants, memory_mb

LONE_STARTS = 3
JOIN_TIMEOUT_S = 60.0


class PeerProcess:
    """``python -m bench.peer`` on a free port, run from the stack's checkout."""

    def __init__(self, stack: Stack, bot: str) -> None:
        self.stack = stack
        self.bot = bot
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = stack.tmp / "peer.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start it and wait until it listens; raises ``RuntimeError`` if it exits first."""
        # The runner reads the Daily API's URL and key from the environment, as here.
        env = {**os.environ, "PYTHONPATH": str(self.stack.repo), "DAILY_API_URL": self.stack.sandbox_api,
               "DAILY_API_KEY": "bench"}
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.peer", "--bot", self.bot,
                                          "--port", str(self.port)],
                                         stdout=subprocess.PIPE, stderr=log, env=env, cwd=self.stack.repo)
        assert self.proc.stdout is not None
        if "listening" not in self.proc.stdout.readline().decode():
            self.stop()
            raise RuntimeError(f"the peer did not start:\n{self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _start(http: aiohttp.ClientSession, peer: PeerProcess) -> tuple[float, dict[str, Any]]:
    """The runner's ``/start`` with a Daily room: (when it was sent, its reply)."""
    sent = time.time()
    status, body = await json_request(http, "POST", f"{peer.url}/start",
                                      json={"createDailyRoom": True, "body": {}})
    if status != 200:
        raise RuntimeError(f"the peer's /start answered {status}: {body}")
    return sent, body


async def _joined_at(http: aiohttp.ClientSession, peer: PeerProcess, session_id: str) -> float:
    """When the session's bot joined; raises ``RuntimeError`` if it ended or never joined."""
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while True:
        _, view = await json_request(http, "GET", f"{peer.url}/sessions/{session_id}")
        if view["joined_at"]:
            return float(view["joined_at"])
        if not view["running"] or time.monotonic() > deadline:
            raise RuntimeError(f"the peer's bot did not join: {view}")
        await asyncio.sleep(0.05)


async def measure_peer(stack: Stack, n: int, seconds: float, progress: Progress, bot: str) -> dict[str, Any]:
    """The peer's figures for ``n`` sessions of ``bot`` on the stack's sandbox (whose
    supervisor, if any, has stopped). Raises ``RuntimeError`` if the peer or a bot fails."""
    peer = PeerProcess(stack, bot)
    async with aiohttp.ClientSession() as http:
        _, listed = await json_request(http, "GET", f"{stack.sandbox_api}/rooms", headers=SANDBOX_AUTH)
        rooms_before = int(listed.get("total_count", 0))
        progress("peer: starting Pipecat's runner stand-in (one process, a task per session)")
        peer.start()
        try:
            await asyncio.sleep(1.0)
            mem = memory_mb(peer.pid)
            pss_idle = round(mem[0], 1) if mem else None

            progress(f"peer: {LONE_STARTS} lone starts, one at a time")
            alone = []
            for _ in range(LONE_STARTS):
                sent, body = await _start(http, peer)
                alone.append((await _joined_at(http, peer, body["sessionId"]) - sent) * 1000)
                await json_request(http, "DELETE", f"{peer.url}/sessions/{body['sessionId']}")

            progress(f"peer: starting {n} sessions at once")
            started = await asyncio.gather(*(_start(http, peer) for _ in range(n)))
            latencies = [(await _joined_at(http, peer, body["sessionId"]) - sent) * 1000 for sent, body in started]

            window = ProcessTreeWindow(peer.pid)
            said = await talk(http, stack.sandbox_api, [(b["dailyRoom"], b["dailyToken"]) for _, b in started],
                              seconds, window, progress, "peer")

            progress("peer: every caller left; waiting for the bots to end, checking for leaks")
            deadline = time.monotonic() + 30
            while True:
                _, running = await json_request(http, "GET", f"{peer.url}/sessions")
                if not running["running"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            processes = len(descendants(peer.pid))
        finally:
            peer.stop()
        _, listed = await json_request(http, "GET", f"{stack.sandbox_api}/rooms", headers=SANDBOX_AUTH)

    in_call = window.pss_mb
    return {
        **host_report(n, seconds, latencies, alone, said, window.figures(n)),
        "process_pss_mb": {"idle": pss_idle, "in_call": round(in_call, 1) if in_call else None},
        "leaks": {"processes": processes, "sessions": int(running["running"]),
                  "rooms": int(listed.get("total_count", 0)) - rooms_before},
    }
