"""A hosted Pipecat bot is cancelled when its session's max_duration passes (60 s is the
smallest allowed), as Pipecat Cloud cancels a bot at its session limit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import SandboxProcess, dropped
from tests.e2e.test_pipecat_hosting import Fleet, caller_in, start_supervisor

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")


async def test_max_duration_cancels_the_bot_mid_call(tmp_path: Path, sandbox_proc: SandboxProcess,
                                                    drop_dir: Path) -> None:
    record = dropped(drop_dir, "bots.jsonl")
    sup = start_supervisor(tmp_path, sandbox_proc, record, sessions={"idle_timeout_s": 600})
    fleet = Fleet(sup, sandbox_proc, record)
    try:
        bot = await sup.start_bot("recording", max_duration=60)
        caller = await caller_in(bot["room_url"], bot["token"])
        try:
            joined = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
            assert joined["max_duration_s"] == 60
            done = await fleet.ended(bot["session_id"], timeout=75)
            assert (done["state"], done["end_reason"]) == ("ended", "max_duration")
            [ended] = await fleet.wait_record(bot["session_id"], "returned")
            assert ended["cancelled_by_host"], ended  # Pipecat's runner swallows the cancel: the task still saw it
        finally:
            await caller.conn.leave()
    finally:
        sup.stop()
