"""Prewarmed means prewarmed: a new supervisor says 503 on /readyz until ``min_idle`` of
its workers are warm (forked from the preloaded forkserver, booted, Hello said), so the
first caller a load balancer sends takes a worker that is already idle."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.conftest import SandboxProcess
from tests.supervisor_harness import SupervisorProcess

MIN_IDLE = 3


async def _readyz_until_200(sup: SupervisorProcess) -> list[tuple[int, dict[str, Any]]]:
    """Every /readyz answer from start-up to the first 200, in order."""
    answers: list[tuple[int, dict[str, Any]]] = []
    async with asyncio.timeout(60):
        while not answers or answers[-1][0] != 200:
            status, body, _ = await sup.http("GET", "/readyz")
            answers.append((status, body))
    return answers


def _idle_workers(sup: SupervisorProcess) -> set[str]:
    return {w["id"] for w in json.loads(sup.ctl("--json", "workers").stdout) if w["state"] == "idle"}


async def test_readyz_says_503_until_min_idle_workers_are_warm_and_the_first_echo_takes_one(
        tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port, pool={"min_idle": MIN_IDLE, "max_workers": 5})
    # start() returns as the HTTP API listens: the pool's first reconcile step, which forks
    # the workers, comes a reconcile interval after the pool started, so none is warm yet.
    sup.start()
    try:
        answers = await _readyz_until_200(sup)
        *cold, (_, ready) = answers
        assert cold, "the first /readyz, as the HTTP API opened, already said 200: no worker can be warm then"
        for status, body in cold:
            assert status == 503 and body["idle"] < MIN_IDLE, body
            assert body["reasons"] == [f"{body['idle']} of min_idle {MIN_IDLE} builtin workers are warm yet"], body
        assert ready["idle"] >= MIN_IDLE and ready["reasons"] == [], ready
        idle = _idle_workers(sup)
        assert len(idle) >= MIN_IDLE
        bot = await sup.start_bot("echo")
        joined = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        assert joined["worker_id"] in idle  # already warm when /readyz first said 200: no boot waited for
        # Readiness is latched once warm: a session taking an idle worker leaves the node ready.
        status, body, _ = await sup.http("GET", "/readyz")
        assert status == 200, body
    finally:
        sup.stop()


async def test_readyz_is_200_at_once_with_min_idle_zero(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port, pool={"min_idle": 0, "max_workers": 2})
    sup.start()
    try:
        status, body, _ = await sup.http("GET", "/readyz")
        assert status == 200 and body["idle"] == 0 and body["min_idle"] == 0, body
    finally:
        sup.stop()
