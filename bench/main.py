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

The report is JSON with exactly the keys of SPEC §9, plus a short human summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from callfleet.procfs import cmdline, cpu_seconds, descendants, memory_mb, thread_cpu_seconds
from sandbox.caller import FRAME_MS, Caller, CallerOptions, percentile

FRAME_S = FRAME_MS / 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Progress:
    """One status line that rewrites itself on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


class Stack:
    """A sandbox and a supervisor, started for the bench and torn down after it."""

    def __init__(self, sessions: int) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="callfleet-bench-"))
        self.sandbox_port = _free_port()
        self.http_port = _free_port()
        self.sessions = sessions
        self.sandbox: subprocess.Popen[bytes] | None = None
        self.supervisor: subprocess.Popen[bytes] | None = None
        self.api = f"http://127.0.0.1:{self.http_port}"
        self.sandbox_api = f"http://127.0.0.1:{self.sandbox_port}/v1"
        self.run_dir = self.tmp / "run"

    def config(self) -> str:
        repo_profiles = Path(__file__).resolve().parent.parent / "configs" / "profiles.toml"
        n = self.sessions
        return f"""
[supervisor]
http_port = {self.http_port}
run_dir = "{self.run_dir}"
profiles = "{repo_profiles}"

[pool]
min_idle = {n}
max_workers = {n + 2}
sessions_per_worker = 1
ping_interval_s = 1.0
ping_timeout_s = 10.0
start_timeout_s = 60.0

[daily]
mode = "sandbox"
requests_per_second = 1000
room_pool = {n}

[sessions]
idle_timeout_s = 600
join_timeout_s = 30

[sandbox]
port = {self.sandbox_port}
start = false
"""

    def start(self) -> None:
        env = {**os.environ, "CALLFLEET_LOG_LEVEL": "warning"}
        self.sandbox = subprocess.Popen(
            [sys.executable, "-m", "callfleet.cli", "sandbox", "--port", str(self.sandbox_port), "--no-rate-limits",
             "--data-dir", str(self.tmp / "sandbox")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        assert self.sandbox.stdout is not None
        self.sandbox.stdout.readline()
        config = self.tmp / "bench.toml"
        config.write_text(self.config())
        self.supervisor = subprocess.Popen(
            [sys.executable, "-m", "callfleet.cli", "supervisor", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=open(self.tmp / "supervisor.log", "w"), env=env)
        assert self.supervisor.stdout is not None
        line = self.supervisor.stdout.readline().decode()
        if "HTTP API" not in line:
            raise RuntimeError(f"the supervisor did not start:\n{(self.tmp / 'supervisor.log').read_text()[-2000:]}")

    def stop(self) -> None:
        for proc in (self.supervisor, self.sandbox):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


async def _json(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with http.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


def _pcts(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(percentile(ordered, 50), 3), "p99": round(percentile(ordered, 99), 3)}


async def run_bench(sessions: int, seconds: float, progress: Progress) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SPEC §9 report, and diagnostics for the human summary (where the CPU went)."""
    stack = Stack(sessions)
    stack.start()
    try:
        return await _measure(stack, sessions, seconds, progress)
    finally:
        stack.stop()


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
                if detail.get("state") in ("ended", "failed"):
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
        _, metrics_before = await _metrics(http, stack.api)
        cpu_before = cpu_seconds(sup_pid)
        breakdown_before = _cpu_breakdown(stack)
        window = time.monotonic()
        speaking = asyncio.ensure_future(asyncio.gather(*(c.speak() for c in echo_callers + direct_callers)))
        await asyncio.sleep(min(seconds / 2, 5))
        in_call_pss = _worker_pss(sup_pid, only=set(descendants(sup_pid)) - set(idle_pids)) or _worker_pss(sup_pid)
        t0 = time.monotonic()
        while not speaking.done():
            progress(f"speaking... {time.monotonic() - t0 + min(seconds / 2, 5):.0f}/{seconds:g} s")
            await asyncio.sleep(1.0)
        await speaking
        await asyncio.sleep(0.5)  # the last echoes in flight
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
            live = [s for s in listing["data"] if s["state"] not in ("ended", "failed")]
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

    echo_p, direct_p = _pcts(echo_rtts), _pcts(direct_rtts)
    diagnostics = {
        "cores": {k: round(v / window, 2) for k, v in breakdown.items() if not k.startswith("supervisor ")},
        "supervisor_us_per_frame_by_thread": {k.removeprefix("supervisor "): round(v / routed * 1e6, 1)
                                              for k, v in breakdown.items() if k.startswith("supervisor ") and routed},
    }
    report = {
        "sessions": n,
        "seconds": seconds,
        "start_latency_ms": _pcts(latencies),
        "echo_rtt_ms": echo_p,
        "direct_rtt_ms": direct_p,
        "added_latency_ms": {k: round(echo_p[k] - direct_p[k], 3) for k in ("p50", "p99")},
        "frames": {"sent": sent, "received": received, "lost": sent - received},
        "supervisor_cpu_us_per_frame": round(cpu / routed * 1e6, 2) if routed else None,
        "worker_pss_mb": {"idle": worker_pss_idle, "in_call": in_call_pss},
        "leaks": {"processes": leaked_processes, "rooms": rooms.get("total_count", -1)},
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


def summary(report: dict[str, Any], diagnostics: dict[str, Any]) -> str:
    r, d = report, diagnostics
    return "\n".join([
        f"callfleet bench: {r['sessions']} echo sessions, {r['seconds']:g} s of speech each",
        f"  start latency    p50 {r['start_latency_ms']['p50']:.1f} ms   p99 {r['start_latency_ms']['p99']:.1f} ms",
        f"  echo rtt         p50 {r['echo_rtt_ms']['p50']:.2f} ms   p99 {r['echo_rtt_ms']['p99']:.2f} ms",
        f"  direct rtt       p50 {r['direct_rtt_ms']['p50']:.2f} ms   p99 {r['direct_rtt_ms']['p99']:.2f} ms",
        f"  added latency    p50 {r['added_latency_ms']['p50']:.2f} ms   p99 {r['added_latency_ms']['p99']:.2f} ms",
        f"  frames           sent {r['frames']['sent']}  received {r['frames']['received']}  lost {r['frames']['lost']}",
        f"  supervisor CPU   {r['supervisor_cpu_us_per_frame']} us per routed frame",
        f"  worker PSS       idle {r['worker_pss_mb']['idle']} MB   in call {r['worker_pss_mb']['in_call']} MB",
        f"  leaks            processes {r['leaks']['processes']}  rooms {r['leaks']['rooms']}",
        "  supervisor CPU by thread, us per frame: "
        + ", ".join(f"{k} {v}" for k, v in d["supervisor_us_per_frame_by_thread"].items()),
        "  cores in use     " + ", ".join(f"{k} {v:.2f}" for k, v in d["cores"].items()) + f" (of {os.cpu_count()})",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callfleet bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", action="store_true", default=True,
                        help="send every /bots/start at once (the default; kept for the documented CLI)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    ns = parser.parse_args(argv)
    if ns.sessions < 1 or ns.seconds <= 0:
        print("callfleet bench: --sessions must be >= 1 and --seconds > 0", file=sys.stderr)
        return 2
    import uvloop

    report, diagnostics = uvloop.run(run_bench(ns.sessions, ns.seconds, Progress()))
    text = json.dumps(report, indent=2)
    if ns.out:
        ns.out.write_text(text + "\n")
    print(text)
    print(summary(report, diagnostics))
    return 0
