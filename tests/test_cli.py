"""The ``callfleet`` command line, run as operators run it."""

from __future__ import annotations

import json
import subprocess
import sys

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
