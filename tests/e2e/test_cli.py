"""The ``callfleet`` command line, run as operators run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, DailyRest, SandboxProcess


def callfleet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_unknown_subcommand_is_bad_usage() -> None:
    result = callfleet("frobnicate")
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr


def test_no_subcommand_prints_usage_and_exits_2() -> None:
    result = callfleet()
    assert result.returncode == 2 and "usage: callfleet" in result.stdout


async def test_caller_measures_the_echo_of_another_caller() -> None:
    sandbox = SandboxProcess()
    rest = DailyRest(sandbox.api_url)
    try:
        room = await rest.ok("POST", "/rooms", json={"name": "cli"})
        echo = subprocess.Popen([sys.executable, "-m", "cli", "caller", room["url"], "--echo", "--seconds", "4"],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import asyncio

            for _ in range(100):
                if (await rest.ok("GET", "/rooms/cli/presence"))["total_count"] == 1:
                    break
                await asyncio.sleep(0.05)
            result = await asyncio.to_thread(callfleet, "caller", room["url"], "--tone", "300", "--seconds", "1", "--json")
        finally:
            echo.wait(15)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["frames_sent"] == 50
        assert summary["echoes"] == 50 and summary["lost_echoes"] == 0
        assert 0 < summary["rtt_ms"]["p50"] < 100
        bad = callfleet("caller", f"{sandbox.base_url}/missing", "--seconds", "1")
        assert bad.returncode == 1 and "does not exist" in bad.stderr
    finally:
        await rest.close()
        sandbox.stop()


async def test_phone_calls_a_webhook_says_its_sentence_and_is_hung_up_through_the_sandbox(tmp_path: Path) -> None:
    import asyncio

    import aiohttp

    from callfleet.audio import read_wav, rms
    from tests.doubles.twilio_server import TwilioServer, hang_up

    sandbox = SandboxProcess()
    server = TwilioServer(echo=True)
    await server.start()
    record = tmp_path / "heard.wav"
    try:
        phone = asyncio.create_task(asyncio.to_thread(
            callfleet, "phone", server.webhook_url, "--say", "hello there", "--speak-at", "0", "--seconds", "30",
            "--sandbox", sandbox.base_url, "--record", str(record)))
        await server.until(lambda: len(server.of("media")) >= 50, "a second of the phone's speech", timeout=30)
        async with aiohttp.ClientSession() as session, session.get(f"{sandbox.base_url}/ai/script") as resp:
            assert (await resp.json())["transcripts"] == ["hello there"]  # declared to the stand-in STT
        start = server.of("start")[0]["start"]
        status, _ = await hang_up(sandbox.base_url, start["accountSid"], start["callSid"])
        assert status == 200
        result = await phone
    finally:
        await server.stop()
        sandbox.stop()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"call {start['callSid']}: webhook answered 200, TwiML Connect/Stream" in out
    assert f"stream {server.stream_url} opened ({start['streamSid']})" in out
    assert "hung up by the server, through the REST API" in out
    assert server.received[-1]["event"] == "stop"
    pcm, rate, _ = read_wav(record)
    assert rate == 8000 and rms(pcm) > 300  # its own sentence, echoed back and played out


def test_phone_that_reaches_no_webhook_says_so_and_exits_1() -> None:
    result = callfleet("phone", "http://127.0.0.1:9/voice", "--seconds", "1")
    assert result.returncode == 1
    assert "hung up by nobody: it failed: the webhook could not be reached" in result.stdout
