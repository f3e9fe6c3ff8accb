"""Daily REST faults while 50 sessions start: 20 % 5xx, 429 bursts with Retry-After and
2 s stalls. At least 99 % start; the rest fail with 502/504 in Daily's error shape; no
room is leaked or created twice."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from tests.conftest import DailyRest, SandboxProcess
from tests.supervisor_harness import SupervisorProcess

SESSIONS = 50


async def test_fifty_starts_through_rest_faults(tmp_path: Path) -> None:
    sandbox = SandboxProcess("--no-rate-limits")
    rest = DailyRest(sandbox.api_url)
    sup = SupervisorProcess(tmp_path, sandbox.port,
                            pool={"min_idle": 0, "max_workers": SESSIONS, "start_timeout_s": 60},
                            daily={"request_timeout_s": 5.0, "max_retries": 6, "requests_per_second": 100},
                            sessions={"idle_timeout_s": 120, "join_timeout_s": 60})
    sup.start()
    try:
        await rest.ok("POST", "/sandbox/faults", json={"error_rate": 0.2, "stall_rate": 0.05, "stall_s": 2.0,
                                                        "rate_limit_burst": 15, "retry_after_s": 1, "seed": 11})
        replies = await asyncio.gather(*(sup.http("POST", "/bots/start", json={"bot_profile": "echo"})
                                         for _ in range(SESSIONS)))
        started = [body for status, body, _ in replies if status == 200]
        failed = [(status, body) for status, body, _ in replies if status != 200]
        for status, body in failed:
            assert status in (502, 504) and set(body) == {"error", "info"}, (status, body)
        assert len(started) >= math.ceil(0.99 * SESSIONS), failed
        print(f"\nREST faults: {len(started)}/{SESSIONS} started, failures: {[s for s, _ in failed]}")
        # Teardown under the same 5xx rate (no stalls, to keep the test short).
        await rest.ok("POST", "/sandbox/faults", json={"stall_rate": 0.0})
        for body in started:
            await sup.http("DELETE", f"/sessions/{body['session_id']}")
        for body in started:
            await sup.wait_session(body["session_id"], lambda d: d["state"] in ("ended", "failed"), timeout=60)
        await rest.ok("POST", "/sandbox/faults", json={"error_rate": 0.0})
        stats = await rest.ok("GET", "/sandbox/stats")
        assert stats["rooms"] == 0, "a room was leaked"
        assert stats["rooms_created"] == len(started), "a room was created twice (or one without a session)"
        retries = [line for line in (await sup.http("GET", "/metrics"))[1].splitlines()
                   if line.startswith("callfleet_rest_retries_total")]
        assert float(retries[0].split()[-1]) > 0
    finally:
        sup.stop()
        await rest.close()
        sandbox.stop()
