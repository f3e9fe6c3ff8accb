"""Webhooks end to end: a real supervisor, real workers and sandbox, and a real HTTP receiver
started by the test. ``session.started`` and ``session.ended`` arrive signed; a receiver that
hangs, fails or is gone costs retries and then one log line per event, never a session's
progress; bad settings stop start-up naming the key."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, SandboxProcess, free_port
from tests.doubles.webhook_receiver import HANG, WebhookReceiver, verify
from tests.supervisor_harness import SupervisorProcess, toml
from tests.waiting import wait_until

SECRET_ENV = "CALLFLEET_TEST_WEBHOOK_SECRET"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()

ONE_SANDBOX = True  # conftest's sandbox_proc: each test has its own supervisor and receiver and looks only at its own sessions


@pytest.fixture
async def receivers() -> AsyncIterator[list[WebhookReceiver]]:
    """Every receiver a test started; closed at its end."""
    started: list[WebhookReceiver] = []
    try:
        yield started
    finally:
        for receiver in started:
            await receiver.close()


async def receiver_of(receivers: list[WebhookReceiver], *script: Any, then: Any = 200) -> WebhookReceiver:
    receiver = WebhookReceiver(list(script), then)
    await receiver.start()
    receivers.append(receiver)
    return receiver


def supervisor(tmp_path: Path, sandbox: SandboxProcess, url: str, **webhooks: Any) -> SupervisorProcess:
    sup = SupervisorProcess(tmp_path, sandbox.port, env={SECRET_ENV: SECRET},
                            webhooks={"url": url, "secret_env": SECRET_ENV, **webhooks})
    sup.start()
    return sup


def log_lines(sup: SupervisorProcess) -> list[dict[str, Any]]:
    lines = []
    for line in sup.log_path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def dropped(sup: SupervisorProcess) -> list[dict[str, Any]]:
    return [e for e in log_lines(sup) if str(e.get("event", "")).startswith("webhook dropped")]


async def a_session_ends(sup: SupervisorProcess) -> tuple[str, dict[str, Any]]:
    """A session starts, its bot joins, it is stopped; its id and final detail."""
    bot = await sup.start_bot("echo", max_duration=300)
    sid = bot["session_id"]
    await sup.wait_session(sid, lambda d: d["state"] == "joined", timeout=60, what="the bot joined")
    status, _, _ = await sup.http("DELETE", f"/sessions/{sid}")
    assert status == 200
    return sid, await sup.wait_session(sid, lambda d: d["state"] == "ended", what="the session ended")


def environ_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""  # exited meanwhile


async def test_started_and_ended_arrive_signed_with_the_sessions_figures(
        tmp_path: Path, sandbox_proc: SandboxProcess, receivers: list[WebhookReceiver]) -> None:
    receiver = await receiver_of(receivers)
    sup = supervisor(tmp_path, sandbox_proc, receiver.url)
    try:
        sid, detail = await a_session_ends(sup)
        await wait_until(lambda: len(receiver.delivered()) == 2, timeout=20, what="both events delivered")
        started, ended = receiver.delivered("session.started"), receiver.delivered("session.ended")
        assert len(started) == len(ended) == 1
        for request in (*started, *ended):
            assert verify(SECRET, request), request.headers
            assert not verify("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(), request)
            assert request.headers["webhook-id"] == request.event["id"]
            assert set(request.event) == {"type", "id", "created_at", "data"}
            assert request.event["data"]["session_id"] == sid
        begin, end = started[0].event["data"], ended[0].event["data"]
        assert begin["profile"] == "echo" and begin["kind"] == "echo" and begin["room_url"] == detail["room_url"]
        assert begin["started_at"] == detail["joined_at"]
        assert end["state"] == "ended" and end["end_reason"] == "stopped"
        assert end["started_at"] == detail["joined_at"] and end["ended_at"] == detail["ended_at"]
        assert end["duration_s"] == round(detail["ended_at"] - detail["joined_at"], 3) and end["duration_s"] > 0
        assert end["frames"] == detail["frames"]
        for key in ("turns", "usage"):  # the session detail's figures, when this version has them
            assert end.get(key) == detail.get(key)
        # The secret reached no log line and no worker; the URL's query (a token) no log line.
        log_text = sup.log_path.read_text()
        assert SECRET not in log_text and SECRET.removeprefix("whsec_") not in log_text
        assert "in-the-url" not in log_text
        for pid in sup.descendants():
            environ = environ_of(pid)
            assert SECRET_ENV not in environ and SECRET.removeprefix("whsec_") not in environ
    finally:
        sup.stop()


async def test_a_500_is_retried_and_the_event_delivered_once(
        tmp_path: Path, sandbox_proc: SandboxProcess, receivers: list[WebhookReceiver]) -> None:
    receiver = await receiver_of(receivers, 500)  # the first POST (session.started) fails once
    sup = supervisor(tmp_path, sandbox_proc, receiver.url, retry_base_s=0.1, retry_max_s=0.2)
    try:
        await a_session_ends(sup)
        await wait_until(lambda: len(receiver.delivered()) == 2, timeout=20, what="both events delivered")
        tries = receiver.attempts("session.started")
        assert [r.status for r in tries] == [500, 200]
        assert tries[0].headers["webhook-id"] == tries[1].headers["webhook-id"]
        assert len(receiver.delivered("session.started")) == len(receiver.delivered("session.ended")) == 1
        assert dropped(sup) == []
    finally:
        sup.stop()


async def test_a_session_left_by_a_crashed_supervisor_is_announced_ended_by_the_next_start(
        tmp_path: Path, sandbox_proc: SandboxProcess, receivers: list[WebhookReceiver]) -> None:
    receiver = await receiver_of(receivers)
    sup = supervisor(tmp_path, sandbox_proc, receiver.url)
    try:
        bot = await sup.start_bot("echo", max_duration=300)
        sid = bot["session_id"]
        await sup.wait_session(sid, lambda d: d["state"] == "joined", timeout=60, what="the bot joined")
        await wait_until(lambda: receiver.delivered("session.started"), timeout=20, what="session.started delivered")
        assert sup.proc is not None
        sup.proc.kill()  # no drain, no session.ended
        sup.proc.wait(10)
        sup.start()
        ended = await wait_until(lambda: receiver.delivered("session.ended"), timeout=30,
                                 what="session.ended after the restart")
        data = ended[0].event["data"]
        assert data["session_id"] == sid and data["state"] == "failed" and data["end_reason"] == "supervisor_lost"
        assert verify(SECRET, ended[0]) and len(ended) == 1
    finally:
        sup.stop()


def gone_url() -> str:
    return f"http://127.0.0.1:{free_port()}/hooks/callfleet"  # nothing listens there


FAILING: dict[str, tuple[Callable[[], Any], str]] = {
    # receiver script (None: no receiver at all), what the last attempt looks like in the log
    "hangs": (lambda: [HANG] * 10, "timeout"),
    "answers_500": (lambda: [500] * 10, "HTTP 500"),
    "is_gone": (lambda: None, "ClientConnectorError"),
}


@pytest.mark.parametrize("failure", list(FAILING))
async def test_an_unreachable_receiver_costs_retries_then_one_line_per_event_and_never_a_session(
        failure: str, tmp_path: Path, sandbox_proc: SandboxProcess, receivers: list[WebhookReceiver]) -> None:
    script, last = FAILING[failure]
    answers = script()
    receiver = None if answers is None else await receiver_of(receivers, *answers, then=answers[0])
    sup = supervisor(tmp_path, sandbox_proc, gone_url() if receiver is None else receiver.url,
                     timeout_s=1, max_attempts=3, retry_base_s=0.1, retry_max_s=0.2)
    try:
        sid, detail = await a_session_ends(sup)
        # The session started and ended although no webhook had been taken.
        assert detail["end_reason"] == "stopped"
        if receiver is not None:
            assert receiver.delivered() == []
        lines = await wait_until(lambda: dropped(sup), timeout=30, what="both events dropped",
                                 until=lambda found: len(found) >= 2)
        assert sorted(e["type"] for e in lines) == ["session.ended", "session.started"]
        for line in lines:
            assert line["event"] == "webhook dropped: not delivered" and line["level"] == "warning"
            assert line["session_id"] == sid and line["attempts"] == 3 and line["last"].startswith(last)
        if receiver is not None:
            assert len(receiver.attempts("session.started")) == len(receiver.attempts("session.ended")) == 3
        # Sessions go on as usual meanwhile: another one starts and ends.
        _, after = await a_session_ends(sup)
        assert after["end_reason"] == "stopped"
        assert SECRET.removeprefix("whsec_") not in sup.log_path.read_text()
    finally:
        sup.stop()


async def test_a_4xx_is_not_retried_and_is_dropped_with_one_line(
        tmp_path: Path, sandbox_proc: SandboxProcess, receivers: list[WebhookReceiver]) -> None:
    receiver = await receiver_of(receivers, then=410)
    sup = supervisor(tmp_path, sandbox_proc, receiver.url, retry_base_s=0.1, retry_max_s=0.2)
    try:
        sid, _ = await a_session_ends(sup)
        lines = await wait_until(lambda: dropped(sup), timeout=20, what="both events refused",
                                 until=lambda found: len(found) >= 2)
        for line in lines:
            assert line["event"] == "webhook dropped: refused by the receiver"
            assert line["session_id"] == sid and line["attempts"] == 1 and line["last"] == "HTTP 410"
        assert len(receiver.requests) == 2
    finally:
        sup.stop()


# -- bad settings stop start-up -------------------------------------------------------------------


def start_with(tmp_path: Path, webhooks: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "callfleet.toml"
    config.write_text(toml({"supervisor": {"http_port": free_port(), "run_dir": str(tmp_path / "run"),
                                           "profiles": str(REPO / "tests" / "data" / "profiles.toml")},
                            "sandbox": {"port": free_port()}, "webhooks": webhooks}))
    clean = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    return subprocess.run([sys.executable, "-m", "cli", "supervisor", "--config", str(config)], cwd=REPO,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("webhooks", "env", "code", "message"), [
    ({"url": "https://hooks.example.com/callfleet"}, {}, 2,
     "webhooks.secret_env: required with webhooks.url"),
    ({"url": "hooks.example.com", "secret_env": SECRET_ENV}, {}, 2, "webhooks.url: expected an http(s) URL"),
    ({"url": "https://hooks.example.com/callfleet", "secret_env": SECRET_ENV}, {}, 1,
     f"webhooks.secret_env: ${SECRET_ENV} is not set in the supervisor's environment"),
    ({"url": "https://hooks.example.com/callfleet", "secret_env": SECRET_ENV}, {SECRET_ENV: "not-a-secret-at-all"}, 1,
     f"webhooks.secret_env: ${SECRET_ENV} is not a webhook secret"),
])
def test_bad_webhook_settings_stop_start_up_naming_the_key(tmp_path: Path, webhooks: dict[str, Any],
                                                           env: dict[str, str], code: int, message: str) -> None:
    result = start_with(tmp_path, webhooks, env)
    assert result.returncode == code, result.stderr[-2000:]
    assert message in result.stderr
    assert "not-a-secret-at-all" not in result.stderr + result.stdout
