"""Soak: 20 echo sessions for 60 s while a chaos loop SIGKILLs a random worker every 5 s.

With failover on, every session either continues or ends with a reason, every caller
keeps hearing its echo after each failover, and at the end no process, room or
connection is left."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from pathlib import Path

from sandbox.caller import Caller, CallerOptions
from tests.conftest import DailyRest, SandboxProcess
from tests.supervisor_harness import SupervisorProcess, alive
from tests.waiting import wait_until

SESSIONS = 20
SECONDS = 60.0
KILL_EVERY_S = 5.0
MAX_SILENCE_S = 5.0  # longest a caller may go without hearing its echo across a failover


async def test_soak_with_chaos_keeps_every_caller_hearing_its_echo(tmp_path: Path) -> None:
    sandbox = SandboxProcess("--no-rate-limits")
    rest = DailyRest(sandbox.api_url)
    sup = SupervisorProcess(tmp_path, sandbox.port, pool={"min_idle": 4, "max_workers": SESSIONS + 6,
                                                          "ping_interval_s": 1.0, "ping_timeout_s": 5.0},
                            sessions={"failover": True, "idle_timeout_s": 120})
    sup.start()
    killed: list[int] = []
    try:
        bots = [await sup.start_bot("echo") for _ in range(SESSIONS)]
        callers = [Caller(CallerOptions(room_url=b["room_url"], token=b["token"], seconds=SECONDS, await_echo=True,
                                        await_echo_timeout_s=30)) for b in bots]
        await asyncio.gather(*(c.join() for c in callers))
        await asyncio.gather(*(c.wait_for_echo() for c in callers))
        for c in callers:
            c.opts.await_echo = False
        speaking = asyncio.ensure_future(asyncio.gather(*(c.speak() for c in callers)))
        started = time.monotonic()
        rng = random.Random(5)
        while not speaking.done():
            await asyncio.sleep(KILL_EVERY_S)
            if time.monotonic() - started > SECONDS - KILL_EVERY_S:
                break
            _, listing, _ = await sup.http("GET", "/sessions", params={"state": "joined"})
            pids = [s["worker_pid"] for s in listing["data"] if s["worker_pid"]]
            if pids:
                victim = rng.choice(pids)
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
        await speaking
        assert len(killed) >= 9
        # Every session continued (same id, failed over) or ended with a reason, once a
        # failover a late kill began has finished.
        failovers = 0
        for bot in bots:
            detail = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined" or d["end_reason"],
                                            what="the session joined again or ended with a reason")
            failovers += detail["failovers"]
        assert failovers >= len(killed) - 1  # a kill racing a failover may hit the same session twice
        # Every caller kept hearing its echo (the last frames' echoes may still be on their way):
        # no silence longer than a failover takes.
        await wait_until(lambda: all(c.echoes > 0.9 * c.frames_sent for c in callers), 10,
                         "9 in 10 of every caller's frames echoed")
        for caller in callers:
            times = [started] + caller.echo_times + [started + SECONDS]
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            assert max(gaps) < MAX_SILENCE_S, f"a caller heard nothing for {max(gaps):.1f}s"
            assert caller.echoes > 0.9 * caller.frames_sent
        lost = sum(c.frames_sent - c.echoes for c in callers)
        print(f"\nsoak: {len(killed)} workers killed, {failovers} failovers, "
              f"{sum(c.frames_sent for c in callers)} frames sent, {lost} not echoed (lost across failovers)")
        await asyncio.gather(*(c.leave(0) for c in callers))
        for bot in bots:
            await sup.http("DELETE", f"/sessions/{bot['session_id']}")
        for bot in bots:
            await sup.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"))
        children = sup.descendants()
        sup.signal(signal.SIGTERM)
        assert sup.wait(30) == 0
        await wait_until(lambda: [p for p in children + killed if alive(p)], 10, "every process of the run gone",
                         until=lambda living: living == [])
        stats = await rest.ok("GET", "/sandbox/stats")
        assert stats["rooms"] == 0 and stats["participants"] == 0, stats
        assert not any((sup.run_dir / name).exists() for name in ("workers.sock", "control.sock", "events.sock"))
        log = sup.log_path.read_text()
        assert "could not delete the room" not in log
        assert json.loads(sup.ctl("--json", "status").stdout or "null") is None  # the daemon is gone
    finally:
        sup.stop()
        await rest.close()
        sandbox.stop()
