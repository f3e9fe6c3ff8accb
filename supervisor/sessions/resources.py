"""Each live session's worker, sampled: its CPU and its memory (PSS), into the session detail's
``resources`` -- Pipecat Cloud's per-session CPU and memory graphs.

One timer for every session (``ResourceSampler``): every ``INTERVAL_S`` the pids of the live
sessions' workers are read off the loop, in one thread hop. ``cpu_s`` is the CPU the worker
spent since the session's first sample (a worker's boot is not the session's); ``cpu_percent``
is over the last interval (100 = one core). ``samples`` keeps the last ``SAMPLES_KEPT``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from callfleet.procfs import cpu_seconds, memory_mb, rss_mb

log = structlog.get_logger("supervisor.resources")

INTERVAL_S = 5.0
SAMPLES_KEPT = 720  # an hour at INTERVAL_S


class SessionResources:
    """One session's samples (on the supervisor's loop)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self._first_cpu: float | None = None
        self._last: tuple[float, float] | None = None  # (monotonic time, cpu seconds)
        self.cpu_s = 0.0
        self.cpu_percent: float | None = None
        self.pss_mb: float | None = None
        self.samples: deque[tuple[float, float | None, float]] = deque(maxlen=SAMPLES_KEPT)

    def add(self, pid: int, at: float, cpu: float, pss_mb: float) -> None:
        """One reading of the session's worker ``pid`` (a failover's new worker starts over)."""
        if pid != self.pid:
            self.pid, self._first_cpu, self._last = pid, cpu - self.cpu_s, None
        now = time.monotonic()
        assert self._first_cpu is not None
        self.cpu_s = cpu - self._first_cpu
        if self._last is not None and now > self._last[0]:
            self.cpu_percent = round(100 * (cpu - self._last[1]) / (now - self._last[0]), 1)
        self._last = (now, cpu)
        self.pss_mb = round(pss_mb, 1)
        self.samples.append((round(at, 3), self.cpu_percent, self.pss_mb))

    def view(self) -> dict[str, Any]:
        return {"cpu_s": round(self.cpu_s, 3), "cpu_percent": self.cpu_percent, "pss_mb": self.pss_mb,
                "samples": [list(s) for s in self.samples]}


def empty_resources() -> dict[str, Any]:
    """``resources`` of a session never sampled (it ended within the first interval)."""
    return SessionResources().view()


def read(pids: Mapping[str, int]) -> dict[str, tuple[float, float]]:
    """session id -> (CPU seconds, PSS MB) of its worker; a worker that is gone is left out.
    PSS falls back to RSS where the worker's mappings cannot be read (a supervisor without
    CAP_SYS_PTRACE over workers of another user)."""
    out: dict[str, tuple[float, float]] = {}
    for sid, pid in pids.items():
        mem = memory_mb(pid)
        pss = mem[0] if mem is not None else rss_mb(pid)
        if pss is None:
            continue
        out[sid] = (cpu_seconds(pid), pss)
    return out


class ResourceSampler:
    """The one timer that samples every live session's worker."""

    def __init__(self, live: Callable[[], Iterable[Any]]) -> None:
        self._live = live  # the live sessions: each with .id, .worker (.pid) and .keeper.resources
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="session-resources")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            try:
                await self.sample()
            except Exception:  # a sampler that fails must not stop sampling
                log.exception("sampling the sessions' workers failed")

    async def sample(self) -> None:
        sessions = {s.id: s for s in self._live()}
        pids = {sid: s.worker.pid for sid, s in sessions.items() if s.worker is not None and s.worker.pid}
        if not pids:
            return
        at = time.time()
        readings = await asyncio.to_thread(read, pids)
        for sid, (cpu, pss) in readings.items():
            session = sessions[sid]
            if session.worker is not None and session.worker.pid == pids[sid]:
                session.keeper.resources.add(pids[sid], at, cpu, pss)
