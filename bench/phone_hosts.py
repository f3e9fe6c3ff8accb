"""``callfleet bench --transport twilio``: the figures of phone sessions, on callfleet (its
``POST /start {"transport": "websocket"}`` and ``WS /ws/{profile}/{token}``) and on the
peer (Pipecat's development runner's Twilio shape: ``POST /`` answers TwiML whose
``<Stream url>`` is its ``/ws``, a task per call), with the phones of ``bench.phone``.

Start latency runs from sending the start request to the phone hearing its first echoed
chunk. ``supervisor_cpu_us_per_frame`` is the supervisor's CPU over the window per media
message it relayed (the phones' chunks out and the echoes back: it relays both).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp

from bench.peer_host import PeerProcess
from bench.phone import BenchPhone, phone_talk
from bench.progress import Progress
from bench.report import host_report
from bench.stack import Stack
from bench.talk import ProcessTreeWindow, json_request
from callfleet.procfs import descendants, memory_mb

LONE_STARTS = 3
STREAM_URL = re.compile(r'<Stream url="([^"]+)"')


async def start_callfleet_call(http: aiohttp.ClientSession, api: str, profile: str) -> BenchPhone:
    """``POST /start`` for a WebSocket session, then the phone on its ``wsUrl``, speaking."""
    sent = time.monotonic()
    status, body = await json_request(http, "POST", f"{api}/start",
                                      json={"transport": "websocket", "profile": profile, "body": {}})
    if status != 200:
        raise RuntimeError(f"/start answered {status}: {body}")
    phone = BenchPhone(body["wsUrl"], sent)
    phone.session_id = body["sessionId"]
    await phone.open(http)
    return phone


async def start_peer_call(http: aiohttp.ClientSession, url: str) -> BenchPhone:
    """The runner's Twilio webhook (``POST /``), then the phone on the TwiML's stream URL."""
    sent = time.monotonic()
    async with http.post(f"{url}/", data={"CallSid": "CAbench", "From": "+15550100", "To": "+15550199"}) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"the peer's / answered {resp.status}: {text}")
    found = STREAM_URL.search(text)
    if found is None:
        raise RuntimeError(f"the peer's TwiML has no <Stream url>: {text}")
    phone = BenchPhone(found.group(1), sent)
    await phone.open(http)
    return phone


async def lone_starts(start: Any, after: Any) -> list[float]:
    """``LONE_STARTS`` calls one at a time: each start latency; ``after`` runs once each hangs up."""
    alone = []
    for _ in range(LONE_STARTS):
        phone = await start()
        alone.append(await phone.wait_first_echo())
        await phone.hang_up()
        await after()
    return alone


async def burst(start: Any, n: int) -> tuple[list[BenchPhone], list[float]]:
    phones = await asyncio.gather(*(start() for _ in range(n)))
    latencies = await asyncio.gather(*(p.wait_first_echo() for p in phones))
    return list(phones), list(latencies)


async def measure_peer_phone(stack: Stack, n: int, seconds: float, progress: Progress, bot: str) -> dict[str, Any]:
    """The peer's figures for ``n`` phone calls of ``bot``."""
    peer = PeerProcess(stack, bot)
    async with aiohttp.ClientSession() as http:
        progress("peer: starting Pipecat's runner stand-in (one process, a task per call)")
        peer.start()
        try:
            await asyncio.sleep(1.0)
            mem = memory_mb(peer.pid)
            pss_idle = round(mem[0], 1) if mem else None

            async def running() -> int:
                return int((await json_request(http, "GET", f"{peer.url}/sessions"))[1]["running"])

            async def settle() -> None:
                deadline = time.monotonic() + 30
                while await running() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)

            progress(f"peer: {LONE_STARTS} lone calls, one at a time")
            alone = await lone_starts(lambda: start_peer_call(http, peer.url), settle)
            progress(f"peer: {n} calls at once")
            phones, latencies = await burst(lambda: start_peer_call(http, peer.url), n)
            window = ProcessTreeWindow(peer.pid)
            said = await phone_talk(http, phones, seconds, window, progress, "peer")
            progress("peer: every phone hung up; waiting for the bots to end, checking for leaks")
            await settle()
            left = await running()
            processes = len(descendants(peer.pid))
        finally:
            peer.stop()
    in_call = window.pss_mb
    return {
        **host_report(n, seconds, latencies, alone, said, window.figures(n)),
        "process_pss_mb": {"idle": pss_idle, "in_call": round(in_call, 1) if in_call else None},
        "leaks": {"processes": processes, "sessions": left},
    }
