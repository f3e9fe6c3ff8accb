"""``callfleet bench --profile pipecat_echo`` end to end, small: a real sandbox, supervisor
and workers, then the peer (Pipecat's runner stand-in, ``bench.peer``) on the same
sandbox, with real synthetic callers. It checks what the report says, not how fast, and that
``--plot`` draws it."""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

HOST_KEYS = {"sessions", "seconds", "start_latency_ms", "start_alone_ms", "echo_rtt_ms", "direct_rtt_ms",
             "added_latency_ms", "frames", "cpu_s_per_session_minute", "pss_mb_per_session", "leaks", "samples"}


def png_size(path: Path) -> tuple[int, int]:
    """A PNG file's width and height; fails unless it is one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_bench_of_a_pipecat_profile_reports_the_peer_beside_callfleet(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    picture = tmp_path / "bench.png"
    result = subprocess.run([sys.executable, "-m", "cli", "bench", "--profile", "pipecat_echo",
                             "--sessions", "2", "--seconds", "2", "--out", str(out), "--plot", str(picture)],
                            cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    peer = report["peer"]
    assert report["profile"] == "pipecat_echo"
    assert HOST_KEYS <= set(report) and HOST_KEYS <= set(peer)
    for host in (report, peer):
        assert host["sessions"] == 2
        # Both hosts' bots echoed the same callers (a loaded machine may drop a few frames).
        assert host["frames"]["sent"] > 0 and host["frames"]["received"] >= 0.9 * host["frames"]["sent"]
        assert host["cpu_s_per_session_minute"] > 0 and host["pss_mb_per_session"] > 0
        # The raw samples behind the percentiles: every start, every echo heard.
        samples = host["samples"]
        assert len(samples["start_latency_ms"]) == 2 and len(samples["echo_rtt_ms"]) == host["frames"]["received"]
        assert max(samples["echo_rtt_ms"]) >= host["echo_rtt_ms"]["p99"] >= min(samples["echo_rtt_ms"])
    assert report["leaks"] == {"processes": 0, "rooms": 0}
    # Every peer bot ended when its caller left; the rooms it made are the runner's to leave.
    assert peer["leaks"]["sessions"] == 0 and peer["leaks"]["processes"] == 0
    assert report["worker_pss_mb"]["idle"] and report["worker_pss_mb"]["in_call"]
    assert "Pipecat's development runner" in result.stdout
    assert png_size(picture) == (1320, 495)  # one N: the distributions, no capacity row
    assert f"callfleet bench: drew {picture}" in result.stdout


def test_bench_of_several_n_runs_each_and_draws_the_capacity_curve(tmp_path: Path) -> None:
    out = tmp_path / "ladder.json"
    picture = tmp_path / "ladder.png"
    result = subprocess.run([sys.executable, "-m", "cli", "bench", "--sessions", "2,1", "--seconds", "1",
                             "--out", str(out), "--plot", str(picture)],
                            cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(out.read_text())["runs"]
    assert [run["sessions"] for run in runs] == [1, 2]  # ascending, one after the other
    for run in runs:
        assert run["profile"] == "echo" and "peer" not in run  # echo is no pipecat profile: no peer
        assert run["frames"]["sent"] > 0 and len(run["samples"]["echo_rtt_ms"]) == run["frames"]["received"]
        assert run["leaks"] == {"processes": 0, "rooms": 0}
    assert png_size(picture) == (1320, 935)  # the distributions and the capacity row


def test_bench_of_phone_calls_reports_callfleet_and_the_runners_ws_peer(tmp_path: Path) -> None:
    out = tmp_path / "phone.json"
    result = subprocess.run([sys.executable, "-m", "cli", "bench", "--transport", "twilio",
                             "--sessions", "2", "--seconds", "2", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    peer = report["peer"]
    assert report["profile"] == "phone_echo" and report["transport"] == "twilio"
    phone_keys = HOST_KEYS | {"supervisor_cpu_us_per_frame", "worker_pss_mb"}
    assert phone_keys <= set(report) and HOST_KEYS <= set(peer)
    for host in (report, peer):
        assert host["sessions"] == 2
        frames = host["frames"]
        assert frames["sent"] > 0 and frames["received"] >= 0.9 * frames["sent"]
        assert frames["lost"] == frames["sent"] - frames["received"]
        for key in ("start_latency_ms", "echo_rtt_ms", "direct_rtt_ms", "added_latency_ms"):
            assert set(host[key]) == {"p50", "p99"}
    assert report["supervisor_cpu_us_per_frame"] > 0
    assert report["leaks"] == {"processes": 0, "sessions": 0}
    assert peer["leaks"] == {"processes": 0, "sessions": 0}
    assert "phone calls over Twilio Media Streams" in result.stdout


async def test_the_bench_phones_count_the_chunks_whose_echo_never_came_as_lost() -> None:
    """A Media Streams server that echoes every other chunk: half the phones' chunks are lost."""
    import aiohttp
    from aiohttp import web

    from bench.phone import BenchPhone, phone_talk
    from bench.talk import Window

    async def every_other(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        n = 0
        async for message in ws:
            data = json.loads(message.data)
            if data.get("event") == "media":
                n += 1
                if n % 2:
                    await ws.send_str(json.dumps({"event": "media", "streamSid": data["streamSid"],
                                                  "media": {"payload": data["media"]["payload"]}}))
        return ws

    app = web.Application()
    app.router.add_get("/ws", every_other)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            phones = [BenchPhone(f"ws://127.0.0.1:{port}/ws", 0.0) for _ in range(2)]
            for phone in phones:
                await phone.open(http)
            said = await phone_talk(http, phones, 1.0, Window(), lambda text: None, "test")  # type: ignore[arg-type]
    finally:
        await runner.cleanup()
    assert said.sent >= 80  # two phones, 50 chunks a second each
    assert said.received == pytest.approx(said.sent / 2, abs=4)
    assert said.lost == said.sent - said.received
    assert said.direct_rtts and said.echo_rtts
