"""The embedded sandbox is a child the supervisor owns: SIGKILLed, it is reported down,
restarted and counted, its pooled rooms are dropped, and starts afterwards get rooms that
exist in the new sandbox."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from callfleet.procfs import cmdline
from sandbox.caller import Caller, CallerOptions
from tests.conftest import DailyRest
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until


def sandbox_child(sup: SupervisorProcess) -> int:
    """The pid of the supervisor's embedded ``callfleet sandbox`` child."""
    found = [pid for pid in sup.descendants() if "-m cli sandbox" in cmdline(pid)]
    assert len(found) == 1, f"expected one sandbox child, found {found}"
    return found[0]


def status(sup: SupervisorProcess) -> dict[str, Any]:
    result = sup.ctl("--json", "status")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


async def wait_status(sup: SupervisorProcess, predicate: Any, what: str, timeout: float = 15) -> dict[str, Any]:
    return await wait_until(lambda: status(sup), timeout, what, until=predicate, interval=0.1)


def log_events(sup: SupervisorProcess) -> list[dict[str, Any]]:
    events = []
    for line in sup.log_path.read_text().splitlines():
        if line.strip().startswith("{"):
            events.append(json.loads(line))
    return events


async def test_sandbox_child_sigkilled_is_reported_down_restarted_and_serves_real_rooms(tmp_path: Path) -> None:
    sup = SupervisorProcess(tmp_path, None, daily={"room_pool": 2})  # the supervisor starts its own sandbox
    sup.start()
    rest = DailyRest(f"http://127.0.0.1:{sup.config['sandbox']['port']}/v1")
    try:
        await wait_status(sup, lambda s: s["room_pool"]["ready"] == 2, "a full room pool")
        code, health, _ = await sup.http("GET", "/healthz")
        assert code == 200, health
        old_pid = sandbox_child(sup)
        os.kill(old_pid, signal.SIGKILL)
        # Health tells the truth while the sandbox is down (it takes a second or so to restart).
        _, health, _ = await wait_until(lambda: sup.http("GET", "/healthz"), 5, "/healthz to say the sandbox is down",
                                        until=lambda got: got[0] == 503 and got[1]["sandbox"]["state"] == "down",
                                        interval=0.02)
        assert health["status"] == "unavailable" and health["sandbox"]["restarts"] == 0

        back = await wait_status(sup, lambda s: s["sandbox"]["state"] == "up", "the sandbox to come back")
        assert back["sandbox"] == {"state": "up", "restarts": 1, "last_exit": "killed by SIGKILL"}
        assert sandbox_child(sup) != old_pid
        code, health, _ = await sup.http("GET", "/healthz")
        assert code == 200 and health["sandbox"]["state"] == "up"

        events = [e for e in log_events(sup) if "sandbox" in e["event"]]
        died = [e for e in events if e["event"] == "the sandbox died; restarting it"]
        restarted = [e for e in events if e["event"] == "the sandbox is back"]
        assert [e["exit"] for e in died] == ["killed by SIGKILL"], events
        assert [e["restarts"] for e in restarted] == [1], events

        # The pool refills in the new sandbox; a start gets a room that exists there.
        await wait_status(sup, lambda s: s["room_pool"]["ready"] == 2, "the room pool refilled", timeout=20)
        bot = await sup.start_bot("echo", max_duration=300)
        room = bot["room_url"].rsplit("/", 1)[1]
        code, body, _ = await rest.call("GET", f"/rooms/{room}")
        assert code == 200, f"/bots/start answered with a room the sandbox does not have: {room} {body}"
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=0.4, await_echo=True))
        await caller.join()
        await caller.speak()
        await wait_until(lambda: caller.echoes == 20, what="echo in the room made after the restart")
        await caller.conn.leave()
    finally:
        await rest.close()
        sup.stop()
