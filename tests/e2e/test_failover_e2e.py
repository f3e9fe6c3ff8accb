"""End to end: after a failover the session's participants are what the rejoin reports.

Real supervisor, real workers, real sandbox, a real synthetic caller. A SIGKILLed worker's
bot lingers in the room until the room server misses its heartbeats, so the new bot's
join lists it: it is a bot, never a human. A caller who leaves while no bot is in the call
sends a leave no bot hears; the rejoin's list is the truth, and the session ends
``participant_left`` instead of staying alive for nobody.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from sandbox.caller import Caller, CallerOptions
from supervisor.daily_rest import get_name_from_url
from tests.conftest import DailyRest, SandboxProcess
from tests.supervisor_harness import SupervisorProcess

REST_LATENCY_MS = 1000  # slows the rejoin's token mint: the caller's leave lands in the gap


def supervisor(tmp_path: Path, sandbox: SandboxProcess) -> SupervisorProcess:
    sup = SupervisorProcess(tmp_path, sandbox.port, pool={"min_idle": 1, "max_workers": 3},
                            sessions={"failover": True, "idle_timeout_s": 60})
    sup.start()
    return sup


def people(detail: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(p["id"], p["is_bot"]) for p in detail["participants"]]


async def in_room(rest: DailyRest, room_url: str) -> set[str]:
    """Who the sandbox's room server still has in the call (lingering bots included)."""
    listed = await rest.ok("GET", f"/sandbox/rooms/{get_name_from_url(room_url)}/participants")
    return {p["id"] for p in listed["data"]}


async def test_a_killed_bot_is_never_a_human_and_a_caller_who_left_during_the_gap_ends_the_session(
    tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest
) -> None:
    sup = supervisor(tmp_path, sandbox_proc)
    caller: Caller | None = None
    try:
        bot = await sup.start_bot("echo")
        sid = bot["session_id"]
        caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=0.2))
        await caller.join()
        first = await sup.wait_session(sid, lambda d: d["state"] == "joined" and len(d["participants"]) == 2,
                                       what="the bot and the caller")
        first_bot = first["participants"][0]["id"]
        assert people(first) == [(first_bot, True), (caller.participant_id, False)]

        # Failover 1: the killed bot is still in the room when the new bot joins.
        os.kill(first["worker_pid"], signal.SIGKILL)
        second = await sup.wait_session(sid, lambda d: d["failovers"] == 1 and d["state"] == "joined",
                                        what="the first failover")
        lingering = first_bot in await in_room(sandbox_rest, bot["room_url"])
        print(f"\nkilled bot lingering at rejoin: {lingering}")
        second_bot = second["participants"][0]["id"]
        assert second_bot != first_bot
        assert people(second) == [(second_bot, True), (caller.participant_id, False)], \
            f"killed bot still in the room: {lingering}; participants: {second['participants']}"

        # Failover 2: the caller leaves right after the kill, before the new bot is in.
        await sandbox_rest.ok("POST", "/sandbox/faults", json={"latency_ms": REST_LATENCY_MS})
        os.kill(second["worker_pid"], signal.SIGKILL)
        await caller.conn.leave()
        ended = await sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=15,
                                       what="the session to end once the rejoin finds nobody")
        assert ended["failovers"] == 2, ended
        assert ended["end_reason"] == "participant_left", ended
    finally:
        await sandbox_rest.call("POST", "/sandbox/faults", json={"latency_ms": 0})
        if caller is not None:
            await caller.conn.leave()
        sup.stop()
