"""End to end: the supervisor counts a worker's calls the way the worker does.

Real supervisor, real forkserver workers, real sandbox. With ``sessions_per_worker = 1`` a
worker exits by itself after the one call it joined; a session that never joined (Daily
failed, or the join did) has not used its worker up, so the worker goes back to idle
instead of being marked retiring, lingering and being SIGKILLed. Retiring workers still
hold a process, so they count against ``max_workers``: a Daily outage cannot pile up
processes however fast starts arrive.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from callfleet.procfs import cmdline, descendants
from sandbox.caller import Caller, CallerOptions
from tests.conftest import REPO, DailyRest, SandboxProcess
from tests.supervisor_harness import SupervisorProcess, alive

SHUTDOWN_TIMEOUT_S = 2  # how long the pool waits for a retiring worker before SIGKILL
MAX_WORKERS = 2


def supervisor(tmp_path: Path, sandbox: SandboxProcess, **overrides: Any) -> SupervisorProcess:
    pool = {"min_idle": 1, "max_workers": MAX_WORKERS, "sessions_per_worker": 1,
            "shutdown_timeout_s": SHUTDOWN_TIMEOUT_S, **overrides.pop("pool", {})}
    sup = SupervisorProcess(tmp_path, sandbox.port, pool=pool, **overrides)
    sup.start()
    return sup


def worker_pids(sup: SupervisorProcess) -> list[int]:
    """The live worker processes: the children of the supervisor's forkserver."""
    assert sup.proc is not None
    servers = [pid for pid in descendants(sup.proc.pid)
               if "multiprocessing.forkserver" in cmdline(pid) and parent(pid) == sup.proc.pid]
    return [pid for server in servers for pid in descendants(server)]


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def killed_lines(sup: SupervisorProcess) -> list[str]:
    return [line for line in sup.log_path.read_text().splitlines() if "killing worker" in line]


class EventFeed:
    """``ctl events``, followed in the background: every worker state change, in order."""

    def __init__(self, sup: SupervisorProcess) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "ctl", "--config", str(sup.config_path),
                                      "events"], cwd=REPO, stdout=subprocess.PIPE, text=True)

    def worker_events(self, worker_id: str) -> list[dict[str, Any]]:
        """Stops following; the events the feed gave about ``worker_id``."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        events = []
        for line in out.splitlines():
            kind, _, data = line.partition(" ")
            if kind == "worker" and json.loads(data).get("worker_id") == worker_id:
                events.append(json.loads(data))
        return events

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


async def test_a_session_that_never_joined_gives_its_worker_back_and_one_that_joined_retires_it(
    tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest
) -> None:
    # One worker at most: no spare is started beside it, so every session gets this one.
    sup = supervisor(tmp_path, sandbox_proc, pool={"max_workers": 1}, daily={"max_retries": 0})
    feed = EventFeed(sup)
    try:
        [idle] = await sup.workers(lambda ws: [w["state"] for w in ws] == ["idle"])
        await sup.followed()

        # Daily fails before the join: the start answers 502 and the worker was never used.
        await sandbox_rest.ok("POST", "/sandbox/faults", json={"error_rate": 1.0})
        status, body, _ = await sup.http("POST", "/bots/start", json={"bot_profile": "echo"})
        assert status == 502 and body["error"] == "daily-api-error", (status, body)
        await sandbox_rest.ok("POST", "/sandbox/faults", json={"error_rate": 0.0})
        await sup.workers(lambda ws: [(w["id"], w["state"]) for w in ws] == [(idle["id"], "idle")], timeout=5)

        # The join itself fails: a room that does not exist.
        missing_room = sandbox_proc.base_url + "/no-such-room"
        bot = await sup.start_bot("echo", room_url=missing_room)
        failed = await sup.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"))
        assert failed["end_reason"] == "join_failed", failed
        assert failed["worker_id"] == idle["id"]

        await sup.workers(lambda ws: [(w["id"], w["state"]) for w in ws] == [(idle["id"], "idle")], timeout=5)

        # Both sessions left the worker as it was, and it still is once a retiring worker
        # would have been killed.
        await asyncio.sleep(SHUTDOWN_TIMEOUT_S + 1)
        workers = await sup.workers()
        assert [(w["id"], w["state"], w["pid"]) for w in workers] == [(idle["id"], "idle", idle["pid"])], workers
        assert alive(idle["pid"])
        assert killed_lines(sup) == []

        # A session that joined uses the worker up: it exits by itself, and is replaced.
        bot = await sup.start_bot("echo")
        joined = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        assert joined["worker_id"] == idle["id"]
        status, _, _ = await sup.http("DELETE", f"/sessions/{bot['session_id']}")
        assert status == 200
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "ended")
        await sup.workers(lambda ws: idle["id"] not in [w["id"] for w in ws] and [w["state"] for w in ws] == ["idle"])
        assert not alive(idle["pid"])
        assert killed_lines(sup) == []  # it exited; nobody had to kill it
        events = feed.worker_events(idle["id"])
        states = [e["state"] for e in events]
        assert states[-2:] == ["retiring", "dead"] and events[-1]["exit_code"] == 0, events
        assert "retiring" not in states[:-2], states  # the two sessions that never joined did not retire it
    finally:
        feed.close()
        sup.stop()


async def test_a_daily_outage_never_runs_more_worker_processes_than_max_workers(
    tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest
) -> None:
    sup = supervisor(tmp_path, sandbox_proc, daily={"max_retries": 0})
    samples: list[int] = []
    sampling = True

    async def sample() -> None:
        while sampling:
            samples.append(len(worker_pids(sup)))
            await asyncio.sleep(0.02)

    try:
        await sup.workers(lambda ws: [w["state"] for w in ws] == ["idle"])
        await sandbox_rest.ok("POST", "/sandbox/faults", json={"error_rate": 1.0})
        sampler = asyncio.get_running_loop().create_task(sample())
        statuses = []
        for _ in range(3 * MAX_WORKERS):
            status, body, _ = await sup.http("POST", "/bots/start", json={"bot_profile": "echo"})
            assert status in (429, 502), (status, body)
            statuses.append(status)
        watch_until = time.monotonic() + SHUTDOWN_TIMEOUT_S + 1  # as long as a retiring worker could linger
        while time.monotonic() < watch_until:
            await asyncio.sleep(0.1)
        sampling = False
        await sampler
        assert 502 in statuses
        assert samples and 1 <= max(samples) <= MAX_WORKERS, f"worker processes over time: {samples}"
        print(f"\nworker processes over time: {sorted(set(samples))}, statuses {statuses}")
        assert killed_lines(sup) == []
    finally:
        sampling = False
        sup.stop()


async def test_the_workers_own_frame_counts_reach_the_session_and_the_metrics(
    tmp_path: Path, sandbox_proc: SandboxProcess
) -> None:
    sup = supervisor(tmp_path, sandbox_proc)
    try:
        bot = await sup.start_bot("echo")
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=0.5, await_echo=True))
        await caller.join()
        await caller.speak()
        # The worker reports what it played out in its Pongs (every ping_interval_s).
        detail = await sup.wait_session(bot["session_id"], lambda d: d["frames"].get("worker_out", 0) > 0,
                                        timeout=10, what="the worker's own count of frames played out")
        assert isinstance(detail["frames"]["worker_dropped"], int), detail["frames"]
        await caller.conn.leave()
        await sup.http("DELETE", f"/sessions/{bot['session_id']}")
        ended = await sup.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"))
        _, metrics, _ = await sup.http("GET", "/metrics")
        series = [line for line in metrics.splitlines() if line.startswith("callfleet_worker_frames_dropped")]
        assert series, "no callfleet_worker_frames_dropped in /metrics"
        # Its worker was the only one that played audio: the metric is that worker's own count.
        assert float(series[0].split()[-1]) == ended["frames"]["worker_dropped"], (series, ended["frames"])
    finally:
        sup.stop()
