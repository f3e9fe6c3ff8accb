"""Hosting the user's own Pipecat bot (``kind = "pipecat"``), end to end.

Real pipecat-ai, real supervisor and forkserver workers, real sandbox, real synthetic
callers. The bots are ``tests/bots/recording.py``: plain Pipecat Cloud bots that build
their own ``DailyTransport`` and write what they got (``runner_args``, environment, what
the Daily proxy answered them, how they ended) to ``$CALLFLEET_TEST_BOT_RECORD``.

Most tests share one supervisor (its start imports Pipecat twice: the bot check and the
forkserver preload); those that need their own configuration or end the daemon start
their own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.caller import Caller, CallerOptions
from tests.conftest import REPO, SandboxProcess, dropped
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

RECORD_ENV = "CALLFLEET_TEST_BOT_RECORD"
IDLE_TIMEOUT_S = 3
PROFILES = """
[profiles.pipecat_echo]
kind = "pipecat"
bot = "examples/pipecat_echo.py:bot"

[profiles.recording]
kind = "pipecat"
bot = "tests/bots/recording.py:bot"
secrets = ["CALLFLEET_TEST_BOT_RECORD"]

[profiles.raises]
kind = "pipecat"
bot = "tests/bots/recording.py:bot_raises"
secrets = ["CALLFLEET_TEST_BOT_RECORD"]

[profiles.raises_at_once]
kind = "pipecat"
bot = "tests/bots/recording.py:bot_raises_at_once"
secrets = ["CALLFLEET_TEST_BOT_RECORD"]

[profiles.ends_then_returns]
kind = "pipecat"
bot = "tests/bots/recording.py:bot_ends_then_returns"
secrets = ["CALLFLEET_TEST_BOT_RECORD"]

[profiles.ends_then_raises]
kind = "pipecat"
bot = "tests/bots/recording.py:bot_ends_then_raises"
secrets = ["CALLFLEET_TEST_BOT_RECORD"]
"""

class Fleet:
    """A supervisor hosting the test bots, the sandbox it uses and the bots' record."""

    def __init__(self, sup: SupervisorProcess, sandbox: SandboxProcess, record: Path) -> None:
        self.sup = sup
        self.sandbox = sandbox
        self.record = record

    def records(self, session_id: str, event: str | None = None) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        found = [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]
        return [r for r in found if r.get("session_id") == session_id and (event is None or r["event"] == event)]

    async def wait_record(self, session_id: str, event: str, count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        await wait_until(lambda: len(self.records(session_id, event)) >= count, timeout, f"{count} {event!r} record(s)")
        return self.records(session_id, event)

    async def start(self, profile: str, body: Any = None) -> dict[str, Any]:
        status, reply, _ = await self.sup.http("POST", "/start", json={"createDailyRoom": True, "profile": profile,
                                                                       "body": body})
        assert status == 200, (status, reply)
        return dict(reply)

    async def ended(self, session_id: str, timeout: float = 20) -> dict[str, Any]:
        return await self.sup.wait_session(session_id, lambda d: d["state"] in ("ended", "failed"), timeout=timeout)


def start_supervisor(tmp: Path, sandbox: SandboxProcess | None, record: Path, **overrides: Any) -> SupervisorProcess:
    profiles = tmp / "profiles.toml"
    profiles.write_text(PROFILES)
    overrides.setdefault("supervisor", {})["profiles"] = str(profiles)
    sup = SupervisorProcess(tmp, sandbox.port if sandbox else None, **overrides)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(RECORD_ENV, str(record))  # the recording profiles' secret set: their bots get it
        sup.start(timeout=60)
    return sup


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, drop_dir: Path) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("pipecat-fleet")
    sandbox = SandboxProcess("--no-rate-limits")
    record = dropped(drop_dir, "bots.jsonl")
    try:
        sup = start_supervisor(tmp, sandbox, record, pool={"min_idle": 2, "max_workers": 6},
                               sessions={"failover": True, "idle_timeout_s": IDLE_TIMEOUT_S})
        try:
            yield Fleet(sup, sandbox, record)
        finally:
            sup.stop()
    finally:
        sandbox.stop()


def environ_of(pid: int) -> bytes:
    """The environment the kernel shows for ``pid`` (what it was started or forked with)."""
    return Path(f"/proc/{pid}/environ").read_bytes()


async def caller_in(room_url: str, token: str, seconds: float = 1.0) -> Caller:
    caller = Caller(CallerOptions(room_url=room_url, token=token, seconds=seconds, await_echo=True))
    await caller.join()
    return caller


async def hears_echo(caller: Caller, frames: int) -> None:
    caller.sent_at.clear()
    caller.echoes = caller.frames_sent = 0
    caller.probe_echoed.clear()
    await caller.wait_for_echo()  # audio sent before the bot subscribed is rightly never heard
    await caller.speak()
    # Pipecat's output transport writes 40 ms chunks (audio_out_10ms_chunks = 4): a last
    # lone 20 ms frame waits in its buffer for more audio, so one frame may stay unheard.
    try:
        await wait_until(lambda: caller.echoes >= frames - 1, timeout=10, what=f"{frames} frames echoed")
    except AssertionError:
        raise AssertionError(f"{caller.echoes} of {caller.frames_sent} frames echoed (heard {caller.frames_heard})") from None


# -- what the bot receives ---------------------------------------------------------------------


async def test_start_runs_the_bot_with_the_request_body_and_session_id_and_a_caller_hears_it(fleet: Fleet) -> None:
    started = await fleet.start("recording", body={"user": "ada", "lang": "en"})
    sid = started["sessionId"]
    caller = await caller_in(started["dailyRoom"], started["dailyToken"])
    try:
        [args] = await fleet.wait_record(sid, "start")
        assert args["body"] == {"user": "ada", "lang": "en"}
        assert args["room_url"] == started["dailyRoom"]
        assert args["token"] and args["token"] != started["dailyToken"]  # the bot's own (owner) token
        joined = await fleet.sup.wait_session(sid, lambda d: d["state"] == "joined")
        assert joined["worker_pid"] == args["pid"]  # it ran in the session's worker
        await hears_echo(caller, 50)
    finally:
        await caller.conn.leave()


async def test_the_shipped_pipecat_echo_profile_echoes_a_caller(fleet: Fleet) -> None:
    started = await fleet.start("pipecat_echo")
    caller = await caller_in(started["dailyRoom"], started["dailyToken"])
    try:
        await hears_echo(caller, 50)
    finally:
        await caller.conn.leave()
    assert (await fleet.ended(started["sessionId"]))["end_reason"] == "participant_left"


async def test_bots_start_gives_the_bot_the_daily_bots_fields_as_its_body(fleet: Fleet) -> None:
    request = {"bot_profile": "recording", "max_duration": 300, "services": {"tts": "cartesia"},
               "config": [{"service": "tts", "options": [{"name": "voice", "value": "v1"}]}],
               "service_options": {"cartesia": {"speed": "fast"}}}
    bot = await fleet.sup.start_bot(**request)
    [args] = await fleet.wait_record(bot["session_id"], "start")
    assert args["body"] == {k: request[k] for k in ("bot_profile", "services", "config", "service_options")}
    assert args["room_url"] == bot["room_url"]
    await fleet.sup.http("DELETE", f"/sessions/{bot['session_id']}")
    await fleet.ended(bot["session_id"])


# -- how the bot's session ends --------------------------------------------------------------------


async def test_delete_cancels_the_bot_and_ends_the_session_stopped(fleet: Fleet) -> None:
    started = await fleet.start("recording")
    sid = started["sessionId"]
    caller = await caller_in(started["dailyRoom"], started["dailyToken"], seconds=0.5)
    try:
        await hears_echo(caller, 25)
        status, _, _ = await fleet.sup.http("DELETE", f"/sessions/{sid}")
        assert status == 200
        done = await fleet.ended(sid)
        assert (done["state"], done["end_reason"]) == ("ended", "stopped")
        [ended] = await fleet.wait_record(sid, "returned")
        assert ended["cancelled_by_host"], ended  # Pipecat's runner swallows the cancel: the task still saw it
    finally:
        await caller.conn.leave()


async def test_idle_timeout_cancels_a_bot_nobody_joined(fleet: Fleet) -> None:
    started = await fleet.start("recording")
    sid = started["sessionId"]
    done = await fleet.ended(sid, timeout=IDLE_TIMEOUT_S + 15)
    assert (done["state"], done["end_reason"]) == ("ended", "idle")
    [ended] = await fleet.wait_record(sid, "returned")
    assert ended["cancelled_by_host"], ended


async def test_a_bot_that_raises_fails_the_session_bot_error_with_its_exception_line_and_logs_the_traceback(
        fleet: Fleet) -> None:
    started = await fleet.start("raises")
    done = await fleet.ended(started["sessionId"])
    assert (done["state"], done["end_reason"]) == ("failed", "bot_error"), done
    assert done["error"] == f"BotExploded: session {started['sessionId']} blew up on purpose", done  # one line, no traceback
    log = fleet.sup.log_path.read_text()
    assert any('"bot raised"' in line and started["sessionId"] in line and "BotExploded" in line
               for line in log.splitlines()), "the traceback is not in the log"


async def test_a_bot_that_raises_before_joining_fails_the_session_bot_error(fleet: Fleet) -> None:
    started = await fleet.start("raises_at_once")
    done = await fleet.ended(started["sessionId"])
    assert (done["state"], done["end_reason"]) == ("failed", "bot_error"), done
    assert done["error"] == f"bot() raised before joining: BotExploded: session {started['sessionId']} could not even start"


async def test_a_bot_that_returns_after_its_pipeline_ended_ends_the_session_bot_finished(fleet: Fleet) -> None:
    started = await fleet.start("ends_then_returns")
    done = await fleet.ended(started["sessionId"])
    assert (done["state"], done["end_reason"]) == ("ended", "bot_finished"), done


async def test_a_bot_that_raises_after_its_pipeline_ended_fails_the_session_bot_error(fleet: Fleet) -> None:
    started = await fleet.start("ends_then_raises")
    done = await fleet.ended(started["sessionId"])
    assert (done["state"], done["end_reason"]) == ("failed", "bot_error"), done
    assert "BotExploded" in (done["error"] or "")


async def test_a_worker_sigkilled_mid_call_runs_the_bot_again_on_a_new_worker(fleet: Fleet) -> None:
    started = await fleet.start("recording")
    sid = started["sessionId"]
    caller = await caller_in(started["dailyRoom"], started["dailyToken"], seconds=0.5)
    try:
        await hears_echo(caller, 25)
        before = await fleet.sup.session(sid)
        os.kill(before["worker_pid"], signal.SIGKILL)
        after = await fleet.sup.wait_session(sid, lambda d: d["failovers"] == 1 and d["state"] == "joined")
        assert after["worker_pid"] != before["worker_pid"]
        first, second = await fleet.wait_record(sid, "start", count=2)
        assert (first["pid"], second["pid"]) == (before["worker_pid"], after["worker_pid"])
        assert second["room_url"] == first["room_url"] and second["token"] != first["token"]  # same room, fresh token
        await hears_echo(caller, 25)
    finally:
        await caller.conn.leave()


# -- Daily's REST API, through the supervisor, never with the account key ----------------------


async def test_the_daily_proxy_serves_a_bot_its_own_room_and_refuses_another(fleet: Fleet) -> None:
    foreign = await fleet.start("recording")  # another session's room: the probe's forbidden target
    foreign_room = foreign["dailyRoom"].rsplit("/", 1)[1]
    started = await fleet.start("recording", body={"probe_rest": foreign_room})
    sid = started["sessionId"]
    [args] = await fleet.wait_record(sid, "start")
    assert args["api_url"] == f"{fleet.sup.url}/daily/v1" and args["api_key"]
    [rest] = await fleet.wait_record(sid, "rest")
    assert rest["own_room"] == started["dailyRoom"].rsplit("/", 1)[1]
    assert rest["own_token"]  # DailyRESTHelper.get_token for its own room
    assert rest["foreign_room"]["status"] == 403
    assert rest["foreign_room"]["body"]["error"] == "forbidden-error"
    assert "status: 403" in rest["foreign_token"] and "forbidden-error" in rest["foreign_token"]
    # The session key reaches nothing once its session has ended.
    for s in (sid, foreign["sessionId"]):
        await fleet.sup.http("DELETE", f"/sessions/{s}")
        await fleet.ended(s)
    status, body, _ = await fleet.sup.http("GET", f"/daily/v1/rooms/{rest['own_room']}",
                                           headers={"Authorization": f"Bearer {args['api_key']}"})
    assert status == 401 and body["error"] == "authentication-error", (status, body)


async def test_a_workers_environment_never_holds_the_account_key(tmp_path: Path, sandbox_proc: SandboxProcess,
                                                                  drop_dir: Path) -> None:
    secret = "some-account-secret-4f1c9e"
    record = dropped(drop_dir, "bots.jsonl")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CALLFLEET_TEST_ACCOUNT_KEY", secret)
        sup = start_supervisor(tmp_path, sandbox_proc, record, daily={"api_key_env": "CALLFLEET_TEST_ACCOUNT_KEY"})
    fleet = Fleet(sup, sandbox_proc, record)
    try:
        started = await fleet.start("recording")
        sid = started["sessionId"]
        [args] = await fleet.wait_record(sid, "start")
        busy = await sup.wait_session(sid, lambda d: d["state"] == "joined")
        # What the bot itself sees: the session's proxy key, never the account's.
        assert args["environ"]["DAILY_API_KEY"] == args["api_key"] and args["api_key"] != secret
        assert secret not in json.dumps(args["environ"])
        # What the kernel shows of every process below the supervisor: forkserver, idle and busy workers.
        assert sup.proc is not None and secret.encode() in environ_of(sup.proc.pid)  # the daemon was given it
        pids = sup.descendants()
        assert busy["worker_pid"] in pids
        for pid in pids:
            assert secret.encode() not in environ_of(pid), f"pid {pid} holds the account key"
        await sup.http("DELETE", f"/sessions/{sid}")
        await fleet.ended(sid)
    finally:
        sup.stop()


# -- drain, import failures, logs --------------------------------------------------------------------


async def test_drain_cancels_a_live_bot_and_ends_its_session_drained(tmp_path: Path, sandbox_proc: SandboxProcess,
                                                                      drop_dir: Path) -> None:
    record = dropped(drop_dir, "bots.jsonl")
    sup = start_supervisor(tmp_path, sandbox_proc, record, supervisor={"drain_timeout_s": 1})
    fleet = Fleet(sup, sandbox_proc, record)
    try:
        started = await fleet.start("recording")
        sid = started["sessionId"]
        caller = await caller_in(started["dailyRoom"], started["dailyToken"], seconds=0.2)
        try:
            await hears_echo(caller, 10)
            sup.signal(signal.SIGTERM)
            assert await asyncio.to_thread(sup.wait, 30) == 0
        finally:
            await caller.conn.leave()
        rec = sup.stored(sid)
        assert rec is not None
        assert (rec.state, rec.end_reason) == ("ended", "drained")
        [ended] = fleet.records(sid, "returned")
        assert ended["cancelled_by_host"], ended
    finally:
        sup.stop()


def test_a_bot_module_that_does_not_import_stops_start_up_with_exit_2_naming_the_profile(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(PROFILES + '\n[profiles.broken]\nkind = "pipecat"\nbot = "tests/bots/broken_import.py:bot"\n')
    sup = SupervisorProcess(tmp_path, None, supervisor={"profiles": str(profiles)})
    result = subprocess.run([sys.executable, "-m", "cli", "supervisor", "--config", str(sup.config_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=90,
                            env={**os.environ, RECORD_ENV: str(tmp_path / "unused.jsonl")})
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "profiles.broken.bot" in result.stderr and "NoSuchTransport" in result.stderr, result.stderr[-2000:]
    assert "HTTP API" not in result.stdout


async def test_pipecat_log_lines_join_the_supervisor_log_as_json_with_session_and_worker(fleet: Fleet) -> None:
    started = await fleet.start("recording")
    sid = started["sessionId"]
    await fleet.wait_record(sid, "start")
    wanted = f"recording bot started for session {sid}"
    logged = await wait_until(lambda: [text for text in fleet.sup.log_path.read_text().splitlines() if wanted in text],
                              10, "the bot's loguru line in the supervisor log")
    line = json.loads(logged[-1])  # a JSON line, not loguru's own format
    assert line["event"] == wanted and line["session_id"] == sid
    detail = await fleet.sup.session(sid)
    assert line["worker_id"] == detail["worker_id"], (line, detail)
    assert line["source"].startswith("callfleet_bot_recording")  # which module logged it, as loguru knew
    await fleet.sup.http("DELETE", f"/sessions/{sid}")
    await fleet.ended(sid)
