"""Logs per session, end to end: real supervisors, forkserver workers, ZeroMQ, sandbox and
pipecat-ai. Every line a session's worker and bot log -- callfleet's structlog lines and
Pipecat's loguru lines -- comes back from ``GET /sessions/{id}/logs`` and ``ctl logs`` with
the session's id, scrubbed, within the per-session cap, after a restart too, and followed
live until the session ends.

The Pipecat bot is ``tests/bots/logging_bot.py``: it logs through loguru, logs the secret
its profile gives it, and logs ``line 0`` ... ``line N-1`` when its body asks.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import REPO
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

needs_pipecat = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                   reason="pipecat-ai is not installed (the pipecat extra)")

API_KEY_ENV = "CALLFLEET_TEST_API_KEY"
API_KEY = "test-api-key-for-session-logs-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BOT_SECRET = "sk-logging-bot-secret-5f3a9c1e7d2b4a6f"
MAX_LINES = 40  # per session, in the Pipecat fleet: above what a session of its own logs
PROFILES = """
[profiles.echo]
kind = "echo"

[profiles.logging]
kind = "pipecat"
bot = "tests/bots/logging_bot.py:bot"
secrets = ["LOGGING_BOT_SECRET"]
"""


def start_supervisor(tmp: Path, *, pipecat: bool, **overrides: Any) -> SupervisorProcess:
    profiles = tmp / "profiles.toml"
    profiles.write_text(PROFILES if pipecat else PROFILES.split("[profiles.logging]")[0])
    sup = SupervisorProcess(tmp, None, env={API_KEY_ENV: API_KEY, "LOGGING_BOT_SECRET": BOT_SECRET},
                            supervisor={"profiles": str(profiles), "api_key_env": API_KEY_ENV}, **overrides)
    sup.start(timeout=90)
    return sup


@pytest.fixture(scope="module")
def pipecat_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProcess]:
    if importlib.util.find_spec("pipecat") is None:
        pytest.skip("pipecat-ai is not installed (the pipecat extra)")
    sup = start_supervisor(tmp_path_factory.mktemp("logs-pipecat"), pipecat=True,
                           logs={"max_lines_per_session": MAX_LINES}, pool={"min_idle": 2})
    try:
        yield sup
    finally:
        sup.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProcess]:
    sup = start_supervisor(tmp_path_factory.mktemp("logs-builtin"), pipecat=False)
    try:
        yield sup
    finally:
        sup.stop()


async def start_pipecat(sup: SupervisorProcess, body: Any = None) -> str:
    status, reply, _ = await sup.http("POST", "/start", headers=AUTH,
                                      json={"createDailyRoom": True, "profile": "logging", "body": body})
    assert status == 200, (status, reply)
    sid = str(reply["sessionId"])
    await joined(sup, sid)
    return sid


async def start_echo(sup: SupervisorProcess) -> str:
    status, reply, _ = await sup.http("POST", "/bots/start", headers=AUTH, json={"bot_profile": "echo"})
    assert status == 200, (status, reply)
    sid = str(reply["session_id"])
    await joined(sup, sid)
    return sid


async def state(sup: SupervisorProcess, sid: str) -> str:
    status, body, _ = await sup.http("GET", f"/sessions/{sid}", headers=AUTH)
    assert status == 200, body
    return str(body["state"])


async def joined(sup: SupervisorProcess, sid: str) -> None:
    await wait_until(lambda: state(sup, sid), 30, f"session {sid} joined", until=lambda s: s == "joined", interval=0.1)


async def stop(sup: SupervisorProcess, sid: str) -> None:
    status, body, _ = await sup.http("DELETE", f"/sessions/{sid}", headers=AUTH)
    assert status == 200, body
    await wait_until(lambda: state(sup, sid), 30, f"session {sid} ended", until=lambda s: s == "ended", interval=0.1)


async def log_text(sup: SupervisorProcess, sid: str, query: str = "") -> str:
    async with aiohttp.ClientSession() as s, s.get(f"{sup.url}/sessions/{sid}/logs{query}", headers=AUTH) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/x-ndjson"
        return await resp.text()


async def log_lines(sup: SupervisorProcess, sid: str, query: str = "") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (await log_text(sup, sid, query)).splitlines()]


async def log_until(sup: SupervisorProcess, sid: str, event_part: str) -> list[dict[str, Any]]:
    """The session's log once a line whose event holds ``event_part`` is in it."""
    return await wait_until(lambda: log_lines(sup, sid), 20, f"a log line with {event_part!r}",
                            until=lambda lines: any(event_part in line["event"] for line in lines), interval=0.2)


# -- a Pipecat bot's session ------------------------------------------------------------------


@needs_pipecat
async def test_a_pipecat_sessions_log_has_its_bots_and_pipecats_loguru_lines_with_its_id(
        pipecat_fleet: SupervisorProcess) -> None:
    sid = await start_pipecat(pipecat_fleet)
    lines = await log_until(pipecat_fleet, sid, "Joined")
    assert all(line["session_id"] == sid for line in lines)
    events = [line["event"] for line in lines]
    # The bot's own loguru line, Pipecat's transport's, and callfleet's worker's, all with the worker's id.
    bot_line = next(line for line in lines if line["event"] == f"logging bot started for session {sid}")
    pipecat_line = next(line for line in lines if line["event"].startswith("Joining "))
    assert pipecat_line["source"].startswith("pipecat.transports.daily.transport:")
    assert bot_line["worker_id"] == pipecat_line["worker_id"]
    assert any(line["event"] == "bot started" and line.get("worker_id") for line in lines)
    # The supervisor's own lines for the session are there too, in the order they were filed.
    assert "session state" in events
    await stop(pipecat_fleet, sid)


@needs_pipecat
async def test_a_secret_a_bot_logs_is_scrubbed_from_its_session_log(pipecat_fleet: SupervisorProcess) -> None:
    sid = await start_pipecat(pipecat_fleet)
    await log_until(pipecat_fleet, sid, "my key is")
    text = await log_text(pipecat_fleet, sid)
    assert BOT_SECRET not in text
    assert any(line["event"] == "my key is [redacted]" for line in map(json.loads, text.splitlines()))
    await stop(pipecat_fleet, sid)


@needs_pipecat
async def test_follow_streams_lines_logged_after_it_started_and_ends_when_the_session_ends(
        pipecat_fleet: SupervisorProcess) -> None:
    sid = await start_pipecat(pipecat_fleet)
    await log_until(pipecat_fleet, sid, "Joined")
    followed: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as s, \
            s.get(f"{pipecat_fleet.url}/sessions/{sid}/logs?follow=1", headers=AUTH) as resp:
        assert resp.status == 200 and resp.content_type == "application/x-ndjson"
        # The stored lines come first; once the join is among them the follow is under way,
        # and the stop (with every line it makes the bot and worker log) comes after.
        while not any(line["event"].startswith("Joined ") for line in followed):
            followed.append(json.loads(await resp.content.readline()))
        stopping = asyncio.ensure_future(stop(pipecat_fleet, sid))
        async for raw in resp.content:  # ends when the reply ends: when the session has ended
            followed.append(json.loads(raw))
        await stopping
    events = [line["event"] for line in followed]
    assert any(event.startswith("Left ") for event in events), events  # Pipecat's transport, on the stop
    assert "left the call" in events  # the worker, answering the supervisor's Leave
    assert all(line["session_id"] == sid for line in followed)
    assert await state(pipecat_fleet, sid) == "ended"


@needs_pipecat
async def test_a_session_over_its_line_cap_keeps_its_newest_lines_and_says_how_many_went(
        pipecat_fleet: SupervisorProcess) -> None:
    sid = await start_pipecat(pipecat_fleet, body={"lines": 100})
    await stop(pipecat_fleet, sid)
    lines = await log_lines(pipecat_fleet, sid)
    marker, kept = lines[0], lines[1:]
    assert len(kept) == MAX_LINES
    assert marker["session_id"] == sid and marker["level"] == "warning"
    assert marker["dropped"] >= 100 - MAX_LINES
    assert f"{marker['dropped']} earlier lines dropped" in marker["event"]
    events = [line["event"] for line in kept]
    assert "line 0" not in events and "line 99" in events
    assert events[-1] == "session state"  # the newest line, the session's end, is kept


@needs_pipecat
async def test_a_bot_cannot_write_into_another_sessions_log(pipecat_fleet: SupervisorProcess) -> None:
    victim = await start_echo(pipecat_fleet)
    forger = await start_pipecat(pipecat_fleet, body={"forge": victim})
    await log_until(pipecat_fleet, forger, "Joined")  # logged after the forged line, by the same bot
    await stop(pipecat_fleet, forger)
    await stop(pipecat_fleet, victim)
    assert "forged line" in pipecat_fleet.log_path.read_text()  # it was logged: its worker's stderr has it
    for sid in (victim, forger):
        assert "forged line" not in await log_text(pipecat_fleet, sid)


@needs_pipecat
async def test_tail_gives_the_last_lines(pipecat_fleet: SupervisorProcess) -> None:
    sid = await start_pipecat(pipecat_fleet, body={"lines": 5})
    await stop(pipecat_fleet, sid)
    everything = await log_lines(pipecat_fleet, sid)
    assert await log_lines(pipecat_fleet, sid, "?tail=3") == everything[-3:]
    assert await log_lines(pipecat_fleet, sid, f"?tail={len(everything) + 10}") == everything


# -- a built-in bot's session -----------------------------------------------------------------------


async def test_a_builtin_bots_session_log_has_its_workers_lines_and_the_supervisors(
        fleet: SupervisorProcess) -> None:
    sid = await start_echo(fleet)
    await stop(fleet, sid)
    lines = await log_lines(fleet, sid)
    assert all(line["session_id"] == sid for line in lines)
    worker_events = [line["event"] for line in lines if "worker_id" in line]
    assert "joined the call" in worker_events and "left the call" in worker_events
    assert worker_events.index("joined the call") < worker_events.index("left the call")
    states = [line["state"] for line in lines if line["event"] == "session state"]
    assert states[0] == "assigned" and states[-1] == "ended"


async def test_logs_of_an_unknown_session_are_404_in_dailys_error_shape(fleet: SupervisorProcess) -> None:
    status, body, _ = await fleet.http("GET", "/sessions/no-such-session/logs", headers=AUTH)
    assert status == 404
    assert body == {"error": "not-found", "info": "session no-such-session not found"}
    status, body, _ = await fleet.http("GET", "/sessions/no-such-session/logs?follow=1", headers=AUTH)
    assert status == 404 and body["error"] == "not-found"


async def test_logs_need_the_bearer_key(fleet: SupervisorProcess) -> None:
    sid = await start_echo(fleet)
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, body, _ = await fleet.http("GET", f"/sessions/{sid}/logs", headers=headers)
            assert status == 401 and body["error"] == "authentication-error", body
    finally:
        await stop(fleet, sid)


async def test_bad_tail_and_follow_are_400(fleet: SupervisorProcess) -> None:
    sid = await start_echo(fleet)
    await stop(fleet, sid)
    for query, field in (("?tail=0", "tail"), ("?tail=ten", "tail"), ("?tail=-3", "tail"), ("?follow=yes", "follow")):
        status, body, _ = await fleet.http("GET", f"/sessions/{sid}/logs{query}", headers=AUTH)
        assert status == 400 and body["error"] == "invalid-request-error", (query, body)
        assert body["info"].startswith(f"{field}: "), body


async def test_a_sessions_log_survives_a_supervisor_restart(tmp_path: Path) -> None:
    sup = start_supervisor(tmp_path, pipecat=False)
    try:
        sid = await start_echo(sup)
        await stop(sup, sid)
        before = await log_text(sup, sid)
        assert "left the call" in before
        sup.stop()
        sup.start(timeout=60)  # the same config, the same run_dir
        assert await log_text(sup, sid) == before
    finally:
        sup.stop()


# -- ctl logs ---------------------------------------------------------------------------------------


def ctl(sup: SupervisorProcess, *args: str) -> list[str]:
    return [sys.executable, "-m", "cli", "ctl", "--config", str(sup.config_path), *args]


async def test_ctl_logs_prints_a_sessions_lines_and_refuses_an_unknown_id(fleet: SupervisorProcess) -> None:
    sid = await start_echo(fleet)
    await stop(fleet, sid)
    result = fleet.ctl("logs", sid)
    assert result.returncode == 0, result.stderr
    assert result.stdout == await log_text(fleet, sid)
    tail = fleet.ctl("logs", sid, "--tail", "2")
    assert tail.stdout.splitlines() == result.stdout.splitlines()[-2:]
    unknown = fleet.ctl("logs", "no-such-session")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "callfleet ctl logs: no session no-such-session"
    bad = fleet.ctl("logs", sid, "--tail", "0")
    assert bad.returncode == 2 and "--tail: expected a number of lines of 1 or more" in bad.stderr


async def test_ctl_logs_follow_prints_new_lines_until_the_session_ends(fleet: SupervisorProcess) -> None:
    sid = await start_echo(fleet)
    follower = subprocess.Popen(ctl(fleet, "logs", sid, "--follow"), cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())  # it prints what is kept first
        assert first["session_id"] == sid
        await stop(fleet, sid)
        rest, errors = await asyncio.to_thread(follower.communicate, timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, errors
    events = [json.loads(line)["event"] for line in rest.splitlines()]
    assert "left the call" in events  # logged by the worker after the follow began, on the stop
    assert json.loads(rest.splitlines()[-1])["state"] == "ended"


async def test_ctl_logs_into_a_closed_pipe_ends_without_a_traceback(fleet: SupervisorProcess, tmp_path: Path) -> None:
    sid = await start_echo(fleet)
    errors = tmp_path / "stderr"
    command = " ".join(ctl(fleet, "logs", sid, "--follow")) + f" 2>{errors} | head -n 1"
    pipeline = subprocess.Popen(["bash", "-c", command], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert pipeline.stdout is not None
        assert json.loads(pipeline.stdout.readline())["session_id"] == sid
        # head has its line and exits; the lines the stop makes the worker log go to a closed pipe.
        await stop(fleet, sid)
        await asyncio.to_thread(pipeline.wait, 30)
    finally:
        if pipeline.poll() is None:
            pipeline.kill()
    assert errors.read_text() == ""
