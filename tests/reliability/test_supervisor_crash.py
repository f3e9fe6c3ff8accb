"""The supervisor is SIGKILLed with live sessions, then restarted on the same run_dir:
its workers leave within 5 s, rooms are reconciled, history is intact."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.conftest import DailyRest, SandboxProcess
from tests.supervisor_harness import SupervisorProcess, alive
from tests.waiting import wait_until


async def rooms(rest: DailyRest) -> list[str]:
    return [r["name"] for r in (await rest.ok("GET", "/rooms"))["data"]]


async def test_supervisor_sigkill_then_restart_reconciles(tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port)
    sup.start()
    bots = [await sup.start_bot("echo") for _ in range(3)]
    bot = bots[0]
    for b in bots:
        await sup.wait_session(b["session_id"], lambda d: d["state"] == "joined")
    workers = sup.descendants()
    room = bot["room_url"].rsplit("/", 1)[1]
    assert room in await rooms(sandbox_rest)
    sup.signal(signal.SIGKILL)
    sup.wait(5)
    await wait_until(lambda: [p for p in workers if alive(p)], 5, "the workers to exit after their supervisor",
                     until=lambda living: living == [], interval=0.1)
    presence = await sandbox_rest.ok("GET", f"/rooms/{room}/presence")
    assert presence["total_count"] == 0  # the bot left the room
    sup.start()  # the same config and run_dir
    try:
        for b in bots:
            detail = await sup.session(b["session_id"])
            assert detail["state"] == "failed" and detail["end_reason"] == "supervisor_lost"
            assert detail["room_url"] == b["room_url"] and detail["requested_at"]  # history intact
        assert await rooms(sandbox_rest) == []  # every room reconciled
    finally:
        sup.stop()
