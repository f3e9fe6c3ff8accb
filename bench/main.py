"""``callfleet bench``: measure the orchestrator, side by side with a baseline, in one run.

It starts ``callfleet sandbox`` and ``callfleet supervisor`` as their own processes on free
loopback ports with a temporary run_dir (so each one's CPU can be read from /proc), then:

1. **start latency** -- N ``POST /bots/start`` (echo) sent at once, each timed from the
   request to the session's ``joined_at``;
2. **added latency** -- a synthetic caller in every session speaks marked 20 ms frames
   and times each echo; at the same moment N *direct* echoes run inside the sandbox (a
   caller that plays back what it hears, no orchestrator) and are timed the same way:
   ``added = echo_rtt - direct_rtt``, percentile by percentile. Each caller starts at a
   random phase within one 20 ms frame, as independent speakers would;
3. **frames** sent, echoed and lost; **supervisor CPU per routed frame** (its /proc CPU time
   over the speaking window divided by the frames it routed); **worker PSS** idle and in a
   call (``smaps_rollup``); **leaks** once every session is stopped (processes beyond the
   idle pool; rooms left in the sandbox after the supervisor's clean stop, which deletes
   its room pool).

The supervisor runs with ``room_pool = N``: rooms and default tokens are made ahead, as a
production deployment would, so start latency measures the warm path.

Two more figures, beside the keys of SPEC §9:

4. ``forwarding_floor_us_per_frame`` -- before the sessions, the bare ZeroMQ ROUTER floor
   (``bench.floor``, reader mode, one peer per session, 3 s): what forwarding alone costs
   on this machine right now, to read ``supervisor_cpu_us_per_frame`` against;
5. ``loop_stall_ms_max`` -- the worst lateness of the supervisor's event loop
   (``supervisor.loop_probe``) during the speaking window only: the bench polls ``status``
   on the control socket once a second and keeps the per-second maxima whose second
   overlaps the window (so up to a second either side; start-up is never in it). ``null``
   for a supervisor without the probe. Beside it ``loop_busy_ms_max``: of that lateness,
   the most that can be the loop's own work (the loop thread's CPU time bounds it); the
   rest is the machine's cores being taken by others.

The report is JSON plus a short human summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.floor import ForwardMode, forward
from bench.report import Progress, pcts, summary
from bench.stack import REPO, Stack
from callfleet.procfs import cmdline, cpu_seconds, descendants, memory_mb, thread_cpu_seconds
from sandbox.caller import FRAME_MS, Caller, CallerOptions
from supervisor.ctl import request
from supervisor.session_state import SessionState

FRAME_S = FRAME_MS / 1000
FLOOR_SECONDS = 3.0


class LoopStallReader:
    """The supervisor's per-second loop lateness (``status`` → ``loop_stall_ms_recent``),
    collected over the control socket so that a window of any length can be read."""

    def __init__(self, control_path: Path, key: str = "loop_stall_ms_recent") -> None:
        self.control_path = control_path
        self.key = key
        self.by_second: dict[float, float] = {}
        self.available = True

    async def poll(self) -> None:
        """Merge the seconds the supervisor still remembers; raises ``ConnectionError`` if it
        does not answer."""
        reply = await asyncio.to_thread(request, self.control_path, "status", {})
        recent = (reply.get("result") or {}).get(self.key)
        if recent is None:
            self.available = False  # a supervisor from before the probe
            return
        for second, ms in recent:
            self.by_second[second] = max(self.by_second.get(second, 0.0), ms)

    def window_max(self, start: float, end: float) -> float | None:
        """Worst lateness in ms over the seconds that overlap [start, end] (monotonic)."""
        if not self.available:
            return None
        return max((ms for s, ms in self.by_second.items() if s + 1 > start and s <= end), default=0.0)


async def _json(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with http.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def run_bench(sessions: int, seconds: float, progress: Progress,
                    repo: Path = REPO) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report (SPEC §9's keys, the forwarding floor and the loop stall), and diagnostics
    for the human summary (where the CPU went). Raises ``RuntimeError`` if the stack fails."""
    # The floor first, alone: not concurrently with the sessions, and before this process
    # holds any socket or thread its forked peers would inherit.
    progress(f"forwarding floor: a bare ROUTER, {sessions} peers, {FLOOR_SECONDS:g} s")
    floor = await forward(ForwardMode.READER, sessions, FLOOR_SECONDS)
    stack = Stack(sessions, repo)
    stack.start()
    try:
        report, diagnostics = await _measure(stack, sessions, seconds, progress)
    finally:
        stack.stop()
    report["forwarding_floor_us_per_frame"] = floor.us_per_frame
    diagnostics["floor"] = floor
    return report, diagnostics


async def _measure(stack: Stack, n: int, seconds: float, progress: Progress) -> tuple[dict[str, Any], dict[str, Any]]:
    assert stack.supervisor is not None
    sup_pid = stack.supervisor.pid
    sandbox_auth = {"Authorization": "Bearer bench"}
    async with aiohttp.ClientSession() as http:
        progress(f"warming {n} workers")
        deadline = time.monotonic() + 120
        while True:
            _, health = await _json(http, "GET", f"{stack.api}/healthz")
            if health.get("workers", {}).get("idle", 0) >= n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {health.get('workers')} workers after 120 s")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        idle_pids = [p for p in descendants(sup_pid) if _pss(p) is not None]
        worker_pss_idle = _worker_pss(sup_pid)

        progress(f"starting {n} sessions at once")
        async def start_one() -> tuple[float, dict[str, Any]]:
            sent = time.time()
            status, body = await _json(http, "POST", f"{stack.api}/bots/start", json={"bot_profile": "echo"})
            if status != 200:
                raise RuntimeError(f"/bots/start answered {status}: {body}")
            return sent, body
        started = await asyncio.gather(*(start_one() for _ in range(n)))
        latencies = []
        for sent, body in started:
            while True:
                _, detail = await _json(http, "GET", f"{stack.api}/sessions/{body['session_id']}")
                if detail.get("joined_at"):
                    latencies.append((detail["joined_at"] - sent) * 1000)
                    break
                if SessionState(detail["state"]).finished:
                    raise RuntimeError(f"session failed to start: {detail}")
                await asyncio.sleep(0.05)

        progress(f"joining {n} callers and {n} direct echoes")
        direct_rooms = []
        for i in range(n):
            _, room = await _json(http, "POST", f"{stack.sandbox_api}/rooms", json={"name": f"bench-direct-{i}"},
                                  headers=sandbox_auth)
            direct_rooms.append(room)
        echo_callers = [Caller(CallerOptions(room_url=b["room_url"], token=b["token"], seconds=seconds,
                                             await_echo=True, user_name=f"bench-{i}"))
                        for i, (_, b) in enumerate(started)]
        mirrors = [Caller(CallerOptions(room_url=r["url"], echo=True, seconds=seconds + 30)) for r in direct_rooms]
        direct_callers = [Caller(CallerOptions(room_url=r["url"], seconds=seconds, await_echo=True))
                          for r in direct_rooms]
        everyone = echo_callers + mirrors + direct_callers
        await asyncio.gather(*(c.join() for c in everyone))
        mirror_tasks = [asyncio.ensure_future(m.speak()) for m in mirrors]
        await asyncio.gather(*(c.wait_for_echo() for c in echo_callers + direct_callers))
        for c in echo_callers + direct_callers:
            c.opts.await_echo = False  # warmed up: measure from here
            c.opts.start_offset_s = random.uniform(0, FRAME_S)  # independent speakers, not in lockstep

        progress(f"speaking for {seconds:g} s in {n} sessions and {n} direct rooms")
        stalls = LoopStallReader(stack.control_path)
        busy = LoopStallReader(stack.control_path, "loop_busy_ms_recent")
        _, metrics_before = await _metrics(http, stack.api)
        cpu_before = cpu_seconds(sup_pid)
        breakdown_before = _cpu_breakdown(stack)
        window = window_start = time.monotonic()
        speaking = asyncio.ensure_future(asyncio.gather(*(c.speak() for c in echo_callers + direct_callers)))
        await asyncio.sleep(min(seconds / 2, 5))
        in_call_pss = _worker_pss(sup_pid, only=set(descendants(sup_pid)) - set(idle_pids)) or _worker_pss(sup_pid)
        t0 = time.monotonic()
        while not speaking.done():
            progress(f"speaking... {time.monotonic() - t0 + min(seconds / 2, 5):.0f}/{seconds:g} s")
            await stalls.poll()
            await busy.poll()
            await asyncio.sleep(1.0)
        await speaking
        await asyncio.sleep(0.5)  # the last echoes in flight
        await stalls.poll()
        await busy.poll()
        loop_stall_ms_max = stalls.window_max(window_start, time.monotonic())
        loop_busy_ms_max = busy.window_max(window_start, time.monotonic())
        cpu = cpu_seconds(sup_pid) - cpu_before
        window = time.monotonic() - window
        breakdown = {k: v - breakdown_before.get(k, 0.0) for k, v in _cpu_breakdown(stack).items()}
        _, metrics_after = await _metrics(http, stack.api)
        routed = metrics_after - metrics_before

        echo_rtts = [r for c in echo_callers for r in c.rtts_ms]
        direct_rtts = [r for c in direct_callers for r in c.rtts_ms]
        sent = sum(c.frames_sent for c in echo_callers)
        received = sum(c.echoes for c in echo_callers)

        progress("stopping every session, checking for leaks")
        for task in mirror_tasks:
            task.cancel()
        await asyncio.gather(*(c.conn.leave() for c in everyone), return_exceptions=True)
        for _, body in started:
            await _json(http, "DELETE", f"{stack.api}/sessions/{body['session_id']}")
        for room in direct_rooms:
            await _json(http, "DELETE", f"{stack.sandbox_api}/rooms/{room['name']}", headers=sandbox_auth)
        deadline = time.monotonic() + 30
        while True:
            _, listing = await _json(http, "GET", f"{stack.api}/sessions")
            live = [s for s in listing["data"] if not SessionState(s["state"]).finished]
            if not live or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # recycled workers exit, the pool refills to min_idle
        _, health = await _json(http, "GET", f"{stack.api}/healthz")
        helpers = [p for p in descendants(sup_pid) if "forkserver" in cmdline(p) or "resource_tracker" in cmdline(p)]
        workers_left = [w for f in helpers for w in descendants(f)]
        others = [p for p in descendants(sup_pid) if p not in helpers and p not in workers_left]
        leaked_processes = max(0, len(workers_left) - n) + len(others)  # beyond the idle pool
        # Rooms are counted once the supervisor has stopped cleanly: until then the room pool's
        # ready rooms are in the sandbox by design.
        stack.supervisor.terminate()
        await asyncio.to_thread(stack.supervisor.wait, 60)
        _, rooms = await _json(http, "GET", f"{stack.sandbox_api}/rooms", headers=sandbox_auth)
        progress.done()

    echo_p, direct_p = pcts(echo_rtts), pcts(direct_rtts)
    diagnostics = {
        "cores": {k: round(v / window, 2) for k, v in breakdown.items() if not k.startswith("supervisor ")},
        "supervisor_us_per_frame_by_thread": {k.removeprefix("supervisor "): round(v / routed * 1e6, 1)
                                              for k, v in breakdown.items() if k.startswith("supervisor ") and routed},
    }
    report = {
        "sessions": n,
        "seconds": seconds,
        "start_latency_ms": pcts(latencies),
        "echo_rtt_ms": echo_p,
        "direct_rtt_ms": direct_p,
        "added_latency_ms": {k: round(echo_p[k] - direct_p[k], 3) for k in ("p50", "p99")},
        "frames": {"sent": sent, "received": received, "lost": sent - received},
        "supervisor_cpu_us_per_frame": round(cpu / routed * 1e6, 2) if routed else None,
        "worker_pss_mb": {"idle": worker_pss_idle, "in_call": in_call_pss},
        "leaks": {"processes": leaked_processes, "rooms": rooms.get("total_count", -1)},
        "loop_stall_ms_max": loop_stall_ms_max,
        "loop_busy_ms_max": loop_busy_ms_max,
    }
    return report, diagnostics


async def _metrics(http: aiohttp.ClientSession, api: str) -> tuple[int, float]:
    async with http.get(f"{api}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("callfleet_frames_routed_total"):
            return resp.status, float(line.split()[-1])
    return resp.status, 0.0


def _worker_pss(sup_pid: int, only: set[int] | None = None) -> float | None:
    """Median PSS of the worker processes (the forkserver's children), or of those in ``only``."""
    forkservers = [p for p in descendants(sup_pid) if "forkserver" in cmdline(p)]
    workers = [c for f in forkservers for c in descendants(f) if only is None or c in only]
    values = [v for v in (_pss(p) for p in workers) if v is not None]
    return round(statistics.median(values), 1) if values else None


def _cpu_breakdown(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of the supervisor (and of each of its threads), the sandbox, all
    workers, and this process (the callers)."""
    assert stack.supervisor is not None and stack.sandbox is not None
    sup = stack.supervisor.pid
    forkservers = [p for p in descendants(sup) if "forkserver" in cmdline(p)]
    workers = [w for f in forkservers for w in descendants(f)]
    out = {"supervisor": cpu_seconds(sup), "sandbox": cpu_seconds(stack.sandbox.pid),
           "bench callers": cpu_seconds(os.getpid()), "workers": sum(cpu_seconds(p) for p in workers)}
    for name, used in thread_cpu_seconds(sup).items():
        kind = "zmq io" if name.startswith("ZMQbg") else "python"  # libzmq's I/O (and idle reaper) threads
        out[f"supervisor {kind}"] = out.get(f"supervisor {kind}", 0.0) + used
    return out


def _pss(pid: int) -> float | None:
    mem = memory_mb(pid)
    return None if mem is None else mem[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callfleet bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", action="store_true", default=True,
                        help="send every /bots/start at once (the default; kept for the documented CLI)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="run the sandbox and supervisor from this checkout (default: the bench's own)")
    ns = parser.parse_args(argv)
    if ns.sessions < 1 or ns.seconds <= 0:
        print("callfleet bench: --sessions must be >= 1 and --seconds > 0", file=sys.stderr)
        return 2
    import uvloop

    report, diagnostics = uvloop.run(run_bench(ns.sessions, ns.seconds, Progress(), ns.repo))
    text = json.dumps(report, indent=2)
    if ns.out:
        ns.out.write_text(text + "\n")
    print(text)
    print(summary(report, diagnostics))
    return 0
