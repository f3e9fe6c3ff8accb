"""The speaking window both hosts are measured over, with the same callers.

A synthetic caller joins every session's room and speaks marked 20 ms frames, timing each
echo; at the same moment as many *direct* echoes run inside the sandbox (a caller that
plays back what it hears, no host in between), timed the same way, so that
``added = echo_rtt - direct_rtt`` compares like with like. Each caller starts at a random
phase within one frame period, as independent speakers would. What the host's own
figures need (CPU over the window, memory in the middle) is read through a ``Window``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.progress import Progress
from callfleet.procfs import cpu_seconds, descendants, memory_mb
from sandbox.caller import FRAME_MS, Caller, CallerOptions

FRAME_S = FRAME_MS / 1000
SANDBOX_AUTH = {"Authorization": "Bearer bench"}


class Window:
    """Hooks a host's measurement runs at the window's edges; the default does nothing."""

    async def begin(self) -> None:
        """Just before the first measured frame."""

    async def middle(self) -> None:
        """Once, a little into the window (every session in a call and speaking)."""

    async def tick(self) -> None:
        """About once a second while the callers speak."""

    async def end(self) -> None:
        """Once the last echoes are in."""


@dataclass
class Talk:
    """What the callers measured, and the window's length in seconds."""

    echo_rtts: list[float] = field(default_factory=list)
    direct_rtts: list[float] = field(default_factory=list)
    sent: int = 0
    received: int = 0
    window_s: float = 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.received


async def json_request(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def talk(http: aiohttp.ClientSession, sandbox_api: str, rooms: list[tuple[str, str | None]],
               seconds: float, window: Window, progress: Progress, prefix: str) -> Talk:
    """Join a caller in every ``(room_url, token)`` and a direct echo pair beside each, speak
    for ``seconds`` and leave; raises ``TimeoutError`` if a session never echoes."""
    n = len(rooms)
    progress(f"{prefix}: joining {n} callers and {n} direct echoes")
    direct_rooms = []
    for i in range(n):
        _, room = await json_request(http, "POST", f"{sandbox_api}/rooms", json={"name": f"{prefix}-direct-{i}"},
                                     headers=SANDBOX_AUTH)
        direct_rooms.append(room)
    echo_callers = [Caller(CallerOptions(room_url=url, token=token, seconds=seconds, await_echo=True,
                                         user_name=f"bench-{i}"))
                    for i, (url, token) in enumerate(rooms)]
    mirrors = [Caller(CallerOptions(room_url=r["url"], echo=True, seconds=seconds + 30)) for r in direct_rooms]
    direct_callers = [Caller(CallerOptions(room_url=r["url"], seconds=seconds, await_echo=True))
                      for r in direct_rooms]
    everyone = echo_callers + mirrors + direct_callers
    mirror_tasks: list[asyncio.Future[None]] = []
    try:
        await asyncio.gather(*(c.join() for c in everyone))
        mirror_tasks = [asyncio.ensure_future(m.speak()) for m in mirrors]
        await asyncio.gather(*(c.wait_for_echo() for c in echo_callers + direct_callers))
        for c in echo_callers + direct_callers:
            c.opts.await_echo = False  # warmed up: measure from here
            c.opts.start_offset_s = random.uniform(0, FRAME_S)  # independent speakers, not in lockstep

        progress(f"{prefix}: speaking for {seconds:g} s in {n} sessions and {n} direct rooms")
        await window.begin()
        started = time.monotonic()
        speaking = asyncio.ensure_future(asyncio.gather(*(c.speak() for c in echo_callers + direct_callers)))
        await asyncio.sleep(seconds / 2)  # memory mid-window: a long run reads it settled (page merging takes ~20 s)
        await window.middle()
        while not speaking.done():
            progress(f"{prefix}: speaking... {time.monotonic() - started:.0f}/{seconds:g} s")
            await window.tick()
            await asyncio.sleep(1.0)
        await speaking
        await asyncio.sleep(0.5)  # the last echoes in flight
        elapsed = time.monotonic() - started
        await window.end()
    finally:
        for task in mirror_tasks:
            task.cancel()
        await asyncio.gather(*(c.conn.leave() for c in everyone), return_exceptions=True)
        for room in direct_rooms:
            await json_request(http, "DELETE", f"{sandbox_api}/rooms/{room['name']}", headers=SANDBOX_AUTH)
    return Talk(echo_rtts=[r for c in echo_callers for r in c.rtts_ms],
                direct_rtts=[r for c in direct_callers for r in c.rtts_ms],
                sent=sum(c.frames_sent for c in echo_callers), received=sum(c.echoes for c in echo_callers),
                window_s=elapsed)


class ProcessTreeWindow(Window):
    """A host's CPU over the window and its memory in the middle: ``root`` and every
    process under it (the supervisor, its forkserver and workers; or the peer alone)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.cpu_before: dict[int, float] = {}
        self.started = self.ended = 0.0
        self.cpu_s = 0.0
        self.pss_mb = 0.0

    def tree(self) -> list[int]:
        return [self.root, *descendants(self.root)]

    async def begin(self) -> None:
        self.cpu_before = {p: cpu_seconds(p) for p in self.tree()}
        self.started = time.monotonic()

    async def middle(self) -> None:
        self.pss_mb = sum(mem[0] for mem in (memory_mb(p) for p in self.tree()) if mem is not None)

    async def end(self) -> None:
        self.ended = time.monotonic()
        # A process that ended inside the window takes its CPU with it; none should.
        self.cpu_s = sum(cpu_seconds(p) - self.cpu_before.get(p, 0.0) for p in self.tree())

    def figures(self, sessions: int) -> dict[str, float | None]:
        """``cpu_s_per_session_minute`` and ``pss_mb_per_session`` for ``sessions`` calls."""
        minutes = (self.ended - self.started) / 60
        return {
            "cpu_s_per_session_minute": round(self.cpu_s / (sessions * minutes), 3) if minutes > 0 else None,
            "pss_mb_per_session": round(self.pss_mb / sessions, 2) if self.pss_mb else None,
        }
