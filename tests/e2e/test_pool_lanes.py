"""Worker lanes: built-in bots' workers are forked from a lean forkserver and never wait for
Pipecat's imports; Pipecat bots' workers from one that preloaded Pipecat and the bots. Each
lane keeps its own ``min_idle`` warm, and at ``max_workers`` a session still gets a worker
when one of the other lane is idle (``supervisor.pool.lanes``)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxProcess
from tests.supervisor_harness import REPO, SupervisorProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

PROFILES = f"""
[profiles.echo]
kind = "echo"

[profiles.pipecat_echo]
kind = "pipecat"
bot = "{REPO / 'examples' / 'pipecat_echo.py'}:bot"
"""

# Native modules Pipecat imports (numpy, pydantic) and a lean worker never maps.
PIPECAT_MARKERS = ("/numpy/", "pydantic_core")


def start(tmp: Path, sandbox: SandboxProcess, **pool: Any) -> SupervisorProcess:
    profiles = tmp / "profiles.toml"
    profiles.write_text(PROFILES)
    sup = SupervisorProcess(tmp, sandbox.port, supervisor={"profiles": str(profiles)}, pool=pool)
    sup.start(timeout=60)
    return sup


def workers(sup: SupervisorProcess) -> dict[str, dict[str, Any]]:
    return {w["id"]: w for w in json.loads(sup.ctl("--json", "workers").stdout)}


def maps_pipecat(pid: int) -> bool:
    """Whether the process has Pipecat's native modules mapped, i.e. imported Pipecat."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return any(marker in maps for marker in PIPECAT_MARKERS)


async def joined_on(sup: SupervisorProcess, profile: str) -> dict[str, Any]:
    bot = await sup.start_bot(profile)
    return await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined", timeout=30)


async def test_echo_workers_are_warm_before_pipecats_preload_ends_and_never_import_it(
        tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = start(tmp_path, sandbox_proc, min_idle=2, max_workers=6)
    try:
        answers: list[list[str]] = []
        async with asyncio.timeout(60):
            while not answers or answers[-1]:
                status, body, _ = await sup.http("GET", "/readyz")
                assert (status == 200) == (body["reasons"] == []), body
                answers.append(body["reasons"])
        # Readiness named each lane short of its warm workers, and the built-in lane was warm
        # while the Pipecat lane's forkserver was still importing Pipecat.
        assert any(r and all("pipecat workers are warm yet" in line for line in r) for r in answers), answers
        assert any("builtin workers are warm yet" in line for r in answers for line in r), answers

        pool = json.loads(sup.ctl("--json", "status").stdout)["pool"]
        assert pool["lanes"] == {"builtin": {"idle": 2, "min_idle": 2}, "pipecat": {"idle": 2, "min_idle": 2}}, pool
        for w in workers(sup).values():
            assert maps_pipecat(w["pid"]) == (w["lane"] == "pipecat"), w

        echo = await joined_on(sup, "echo")
        pipecat = await joined_on(sup, "pipecat_echo")
        now = workers(sup)
        assert now[echo["worker_id"]]["lane"] == "builtin" and not maps_pipecat(echo["worker_pid"])
        assert now[pipecat["worker_id"]]["lane"] == "pipecat" and maps_pipecat(pipecat["worker_pid"])
        # Each lane refills its own warm workers.
        await sup.workers(lambda ws: sorted(w["lane"] for w in ws if w["state"] == "idle")
                          == ["builtin", "builtin", "pipecat", "pipecat"], timeout=30)
    finally:
        sup.stop()


async def test_at_max_workers_a_session_displaces_or_borrows_an_idle_worker_of_the_other_lane(
        tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = start(tmp_path, sandbox_proc, min_idle=1, max_workers=2)
    try:
        await wait_until(lambda: sup.http("GET", "/readyz"), 60, "the pool warm", until=lambda r: r[0] == 200)
        idle = workers(sup)
        assert sorted(w["lane"] for w in idle.values()) == ["builtin", "pipecat"]
        lean = next(w for w in idle.values() if w["lane"] == "builtin")

        # Two Pipecat sessions, one Pipecat worker and max_workers 2: the idle built-in worker
        # is killed to make room, and the second session's worker forked once it has exited.
        first = await joined_on(sup, "pipecat_echo")
        second = await joined_on(sup, "pipecat_echo")
        assert {workers(sup)[s["worker_id"]]["lane"] for s in (first, second)} == {"pipecat"}
        await wait_until(lambda: not os.path.exists(f"/proc/{lean['pid']}"), 10, "the displaced worker gone")
        assert "its place went to a pipecat worker (max_workers reached)" in sup.log_path.read_text()
        status, body, headers = await sup.http("POST", "/bots/start", json={"bot_profile": "echo"})
        assert status == 429 and "Retry-After" in headers, body  # both busy: nothing to take

        for s in (first, second):
            await sup.http("DELETE", f"/sessions/{s['session_id']}")
        await sup.workers(lambda ws: sorted(w["lane"] for w in ws if w["state"] == "idle") == ["builtin", "pipecat"],
                          timeout=30)

        # An echo takes the built-in worker; a second one, at max_workers, borrows the idle
        # Pipecat worker, which can host a built-in bot.
        echo = await joined_on(sup, "echo")
        borrowed = await joined_on(sup, "echo")
        lanes = workers(sup)
        assert (lanes[echo["worker_id"]]["lane"], lanes[borrowed["worker_id"]]["lane"]) == ("builtin", "pipecat")
    finally:
        sup.stop()
