"""Load: 100 participants in 50 rooms exchange 20 ms frames for 10 s and lose none.

The sandbox's CPU per routed frame is printed (measured, not asserted: see
``callfleet bench`` for targets)."""

from __future__ import annotations

import asyncio

from sandbox.caller import Caller, CallerOptions
from tests.conftest import DailyRest, SandboxProcess

ROOMS = 50
SECONDS = 10.0


async def test_100_participants_in_50_rooms_lose_no_frame() -> None:
    sandbox = SandboxProcess("--no-rate-limits")
    rest = DailyRest(sandbox.api_url)
    try:
        urls = [(await rest.ok("POST", "/rooms", json={"name": f"load-{i}"}))["url"] for i in range(ROOMS)]
        callers = [Caller(CallerOptions(room_url=url, seconds=SECONDS, user_name=f"c{i}{j}", markers=False))
                   for i, url in enumerate(urls) for j in range(2)]
        await asyncio.gather(*(c.join() for c in callers))
        await asyncio.sleep(0.3)
        cpu_before = sandbox.cpu_seconds()
        routed_before = (await rest.ok("GET", "/sandbox/stats"))["frames_routed"]
        await asyncio.gather(*(c.speak() for c in callers))
        await asyncio.sleep(0.5)  # the last frames in flight
        cpu = sandbox.cpu_seconds() - cpu_before
        stats = await rest.ok("GET", "/sandbox/stats")
        routed = stats["frames_routed"] - routed_before
        sent = sum(c.frames_sent for c in callers)
        heard = sum(c.frames_heard for c in callers)
        print(f"\nsandbox load: {sent} frames sent, {heard} heard, {routed} routed, "
              f"{cpu:.2f} s CPU = {cpu / max(routed, 1) * 1e6:.1f} us per routed frame")
        assert sent == len(callers) * int(SECONDS * 50)
        assert heard == sent, f"lost {sent - heard} frames"
        assert stats["frames_dropped"] == 0
        await asyncio.gather(*(c.leave(0) for c in callers))
    finally:
        await rest.close()
        sandbox.stop()
