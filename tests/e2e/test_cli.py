"""The ``callfleet`` command line, run as operators run it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from sandbox.caller import Caller, CallerOptions
from tests.conftest import REPO, DailyRest, SandboxProcess
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

ONE_SANDBOX = True  # conftest's sandbox_proc: each test has its own supervisor and looks only at its own sessions


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


def closed_stdout(*args: str) -> tuple[int, str]:
    """``callfleet ARGS`` writing to a pipe whose reader has gone (``| head`` once it has its
    lines): its exit status and stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_a_closed_stdout_ends_a_command_quietly_with_status_141() -> None:
    assert closed_stdout("--help") == (141, "")


async def test_ctl_session_shows_a_hang_up_as_how_the_session_ended_and_people_without_the_bot(
        tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port)
    sup.start()
    try:
        bot = await sup.start_bot("echo")
        sid = bot["session_id"]
        await sup.wait_session(sid, lambda d: d["state"] == "joined")
        caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=1.0))
        await caller.join()
        await sup.wait_session(sid, lambda d: len(d["participants"]) == 2, what="the caller seen")
        listing = sup.ctl("sessions").stdout.splitlines()
        people = listing[0].split().index("PEOPLE")
        assert [row.split()[people] for row in listing[1:] if row.startswith(sid)] == ["1"], listing
        # More rows than a reader wants: `ctl sessions | head -3` ends quietly.
        assert closed_stdout("ctl", "--config", str(sup.config_path), "sessions") == (141, "")

        await caller.conn.leave()
        ended = await sup.wait_session(sid, lambda d: d["state"] == "ended", what="the session ended")
        assert ended["end_reason"] == "participant_left" and ended["error"] is None, ended
        assert ended["end_detail"] == "the last participant left"
        shown = sup.ctl("session", sid)
        assert shown.returncode == 0, shown.stderr
        assert "ended           the last participant left" in shown.stdout.splitlines()
        assert not any(line.startswith("error") for line in shown.stdout.splitlines()), shown.stdout
    finally:
        sup.stop()


async def test_healthz_and_ctl_status_say_external_for_a_sandbox_the_supervisor_did_not_start(
        tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port)  # [sandbox] start = false
    sup.start()
    try:
        status, health, _ = await sup.http("GET", "/healthz")
        assert status == 200 and health["sandbox"] == "external", health
        shown = sup.ctl("status")
        assert shown.returncode == 0 and "sandbox    external (not started by this supervisor)" in shown.stdout
    finally:
        sup.stop()


async def test_a_refused_ctl_reload_is_logged_as_a_refused_sighup_is(tmp_path: Path,
                                                                    sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port)
    sup.start()

    def refusals() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in sup.log_path.read_text().splitlines() if "reload refused" in line]
        return [line for line in lines if line.get("event") == "reload refused"]

    try:
        sup.config["pool"]["max_workers"] = 0
        sup.write_config()
        # Over the socket: the broken file is the daemon's to refuse (ctl --config would read it itself).
        refused = subprocess.run([sys.executable, "-m", "cli", "ctl", "--socket", str(sup.run_dir / "control.sock"),
                                  "reload"], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 1 and "pool.max_workers" in refused.stderr, refused.stderr
        by_ctl = await wait_until(refusals, 10, "the ctl reload's refusal logged", until=lambda found: len(found) == 1)
        assert "pool.max_workers" in str(by_ctl[0]["error"])
        sup.signal(signal.SIGHUP)
        both = await wait_until(refusals, 10, "the SIGHUP's refusal logged", until=lambda found: len(found) == 2)
        assert both[0]["error"] == both[1]["error"], both  # one path: the same line whoever asked
        assert "Traceback" not in sup.log_path.read_text()
    finally:
        sup.stop()
