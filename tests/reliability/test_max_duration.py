"""A session ends when its max_duration passes (60 s is the smallest allowed): a built-in
echo session, and a hosted Pipecat bot, cancelled mid-call as Pipecat Cloud cancels a bot
at its session limit.

Sixty seconds is the floor, so both sessions are started at once, each on its own
supervisor as it would be alone, and each test waits for its own: the minute passes once.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sandbox.caller import Caller
from tests.conftest import SandboxProcess, dropped
from tests.supervisor_harness import SupervisorProcess

HAS_PIPECAT = importlib.util.find_spec("pipecat") is not None
needs_pipecat = pytest.mark.skipif(not HAS_PIPECAT, reason="pipecat-ai is not installed (the pipecat extra)")
pytestmark = pytest.mark.asyncio(loop_scope="module")  # the sessions' fixture and callers live in one loop


@dataclass
class Started:
    """A session started with max_duration=60 and seen joined at ``joined_at`` (monotonic)."""

    sup: SupervisorProcess
    bot: dict[str, Any]
    joined: dict[str, Any]
    joined_at: float


@dataclass
class Sessions:
    echo: Started
    pipecat: Started | None  # None without Pipecat
    fleet: Any = None  # tests.e2e.test_pipecat_hosting.Fleet, with Pipecat


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sessions(tmp_path_factory: pytest.TempPathFactory, drop_dir: Path) -> AsyncIterator[Sessions]:
    sandbox = SandboxProcess("--no-rate-limits")
    sups: list[SupervisorProcess] = []
    caller: Caller | None = None
    try:
        sup = SupervisorProcess(tmp_path_factory.mktemp("max-duration-echo"), sandbox.port, pool={"min_idle": 1},
                                sessions={"idle_timeout_s": 600})
        sups.append(sup)
        sup.start()
        bot = await sup.start_bot("echo", max_duration=60)
        joined = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        echo = Started(sup, bot, joined, time.monotonic())

        pipecat, fleet = None, None
        if HAS_PIPECAT:
            from tests.e2e.test_pipecat_hosting import Fleet, caller_in, start_supervisor

            record = dropped(drop_dir, "bots.jsonl")
            sup = start_supervisor(tmp_path_factory.mktemp("max-duration-pipecat"), sandbox, record,
                                   sessions={"idle_timeout_s": 600})
            sups.append(sup)
            fleet = Fleet(sup, sandbox, record)
            bot = await sup.start_bot("recording", max_duration=60)
            caller = await caller_in(bot["room_url"], bot["token"])
            joined = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
            pipecat = Started(sup, bot, joined, time.monotonic())
        yield Sessions(echo, pipecat, fleet)
    finally:
        try:
            if caller is not None:
                await caller.conn.leave()
        finally:
            for sup in sups:
                sup.stop()
            sandbox.stop()


def left_of(started: Started, seconds: float) -> float:
    """What is left of ``seconds`` counted from the session's join (the other session's test
    may have spent some of it)."""
    return max(0.1, seconds - (time.monotonic() - started.joined_at))


async def test_session_ends_when_max_duration_passes(sessions: Sessions) -> None:
    echo = sessions.echo
    assert echo.joined["max_duration_s"] == 60
    done = await echo.sup.wait_session(echo.bot["session_id"], lambda d: d["state"] == "ended",
                                       timeout=left_of(echo, 75))
    assert done["end_reason"] == "max_duration"
    assert 58 < time.monotonic() - echo.joined_at < 70


@needs_pipecat
async def test_max_duration_cancels_the_bot_mid_call(sessions: Sessions) -> None:
    bot = sessions.pipecat
    assert bot is not None and sessions.fleet is not None
    assert bot.joined["max_duration_s"] == 60
    done = await sessions.fleet.ended(bot.bot["session_id"], timeout=left_of(bot, 75))
    assert (done["state"], done["end_reason"]) == ("ended", "max_duration")
    [ended] = await sessions.fleet.wait_record(bot.bot["session_id"], "returned")
    assert ended["cancelled_by_host"], ended  # Pipecat's runner swallows the cancel: the task still saw it
