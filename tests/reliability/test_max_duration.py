"""A session ends when its max_duration passes (60 s is the smallest allowed)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import SandboxProcess
from tests.supervisor_harness import SupervisorProcess


async def test_session_ends_when_max_duration_passes(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port, pool={"min_idle": 1}, sessions={"idle_timeout_s": 600})
    sup.start()
    try:
        bot = await sup.start_bot("echo", max_duration=60)
        joined = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        assert joined["max_duration_s"] == 60
        started = time.monotonic()
        done = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "ended", timeout=75)
        assert done["end_reason"] == "max_duration"
        assert 58 < time.monotonic() - started < 70
    finally:
        sup.stop()
