"""Stopping the supervisor: bounded by the drain deadline even when Daily is unreachable
(what it could not delete is left in the room ledger for the next start), and leaving no
helper process of multiprocessing behind."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from callfleet.procfs import alive, cmdline
from tests.conftest import REPO, DailyRest, SandboxProcess
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

DRAIN_TIMEOUT_S = 3
STOP_MARGIN_S = 5  # what the contract allows past drain_timeout_s
PR_SET_CHILD_SUBREAPER = 36


def sandbox_on(port: int) -> SandboxProcess:
    """``callfleet sandbox`` on a given port: Daily coming back where it was."""
    sb = SandboxProcess.__new__(SandboxProcess)
    sb.port = port
    sb.proc = subprocess.Popen([sys.executable, "-m", "cli", "sandbox", "--port", str(port), "--no-rate-limits"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert sb.proc.stdout is not None
    line = sb.proc.stdout.readline().decode()
    assert "sandbox: REST" in line, line
    sb.base_url = f"http://127.0.0.1:{port}"
    sb.api_url = sb.base_url + "/v1"
    return sb


def ledger(run_dir: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(run_dir / "sessions.db")) as db:
        return {row[0] for row in db.execute("SELECT name FROM owned_rooms")}


def session_row(run_dir: Path, session_id: str) -> tuple[str, str]:
    with contextlib.closing(sqlite3.connect(run_dir / "sessions.db")) as db:
        row = db.execute("SELECT state, end_reason FROM sessions WHERE id = ?", (session_id,)).fetchone()
    assert row is not None, f"no record for {session_id}"
    return row[0], row[1]


async def rooms(rest: DailyRest) -> set[str]:
    return {r["name"] for r in (await rest.ok("GET", "/rooms"))["data"]}


async def test_stop_is_bounded_when_daily_is_unreachable_and_the_next_start_deletes_the_leftovers(
        tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port, supervisor={"drain_timeout_s": DRAIN_TIMEOUT_S},
                            daily={"room_pool": 4})
    sup.start()
    again: SandboxProcess | None = None
    try:
        bot = await sup.start_bot("echo", max_duration=300)
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        # The session's room and a full pool of four, all made by this supervisor.
        await wait_until(lambda: json.loads(sup.ctl("--json", "status").stdout)["room_pool"]["ready"] == 4,
                       timeout=15, what="a full room pool")
        created = await rooms(sandbox_rest)
        assert len(created) == 5 and bot["room_url"].rsplit("/", 1)[1] in created, created

        sandbox_proc.proc.kill()  # Daily is unreachable from here on
        sandbox_proc.proc.wait(5)
        sup.signal(signal.SIGTERM)
        began = time.monotonic()
        try:
            code = sup.wait(DRAIN_TIMEOUT_S + STOP_MARGIN_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"SIGTERM with Daily unreachable did not stop the supervisor within "
                                 f"drain_timeout_s + {STOP_MARGIN_S} s") from None
        assert code == 0, f"exit {code} after {time.monotonic() - began:.1f} s"
        # Nothing it could not delete is forgotten; the session is on record.
        assert ledger(sup.run_dir) == created
        state, reason = session_row(sup.run_dir, bot["session_id"])
        assert state in ("ended", "failed") and reason == "drained", (state, reason)

        # Daily is back on the same port: the next start deletes what the last run left
        # (with no pool this time, so the ledger holds nothing new).
        again = sandbox_on(sandbox_proc.port)
        sup.config["daily"]["room_pool"] = 0
        sup.write_config()
        sup.start()
        assert ledger(sup.run_dir) == set()
        lines = [json.loads(line) for line in sup.log_path.read_text().splitlines()
                 if "deleted rooms a previous run left" in line]
        assert [line["count"] for line in lines] == [5], lines
    finally:
        sup.stop()
        if again is not None:
            again.stop()


@contextlib.contextmanager
def adopting_orphans() -> Iterator[None]:
    """Make this process the reaper of orphaned descendants (Linux), so a process that
    outlives its parent stays visible here (alive, or a zombie of ours) instead of
    vanishing into init."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def adopted(pid: int) -> bool:
    """True when ``pid`` was re-parented to this process: it outlived its parent."""
    return parent(pid) == os.getpid()


def reap(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            if adopted(pid):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


async def test_forkserver_and_resource_tracker_exit_before_the_daemon(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port)
    helpers: list[int] = []
    with adopting_orphans():
        sup.start()
        try:
            await wait_until(lambda: any("resource_tracker" in cmdline(p) for p in sup.descendants()),
                           timeout=10, what="the resource tracker")
            # The daemon's own children; the workers are the forkserver's.
            assert sup.proc is not None
            helpers = [p for p in sup.descendants() if parent(p) == sup.proc.pid
                       and any(k in cmdline(p) for k in ("forkserver", "resource_tracker"))]
            kinds = {p: k for p in helpers for k in ("forkserver", "resource_tracker") if k in cmdline(p)}
            assert sorted(kinds.values()) == ["forkserver", "resource_tracker"], [cmdline(p) for p in helpers]
            sup.signal(signal.SIGTERM)
            assert sup.wait(20) == 0
            # A helper the daemon stopped and waited for is gone; one it left behind was
            # handed to us when the daemon exited, alive or not yet reaped.
            outlived = [f"{kinds[p]} (pid {p}, {'alive' if alive(p) else 'exited after it'})" for p in helpers if adopted(p)]
            assert outlived == [], f"outlived the daemon: {outlived}"
        finally:
            sup.stop()
            reap(helpers)
