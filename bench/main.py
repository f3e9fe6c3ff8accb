"""``callfleet bench``: measure the orchestrator, side by side with a baseline, in one run.

It starts ``callfleet sandbox`` and ``callfleet supervisor`` as their own processes on free
loopback ports with a temporary run_dir (so each one's CPU can be read from /proc), then:

1. **start latency** -- N ``POST /bots/start`` (``--profile``, echo by default) sent at
   once, each timed from the request to the session's ``joined_at``; before them, a few
   lone starts one at a time (``start_alone_ms``);
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

Two more figures, beside the report's fixed keys (those of items 1-3):

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

6. ``cpu_s_per_session_minute`` and ``pss_mb_per_session`` -- the whole host (the
   supervisor and every process under it) over the speaking window, and in its middle.

For a ``pipecat`` profile the same run then measures **the peer** (``bench.peer_host``):
the same bot hosted as Pipecat's development runner hosts it, every session an asyncio
task in one process, on the same sandbox with the same callers and N, after callfleet's
supervisor has stopped (never both at once: the machine's cores would be shared). Its
figures go under ``"peer"`` with the same keys where they apply.

``--transport twilio`` measures phone calls instead (``bench.phone_hosts``, ``bench.phone``):
every session is a call over Twilio Media Streams, started with ``POST /start
{"transport": "websocket"}`` and streamed to its ``wsUrl`` by a phone speaking marked μ-law
chunks in real time; start latency runs to the first echoed chunk heard, the direct round
trip is the same phones on a loopback Media Streams echo (no bot), and the peer serves the
same bot on the development runner's Twilio shape (``POST /`` → TwiML → ``/ws``, a task per
call). Its default profile is ``phone_echo`` of ``bench/phone_profiles.toml``
(``tests/bots/phone_echo.py``, a ``create_transport`` echo bot).

The report is JSON plus a short human summary. Each host's report keeps its raw samples
(``samples``: every start and every round trip) beside the percentiles. ``--sessions 5,10,20``
runs the whole bench once per N, one after the other, and reports ``{"runs": [...]}``;
``--plot FILE.png`` draws the distributions and, with several N, the capacity curve
(``bench.plot``; matplotlib is the optional extra ``plot``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from bench.floor import ForwardMode, forward
from bench.peer_host import measure_peer
from bench.phone import BenchPhone, phone_talk
from bench.phone_hosts import burst, lone_starts, measure_peer_phone, start_callfleet_call
from bench.plot import PlotUnavailable, draw, require_matplotlib
from bench.progress import Progress
from bench.report import host_report, summary
from bench.stack import REPO, Stack
from bench.talk import SANDBOX_AUTH, ProcessTreeWindow, json_request, talk
from callfleet.procfs import cmdline, cpu_seconds, descendants, memory_mb, thread_cpu_seconds
from supervisor.ctl import request
from supervisor.sessions.state import SessionState

FLOOR_SECONDS = 3.0
LONE_STARTS = 3  # one session alone, before the burst: its p50 is the warm path's floor


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


class Profile(msgspec.Struct, frozen=True):
    """A profile of the checkout's ``configs/profiles.toml``, as far as the bench needs it."""

    name: str
    kind: str
    bot: str | None = None  # a pipecat profile's bot spec, relative to the checkout

    @property
    def hosts_a_pipecat_bot(self) -> bool:
        return self.kind == "pipecat"


def load_profile(path: Path, name: str) -> Profile:
    """The profile ``name`` of the profiles file ``path``; raises ``KeyError`` naming it if
    it has none such."""
    with open(path, "rb") as f:
        profiles = tomllib.load(f).get("profiles", {})
    if name not in profiles:
        raise KeyError(f"no profile {name!r} in {path} (there are: {', '.join(sorted(profiles))})")
    entry = profiles[name]
    return Profile(name=name, kind=str(entry.get("kind", "")), bot=entry.get("bot"))


async def run_bench(sessions: int, seconds: float, progress: Progress, repo: Path = REPO,
                    profile_name: str = "echo", profiles: Path | None = None,
                    transport: str = "daily", merge_pages: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report (its fixed keys, the forwarding floor and the loop stall; for a pipecat
    profile the peer's figures under ``"peer"``), and diagnostics for the human summary.
    Raises ``RuntimeError`` if the stack fails, ``KeyError`` for an unknown profile."""
    profiles = profiles or repo / "configs" / "profiles.toml"
    profile = load_profile(profiles, profile_name)
    # The floor first, alone: not concurrently with the sessions, and before this process
    # holds any socket or thread its forked peers would inherit.
    progress(f"forwarding floor: a bare ROUTER, {sessions} peers, {FLOOR_SECONDS:g} s")
    floor = await forward(ForwardMode.READER, sessions, FLOOR_SECONDS)
    stack = Stack(sessions, repo, profiles, profile_name, merge_pages)
    stack.start()
    try:
        if transport == "twilio":
            report, diagnostics = await measure_callfleet_phone(stack, sessions, seconds, progress, profile)
        else:
            report, diagnostics = await measure_callfleet(stack, sessions, seconds, progress, profile)
        # Callfleet first, then the peer on the same sandbox: the supervisor has stopped
        # cleanly by now (nothing of it runs beside the peer), and the rooms the peer leaves
        # behind, as Pipecat's runner does, cannot count against callfleet's room leaks.
        if profile.hosts_a_pipecat_bot:
            assert profile.bot is not None
            measure = measure_peer_phone if transport == "twilio" else measure_peer
            report["peer"] = await measure(stack, sessions, seconds, progress, profile.bot)
        progress.done()
    finally:
        stack.stop()
    report["forwarding_floor_us_per_frame"] = floor.us_per_frame
    diagnostics["floor"] = floor
    return report, diagnostics


class CallfleetWindow(ProcessTreeWindow):
    """The supervisor's own figures over the speaking window, beside the whole tree's."""

    def __init__(self, stack: Stack, http: aiohttp.ClientSession) -> None:
        assert stack.supervisor is not None
        super().__init__(stack.supervisor.pid)
        self.stack, self.http = stack, http
        self.stalls = LoopStallReader(stack.control_path)
        self.busy = LoopStallReader(stack.control_path, "loop_busy_ms_recent")
        self.routed_before = self.sup_cpu_before = 0.0
        self.routed = self.sup_cpu = 0.0
        self.breakdown_before: dict[str, float] = {}
        self.breakdown: dict[str, float] = {}
        self.in_call_pss: float | None = None
        self.loop_stall_ms_max: float | None = None
        self.loop_busy_ms_max: float | None = None

    async def begin(self) -> None:
        _, self.routed_before = await _metrics(self.http, self.stack.api)
        self.sup_cpu_before = cpu_seconds(self.root)
        self.breakdown_before = _cpu_breakdown(self.stack)
        await super().begin()

    async def middle(self) -> None:
        await super().middle()
        # The workers hosting a session, as the supervisor says: not the processes new since
        # the burst, which are the pool's refill (idle), while the warm ones took the calls.
        self.in_call_pss = (_worker_pss(self.root, only=await _busy_worker_pids(self.stack.control_path))
                            or _worker_pss(self.root))

    async def tick(self) -> None:
        await self.stalls.poll()
        await self.busy.poll()

    async def end(self) -> None:
        await super().end()
        await self.tick()
        self.loop_stall_ms_max = self.stalls.window_max(self.started, time.monotonic())
        self.loop_busy_ms_max = self.busy.window_max(self.started, time.monotonic())
        self.sup_cpu = cpu_seconds(self.root) - self.sup_cpu_before
        self.breakdown = {k: v - self.breakdown_before.get(k, 0.0) for k, v in _cpu_breakdown(self.stack).items()}
        _, routed_after = await _metrics(self.http, self.stack.api)
        self.routed = routed_after - self.routed_before


async def _start_callfleet(http: aiohttp.ClientSession, api: str, profile: str) -> tuple[float, dict[str, Any]]:
    """``POST /bots/start``: (the wall-clock time it was sent, its reply); raises
    ``RuntimeError`` for anything but 200."""
    sent = time.time()
    status, body = await json_request(http, "POST", f"{api}/bots/start", json={"bot_profile": profile})
    if status != 200:
        raise RuntimeError(f"/bots/start answered {status}: {body}")
    return sent, body


async def _callfleet_joined(http: aiohttp.ClientSession, api: str, session_id: str) -> dict[str, Any]:
    """The session once its bot joined; raises ``RuntimeError`` if it ended first."""
    while True:
        _, detail = await json_request(http, "GET", f"{api}/sessions/{session_id}")
        if detail.get("joined_at"):
            return detail  # type: ignore[no-any-return]
        if SessionState(detail["state"]).finished:
            raise RuntimeError(f"session failed to start: {detail}")
        await asyncio.sleep(0.05)


async def _await_idle(http: aiohttp.ClientSession, api: str, n: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        _, health = await json_request(http, "GET", f"{api}/healthz")
        if health.get("workers", {}).get("idle", 0) >= n:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {health.get('workers')} workers after {timeout_s:g} s")
        await asyncio.sleep(0.2)


async def measure_callfleet(stack: Stack, n: int, seconds: float, progress: Progress,
                            profile: Profile) -> tuple[dict[str, Any], dict[str, Any]]:
    """Callfleet's figures for ``n`` sessions of ``profile`` on a started ``stack``; stops
    its supervisor (cleanly) to count rooms. Raises ``RuntimeError`` if a session fails."""
    assert stack.supervisor is not None
    sup_pid = stack.supervisor.pid
    async with aiohttp.ClientSession() as http:
        progress(f"callfleet: warming {n} workers")
        await _await_idle(http, stack.api, n)
        await asyncio.sleep(1.0)
        worker_pss_idle = _worker_pss(sup_pid)

        progress(f"callfleet: {LONE_STARTS} lone starts, one at a time")
        alone = []
        for _ in range(LONE_STARTS):
            sent, body = await _start_callfleet(http, stack.api, profile.name)
            alone.append(((await _callfleet_joined(http, stack.api, body["session_id"]))["joined_at"] - sent) * 1000)
            await json_request(http, "DELETE", f"{stack.api}/sessions/{body['session_id']}")
            await _await_idle(http, stack.api, n)  # the pool back to n idle before the next
        await asyncio.sleep(1.0)

        progress(f"callfleet: starting {n} sessions at once")
        started = await asyncio.gather(*(_start_callfleet(http, stack.api, profile.name) for _ in range(n)))
        latencies = []
        for sent, body in started:
            detail = await _callfleet_joined(http, stack.api, body["session_id"])
            latencies.append((detail["joined_at"] - sent) * 1000)
        tokens = [(body["room_url"], body["token"]) for _, body in started]

        window = CallfleetWindow(stack, http)
        said = await talk(http, stack.sandbox_api, tokens, seconds, window, progress, "callfleet")

        progress("callfleet: stopping every session, checking for leaks")
        for _, body in started:
            await json_request(http, "DELETE", f"{stack.api}/sessions/{body['session_id']}")
        deadline = time.monotonic() + 30
        while True:
            _, listing = await json_request(http, "GET", f"{stack.api}/sessions")
            live = [s for s in listing["data"] if not SessionState(s["state"]).finished]
            if not live or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # recycled workers exit, the pool refills to min_idle
        leaked_processes = _leaked_processes(sup_pid, n)
        # Rooms are counted once the supervisor has stopped cleanly: until then the room pool's
        # ready rooms are in the sandbox by design.
        stack.supervisor.terminate()
        await asyncio.to_thread(stack.supervisor.wait, 60)
        _, listed = await json_request(http, "GET", f"{stack.sandbox_api}/rooms", headers=SANDBOX_AUTH)

    routed = window.routed
    diagnostics = _diagnostics(profile, window, routed)
    report = {
        **host_report(n, seconds, latencies, alone, said, window.figures(n)),
        "profile": profile.name,
        "supervisor_cpu_us_per_frame": round(window.sup_cpu / routed * 1e6, 2) if routed else None,
        "worker_pss_mb": {"idle": worker_pss_idle, "in_call": window.in_call_pss},
        "leaks": {"processes": leaked_processes, "rooms": listed.get("total_count", -1)},
        "loop_stall_ms_max": window.loop_stall_ms_max,
        "loop_busy_ms_max": window.loop_busy_ms_max,
    }
    return report, diagnostics


async def measure_callfleet_phone(stack: Stack, n: int, seconds: float, progress: Progress,
                                  profile: Profile) -> tuple[dict[str, Any], dict[str, Any]]:
    """Callfleet's figures for ``n`` phone calls of ``profile`` (a bot that takes phone
    WebSockets); stops its supervisor (cleanly). Raises ``RuntimeError`` if a call fails."""
    assert stack.supervisor is not None
    sup_pid = stack.supervisor.pid
    async with aiohttp.ClientSession() as http:
        progress(f"callfleet: warming {n} workers")
        await _await_idle(http, stack.api, n)
        await asyncio.sleep(1.0)
        worker_pss_idle = _worker_pss(sup_pid)

        async def call() -> BenchPhone:
            return await start_callfleet_call(http, stack.api, profile.name)

        async def settle() -> None:
            await _await_live(http, stack.api)
            await _await_idle(http, stack.api, n)

        progress(f"callfleet: {LONE_STARTS} lone calls, one at a time")
        alone = await lone_starts(call, settle)
        await asyncio.sleep(1.0)
        progress(f"callfleet: {n} calls at once")
        phones, latencies = await burst(call, n)
        window = CallfleetWindow(stack, http)
        said = await phone_talk(http, phones, seconds, window, progress, "callfleet")

        progress("callfleet: every phone hung up; checking for leaks")
        await _await_live(http, stack.api)
        await asyncio.sleep(3.0)  # recycled workers exit, the pool refills to min_idle
        leaked_processes = _leaked_processes(sup_pid, n)
        _, listing = await json_request(http, "GET", f"{stack.api}/sessions")
        live_sessions = sum(1 for s in listing["data"] if not SessionState(s["state"]).finished)
        stack.supervisor.terminate()
        await asyncio.to_thread(stack.supervisor.wait, 60)

    # The supervisor relays every media message both ways: the phones' chunks and the echoes.
    relayed = said.sent + said.received
    diagnostics = _diagnostics(profile, window, relayed)
    report = {
        **host_report(n, seconds, latencies, alone, said, window.figures(n)),
        "profile": profile.name,
        "transport": "twilio",
        "supervisor_cpu_us_per_frame": round(window.sup_cpu / relayed * 1e6, 2) if relayed else None,
        "worker_pss_mb": {"idle": worker_pss_idle, "in_call": window.in_call_pss},
        "leaks": {"processes": leaked_processes, "sessions": live_sessions},
        "loop_stall_ms_max": window.loop_stall_ms_max,
        "loop_busy_ms_max": window.loop_busy_ms_max,
    }
    return report, diagnostics


def _diagnostics(profile: Profile, window: CallfleetWindow, frames: float) -> dict[str, Any]:
    """For the summary: the cores each part of the host used over the speaking window, and the
    supervisor's CPU by thread per frame it handled (``frames``: routed, or relayed both ways)."""
    breakdown, window_s = window.breakdown, max(window.ended - window.started, 1e-9)
    return {
        "profile": profile,
        "cores": {k: round(v / window_s, 2) for k, v in breakdown.items() if not k.startswith("supervisor ")},
        "supervisor_us_per_frame_by_thread": {k.removeprefix("supervisor "): round(v / frames * 1e6, 1)
                                              for k, v in breakdown.items() if k.startswith("supervisor ") and frames},
    }


async def _await_live(http: aiohttp.ClientSession, api: str, timeout_s: float = 30) -> None:
    """Until no session is live (or ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, listing = await json_request(http, "GET", f"{api}/sessions")
        if not any(not SessionState(s["state"]).finished for s in listing["data"]):
            return
        await asyncio.sleep(0.1)


async def _metrics(http: aiohttp.ClientSession, api: str) -> tuple[int, float]:
    async with http.get(f"{api}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("callfleet_frames_routed_total"):
            return resp.status, float(line.split()[-1])
    return resp.status, 0.0


async def _busy_worker_pids(control_path: Path) -> set[int]:
    """The pids of the workers hosting a session (``ctl workers``); raises ``ConnectionError``
    if the supervisor does not answer."""
    reply = await asyncio.to_thread(request, control_path, "workers", {})
    return {int(w["pid"]) for w in reply.get("result") or [] if w.get("session_id") and w.get("pid")}


def _worker_pids(sup_pid: int) -> list[int]:
    """The worker processes: the children of the supervisor's forkservers (one per lane)."""
    return [w for f in descendants(sup_pid) if "forkserver" in cmdline(f) for w in descendants(f)]


def _leaked_processes(sup_pid: int, idle: int) -> int:
    """Processes under the supervisor once every session ended: workers beyond the ``idle``
    the pool keeps, and anything that is no worker, forkserver or resource tracker."""
    workers = _worker_pids(sup_pid)
    others = [p for p in descendants(sup_pid)
              if p not in workers and "forkserver" not in cmdline(p) and "resource_tracker" not in cmdline(p)]
    return max(0, len(workers) - idle) + len(others)


def _worker_pss(sup_pid: int, only: set[int] | None = None) -> float | None:
    """Median PSS of the worker processes, or of those in ``only``."""
    workers = [w for w in _worker_pids(sup_pid) if only is None or w in only]
    values = [v for v in (_pss(p) for p in workers) if v is not None]
    return round(statistics.median(values), 1) if values else None


def _cpu_breakdown(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of the supervisor (and of each of its threads), the sandbox, all
    workers, and this process (the callers)."""
    assert stack.supervisor is not None and stack.sandbox is not None
    sup = stack.supervisor.pid
    workers = _worker_pids(sup)
    out = {"supervisor": cpu_seconds(sup), "sandbox": cpu_seconds(stack.sandbox.pid),
           "bench callers": cpu_seconds(os.getpid()), "workers": sum(cpu_seconds(p) for p in workers)}
    for name, used in thread_cpu_seconds(sup).items():
        kind = "zmq io" if name.startswith("ZMQbg") else "python"  # libzmq's I/O (and idle reaper) threads
        out[f"supervisor {kind}"] = out.get(f"supervisor {kind}", 0.0) + used
    return out


def _pss(pid: int) -> float | None:
    mem = memory_mb(pid)
    return None if mem is None else mem[0]


def session_counts(text: str) -> list[int]:
    """``--sessions``: one N or several, comma-separated, each >= 1; ascending, without repeats.
    Raises ``argparse.ArgumentTypeError`` naming what is wrong."""
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N,N,... (whole numbers), got {text!r}") from None
    if counts[0] < 1:
        raise argparse.ArgumentTypeError(f"every N must be >= 1, got {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callfleet bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=session_counts, default=[20],
                        help="sessions at once (default 20); several, comma-separated (5,10,20), run the bench "
                             "once per N and give --plot its capacity curve")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", action="store_true", default=True,
                        help="send every /bots/start at once (the default; kept for the documented CLI)")
    parser.add_argument("--profile", default="echo",
                        help="the profile to start (default echo); a pipecat one is also run on the peer")
    parser.add_argument("--profiles", type=Path, default=None,
                        help="where --profile is found (default: the checkout's configs/profiles.toml); the "
                             "supervisor is given that profile alone, as the peer runs only its bot")
    parser.add_argument("--merge-pages", action="store_true",
                        help="run the pool with merge_pages = true (kernel same-page merging; the host's "
                             "/sys/kernel/mm/ksm/run must be 1, and merging settles over tens of seconds: "
                             "use --seconds 30 or more, since PSS is read mid-window)")
    parser.add_argument("--transport", choices=("daily", "twilio"), default="daily",
                        help="daily (rooms, the default) or twilio: phone calls over Media Streams WebSockets "
                             "(default profile phone_echo of bench/phone_profiles.toml)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="draw the start and round-trip distributions, callfleet beside the peer, and with "
                             "several --sessions the capacity curve (needs the extra: pip install 'callfleet[plot]')")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="run the sandbox and supervisor from this checkout (default: the bench's own)")
    ns = parser.parse_args(argv)
    if ns.transport == "twilio":
        if ns.profile == "echo":
            ns.profile = "phone_echo"
        if ns.profiles is None:
            ns.profiles = Path(__file__).resolve().parent / "phone_profiles.toml"
    if ns.seconds <= 0:
        print("callfleet bench: --seconds must be > 0", file=sys.stderr)
        return 2
    if ns.plot is not None:
        try:
            require_matplotlib()  # now, not after minutes of measuring
        except PlotUnavailable as exc:
            print(f"callfleet bench: {exc}", file=sys.stderr)
            return 2
    try:
        chosen = load_profile(ns.profiles or ns.repo / "configs" / "profiles.toml", ns.profile)
    except (KeyError, OSError) as exc:
        print(f"callfleet bench: --profile: {exc}", file=sys.stderr)
        return 2
    if ns.transport == "twilio":
        if not chosen.hosts_a_pipecat_bot:
            print("callfleet bench: --transport twilio needs a pipecat profile whose bot takes phone calls "
                  "(create_transport)", file=sys.stderr)
            return 2
        # The bots' Twilio serializer needs an account to hang calls up with: the sandbox's.
        from sandbox.telephony.network import ACCOUNT_SID

        os.environ.setdefault("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
        os.environ.setdefault("TWILIO_AUTH_TOKEN", "bench")
    import uvloop

    runs = []
    for n in ns.sessions:  # one N after the other, never two at once on the machine
        runs.append(uvloop.run(run_bench(n, ns.seconds, Progress(), ns.repo, ns.profile, ns.profiles, ns.transport,
                                         ns.merge_pages)))
    reports = [report for report, _ in runs]
    text = json.dumps(reports[0] if len(reports) == 1 else {"runs": reports}, indent=2)
    if ns.out:
        ns.out.write_text(text + "\n")
    print(text)
    for report, diagnostics in runs:
        print(summary(report, diagnostics))
    if ns.plot is not None:
        print(f"callfleet bench: drew {draw(reports, ns.plot)}")
    return 0
