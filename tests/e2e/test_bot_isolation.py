"""Bots are tenants: a hosted bot reaches nothing of the operator's.

A real supervisor (with a bearer key, the Daily key, a provider key and two profiles'
secret sets in its environment) hosts ``tests/bots/snoop.py``, a bot that tries every read
an attacker would: its environment, every ``/proc/PID/environ``, the supervisor's memory,
the control and event sockets, ``run_dir``, ``sessions.db``, the HTTP API without a key.

The tests run as root, so the supervisor can run workers as another user: that path is
tested as it ships. The unprivileged path (a supervisor that cannot switch users) is tested
by starting the supervisor itself as ``nobody``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from callfleet.privileges import default_worker_user
from protocol.framing import decode, encode
from protocol.messages import Hello
from supervisor import isolation
from supervisor.config import ConfigError
from supervisor.environment import OperatorEnvironment, allowed, bot_env, check_secrets, take_over
from supervisor.profiles import parse as parse_profiles
from tests.conftest import REPO, dropped
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

pipecat = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                             reason="pipecat-ai is not installed (the pipecat extra)")

OPERATOR = {
    "CALLFLEET_TEST_BEARER": "bearer-7d1e0c5b9a",
    "DAILY_API_KEY": "daily-key-3f9a21c4e8",
    "OPENAI_API_KEY": "sk-operator-5b7d93aa10",
    "REDIS_URL": "redis://:redis-pass-81c2f7@redis:6379/0",
    "SNOOP_SECRET": "snoop-secret-62e4a9f0",
    "OTHER_SECRET": "other-secret-0c8d51b7",
}
PROFILES = """
[profiles.echo]
kind = "echo"

[profiles.snoop]
kind = "pipecat"
bot = "tests/bots/snoop.py:bot"
secrets = ["SNOOP_SECRET"]
env = {SNOOP_PLAIN = "plain-value"}

[profiles.other]
kind = "pipecat"
bot = "tests/bots/snoop.py:bot"
secrets = ["OTHER_SECRET"]
"""
# What a snoop session's bot is given besides the allowlist: its own secret set and env,
# the session's key for the supervisor's Daily proxy, and the pool's preload settings.
GIVEN = {"SNOOP_SECRET", "SNOOP_PLAIN", "DAILY_API_KEY", "DAILY_API_URL", "CALLFLEET_BACKEND",
         "CALLFLEET_PIPECAT_BOTS"}
NOT_GIVEN = {k: v for k, v in OPERATOR.items() if k != "SNOOP_SECRET"}
NOBODY = pwd.getpwnam("nobody")


# -- units ---------------------------------------------------------------------------------


def test_take_over_keeps_only_the_allowlist_and_returns_everything() -> None:
    environ = {"PATH": "/bin", "LC_ALL": "C.UTF-8", "HOME": "/root", "OPENAI_API_KEY": "sk-1", "DAILY_API_KEY": "d"}
    snapshot = take_over(environ)
    assert environ == {"PATH": "/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
    assert snapshot["OPENAI_API_KEY"] == "sk-1" and snapshot.get("DAILY_API_KEY") == "d"
    assert "sk-1" not in repr(snapshot)
    assert not allowed("REDIS_URL") and allowed("LC_CTYPE") and allowed("TMPDIR")


def test_a_profile_gets_its_own_secret_set_and_env_and_nothing_else() -> None:
    profiles = parse_profiles(PROFILES)
    environ = OperatorEnvironment(OPERATOR)
    assert bot_env(environ, profiles.profiles["snoop"]) == {"SNOOP_SECRET": OPERATOR["SNOOP_SECRET"],
                                                            "SNOOP_PLAIN": "plain-value"}
    assert bot_env(environ, profiles.profiles["echo"]) == {}


def test_a_profile_secret_missing_from_the_environment_is_named() -> None:
    profiles = parse_profiles(PROFILES)
    with pytest.raises(ConfigError, match=r"profiles.other.secrets: \$OTHER_SECRET is not set"):
        check_secrets(OperatorEnvironment({"SNOOP_SECRET": "x"}), profiles.profiles.values())


@pytest.mark.parametrize("text, key", [
    ('[profiles.a]\nkind = "echo"\nsecrets = "OPENAI_API_KEY"\n', "profiles.a.secrets"),
    ('[profiles.a]\nkind = "echo"\nsecrets = ["NOT A NAME"]\n', "profiles.a.secrets"),
    ('[profiles.a]\nkind = "echo"\nenv = {A = 1}\n', "profiles.a.env"),
])
def test_bad_secrets_or_env_in_a_profile_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_profiles(text)


def test_worker_user_choices() -> None:
    if os.geteuid() != 0:
        pytest.fail("these cases need root: the tests run as root here")
    default = default_worker_user()
    assert default is not None and isolation.plan(None).user == default
    assert isolation.plan(None).warning is None
    assert isolation.plan("nobody").user is not None
    empty = isolation.plan("")
    assert empty.user is None and empty.warning and "sessions.db" in empty.warning
    with pytest.raises(ConfigError, match="pool.worker_user: no user named 'no-such-user-x'"):
        isolation.plan("no-such-user-x")
    with pytest.raises(ConfigError, match="pool.worker_user: 'root' is root"):
        isolation.plan("root")


def test_a_folder_the_workers_user_cannot_reach_is_named() -> None:
    user = isolation.find_user("nobody")
    base = Path(tempfile.mkdtemp(prefix="callfleet-reach-"))  # under /tmp: open to everyone above it
    try:
        closed = base / "closed"
        inner = closed / "site-packages"
        inner.mkdir(parents=True)
        os.chmod(base, 0o755)
        os.chmod(closed, 0o700)
        assert isolation.unreachable(user, [str(REPO), str(inner)]) == f"{inner} ({closed} is closed to it)"
        os.chmod(closed, 0o711)  # passing through is enough for an ancestor
        assert isolation.unreachable(user, [str(REPO), str(inner)]) is None
        os.chmod(inner, 0o711)  # but the folder itself must be listable
        assert isolation.unreachable(user, [str(inner)]) == f"{inner} ({inner} is closed to it)"
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- end to end ------------------------------------------------------------------------------


def _start(tmp: Path, **kwargs: Any) -> SupervisorProcess:
    profiles = tmp / "profiles.toml"
    profiles.write_text(PROFILES)
    os.chmod(profiles, 0o644)
    sup = SupervisorProcess(tmp, None, env=OPERATOR, supervisor={"api_key_env": "CALLFLEET_TEST_BEARER",
                                                                 "profiles": str(profiles)}, **kwargs)
    sup.start(timeout=60)
    return sup


async def _snoop(sup: SupervisorProcess, drop_dir: Path, profile: str, **body: Any) -> dict[str, Any]:
    report = dropped(drop_dir, f"{profile}.json")
    auth = {"Authorization": f"Bearer {OPERATOR['CALLFLEET_TEST_BEARER']}"}
    status, started, _ = await sup.http("POST", "/start", headers=auth, json={"profile": profile, "body": {
        "report": str(report), "run_dir": str(sup.run_dir), "http": sup.url, "supervisor_pid": sup.proc.pid,
        **body}})
    assert status == 200, started

    def written() -> dict[str, Any] | None:
        try:
            return dict(json.loads(report.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return None  # not there yet, or not all written yet

    return await wait_until(written, 60, "the snoop bot's report", interval=0.1)


def _assert_found_nothing_of_the_operators(report: dict[str, Any], supervisor_pid: int) -> None:
    env = report["environ"]
    assert {k for k in env if not allowed(k)} == GIVEN, env.keys()
    assert env["SNOOP_SECRET"] == OPERATOR["SNOOP_SECRET"] and env["SNOOP_PLAIN"] == "plain-value"
    text = json.dumps(report)
    leaked = [name for name, value in NOT_GIVEN.items() if value in text]
    assert leaked == [], f"the bot found {leaked}"
    assert not report["proc_environ"][str(supervisor_pid)]["ok"], "the supervisor's environment is readable"
    assert not report["supervisor_memory"]["ok"], report["supervisor_memory"]
    assert report["http_sessions_status"] == 401


@pipecat
async def test_a_hosted_bot_of_another_user_reaches_nothing_of_the_operators(tmp_path: Path, drop_dir: Path) -> None:
    sup = _start(tmp_path)
    try:
        # Another session's bot, alive and holding its own secret set while the snoop looks.
        await _snoop(sup, drop_dir, "other", linger_s=20)
        report = await _snoop(sup, drop_dir, "snoop")
        worker_user = default_worker_user()
        assert worker_user is not None and report["uid"] == worker_user.uid != 0
        _assert_found_nothing_of_the_operators(report, sup.proc.pid)
        # The lingering bot's worker (same user) is as closed to it as the supervisor.
        assert OPERATOR["OTHER_SECRET"] not in json.dumps(report)
        for name in ("control_socket", "events_socket", "run_dir_listing", "sessions_db"):
            assert not report[name]["ok"], (name, report[name])
        status = json.loads(sup.ctl("--json", "status").stdout)
        assert status["worker_user"] == worker_user.name
        assert "workers are not isolated" not in sup.log_path.read_text()
    finally:
        sup.stop()


def pid_user(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


@pipecat
async def test_without_privileges_workers_get_a_clean_environment_and_one_warning_line(drop_dir: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="callfleet-unprivileged-"))
    os.chown(tmp, NOBODY.pw_uid, NOBODY.pw_gid)
    try:
        sup = _start(tmp, user=NOBODY.pw_uid)
        try:
            report = await _snoop(sup, drop_dir, "snoop")
            assert report["uid"] == NOBODY.pw_uid
            _assert_found_nothing_of_the_operators(report, sup.proc.pid)
            warnings = [line for line in sup.log_path.read_text().splitlines()
                        if "workers are not isolated from the supervisor" in line]
            assert len(warnings) == 1 and "CAP_SETUID" in warnings[0], warnings
            assert json.loads(sup.ctl("--json", "status").stdout)["worker_user"] is None
        finally:
            sup.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def test_a_rogue_peer_with_a_workers_id_but_not_its_secret_is_refused(tmp_path: Path) -> None:
    sup = SupervisorProcess(tmp_path, None)
    sup.start()
    ctx = zmq.Context()
    try:
        workers = await sup.workers(lambda ws: any(w["state"] == "idle" for w in ws))
        victim = next(w for w in workers if w["state"] == "idle")
        endpoint = json.loads(sup.ctl("--json", "status").stdout)["workers_endpoint"]
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        for identity in (victim["id"].encode(), f"{victim['id']}.{'0' * 32}".encode()):
            rogue.setsockopt(zmq.ROUTING_ID, identity)
            rogue.connect(endpoint)
            rogue.send(encode(Hello(worker_id=victim["id"], pid=os.getpid(), protocol_version=1, backend="sandbox")))
            assert rogue.poll(5000), "the rogue Hello is answered"
            assert type(decode(rogue.recv())).__name__ == "Reject"
            rogue.disconnect(endpoint)
        rogue.close(0)
        bot = await sup.start_bot("echo")  # the real worker still serves
        detail = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        assert detail["worker_id"] == victim["id"]
    finally:
        ctx.term()
        sup.stop()


async def test_the_bearer_key_is_exempted_by_route_not_by_a_path_ending_in_stream(tmp_path: Path) -> None:
    sup = SupervisorProcess(tmp_path, None, env={"CALLFLEET_TEST_BEARER": "k-1"},
                            supervisor={"api_key_env": "CALLFLEET_TEST_BEARER"})
    sup.start()
    try:
        for path in ("/sessions/stream", "/bots/start/stream", "/sessions/x/app-message/stream"):
            status, body, _ = await sup.http("GET", path)
            assert status == 401, (path, status, body)
        status, _, _ = await sup.http("GET", "/sessions/stream", headers={"Authorization": "Bearer k-1"})
        assert status == 404  # with the key: an unknown session named "stream"
        status, _, _ = await sup.http("GET", "/healthz")
        assert status == 200
    finally:
        sup.stop()


def test_an_unreadable_bot_file_is_named_at_start_up(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root: the check runs as the workers' user")
    hidden = Path(tempfile.mkdtemp(prefix="callfleet-hidden-"))
    try:
        os.chmod(hidden, 0o755)
        bot = hidden / "bot.py"
        shutil.copy(REPO / "tests" / "bots" / "snoop.py", bot)
        os.chmod(bot, 0o600)
        profiles = tmp_path / "profiles.toml"
        profiles.write_text(f'[profiles.hidden]\nkind = "pipecat"\nbot = "{bot}:bot"\n')
        sup = SupervisorProcess(tmp_path, None, supervisor={"profiles": str(profiles)})
        result = subprocess.run([sys.executable, "-m", "cli", "supervisor", "--config", str(sup.config_path)],
                                cwd=REPO, capture_output=True, text=True, timeout=90)
        assert result.returncode == 2, result
        assert "profiles.hidden.bot" in result.stderr and "not readable by the workers' user" in result.stderr
    finally:
        shutil.rmtree(hidden, ignore_errors=True)


def test_forkserver_and_workers_are_undumpable_and_of_the_workers_user(tmp_path: Path) -> None:
    sup = SupervisorProcess(tmp_path, None)
    sup.start()
    try:
        user = default_worker_user()
        assert user is not None
        deadline = time.monotonic() + 20
        while True:
            mine = [pid for pid in sup.descendants() if pid_user(pid) == user.uid]
            if len(mine) >= 2:  # the forkserver and an idle worker
                break
            assert time.monotonic() < deadline, sup.descendants()
            time.sleep(0.1)
        for pid in mine:
            status = Path(f"/proc/{pid}/status").read_text()
            assert "NoNewPrivs:\t1" in status, pid
            assert "CapEff:\t0000000000000000" in status, pid
        # Non-dumpable: the process's /proc entries belong to root, not to its own user.
        assert all(os.stat(f"/proc/{pid}/environ").st_uid == 0 for pid in mine)
    finally:
        sup.signal(signal.SIGTERM)
        sup.stop()


async def test_the_images_way_a_supervisor_of_its_own_user_keeps_three_capabilities_and_runs_workers_as_a_third(
        drop_dir: Path) -> None:
    """deploy/entrypoint.py started as root with CALLFLEET_SUPERVISOR_USER (as the image
    does): the supervisor runs as that user with CAP_SETUID, CAP_SETGID and CAP_KILL only,
    its workers as ``worker_user``, and a session works."""
    daemon_user = pwd.getpwnam("daemon")  # a third user, standing in for the image's callfleet-bot
    tmp = Path(tempfile.mkdtemp(prefix="callfleet-image-"))
    os.chown(tmp, NOBODY.pw_uid, NOBODY.pw_gid)
    sup = SupervisorProcess(tmp, None, pool={"worker_user": "daemon"})
    env = {**os.environ, "CALLFLEET_SUPERVISOR_USER": "nobody", "CALLFLEET_RENDERED_CONFIG": str(tmp / "rendered.toml"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = _entrypoint(sup, env)
    try:
        async def live() -> Any:
            assert proc.poll() is None, sup.log_path.read_text()[-3000:]
            return await _status(sup)

        await wait_until(live, 60, "the supervisor answering /livez", interval=0.2)
        status = _proc_status(proc.pid)
        assert f"Uid:\t{NOBODY.pw_uid}\t" in status
        assert "CapEff:\t00000000000000e0" in status  # kill, setgid, setuid: nothing else
        assert (tmp / "rendered.toml").stat().st_mode & 0o777 == 0o600
        bot = await sup.start_bot("echo")
        detail = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        assert pid_user(detail["worker_pid"]) == daemon_user.pw_uid
        await sup.http("DELETE", f"/sessions/{bot['session_id']}")
        await sup.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


async def _status(sup: SupervisorProcess) -> Any:
    try:
        code, body, _ = await sup.http("GET", "/livez")
    except OSError:
        return None
    return body if code == 200 else None


def _entrypoint(sup: SupervisorProcess, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(sup.log_path, "a") as log:
        return subprocess.Popen([sys.executable, str(REPO / "deploy" / "entrypoint.py"), str(sup.config_path)],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _proc_status(pid: int) -> str:
    return Path(f"/proc/{pid}/status").read_text()
