"""The supervisor end to end: real daemon, real forkserver workers, real sandbox, real callers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.caller import Caller, CallerOptions
from tests.conftest import DailyRest, SandboxProcess
from tests.supervisor_harness import SupervisorProcess, alive
from tests.waiting import wait_until

ONE_SANDBOX = True  # conftest's sandbox_proc: each test looks only at its own rooms and sessions


@pytest.fixture
async def own_sandbox() -> AsyncIterator[tuple[SandboxProcess, DailyRest]]:
    """A sandbox of the test's own and its REST client, for a test that wants it empty at its end."""
    sandbox = SandboxProcess("--no-rate-limits")
    rest = DailyRest(sandbox.api_url)
    try:
        yield sandbox, rest
    finally:
        await rest.close()
        sandbox.stop()


def supervisor(tmp_path: Path, sandbox: SandboxProcess | None, **overrides: Any) -> SupervisorProcess:
    sup = SupervisorProcess(tmp_path, sandbox.port if sandbox else None, **overrides)
    sup.start()
    return sup


async def caller_in(bot: dict[str, Any], seconds: float = 1.0) -> Caller:
    caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=seconds, await_echo=True))
    await caller.join()
    return caller


async def rooms(rest: DailyRest) -> list[str]:
    return [r["name"] for r in (await rest.ok("GET", "/rooms"))["data"]]


async def test_sessions_start_echo_and_stop_with_ctl(tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest) -> None:
    sup = supervisor(tmp_path, sandbox_proc)
    try:
        bot = await sup.start_bot("echo", max_duration=300)
        assert set(bot) == {"room_url", "token", "session_id", "stream_token"}
        detail = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        assert detail["worker_pid"] and detail["joined_at"] >= detail["assigned_at"] >= detail["requested_at"]
        caller = await caller_in(bot)
        await caller.speak()
        await wait_until(lambda: caller.echoes == 50, what="every frame echoed")
        assert caller.frames_sent == 50
        detail = await sup.session(bot["session_id"])
        assert [p["is_bot"] for p in detail["participants"]] == [True, False]
        # ctl, for people and for machines
        assert bot["session_id"] in sup.ctl("sessions").stdout
        shown = sup.ctl("session", bot["session_id"])
        assert shown.returncode == 0 and "joined" in shown.stdout and "(bot)" in shown.stdout
        status = json.loads(sup.ctl("--json", "status").stdout)
        assert status["sessions"] == {"joined": 1} and status["state"] == "running"
        assert "busy" in sup.ctl("workers").stdout
        stopped = sup.ctl("stop", bot["session_id"])
        assert stopped.returncode == 0
        done = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "ended")
        assert done["end_reason"] == "stopped"
        assert done["frames"]["in"] >= 50 and done["frames"]["out"] >= 50
        assert bot["room_url"].rsplit("/", 1)[1] not in await rooms(sandbox_rest)  # our room is deleted
        await caller.conn.leave()
        # errors: unknown session, unknown command, bad arguments
        missing = sup.ctl("stop", "nope")
        assert missing.returncode == 1 and "no live session nope" in missing.stderr
        assert sup.ctl("frobnicate").returncode == 2
        assert sup.ctl("scale", "--min-idle", "x").returncode == 2
        bad_scale = sup.ctl("scale", "--min-idle", "9", "--max-workers", "2")
        assert bad_scale.returncode == 1 and "cannot exceed" in bad_scale.stderr
        status, body, _ = await sup.http("DELETE", "/sessions/unknown")
        assert status == 404 and body["error"] == "not-found"
    finally:
        sup.stop()


async def test_existing_room_is_not_ours_to_delete(tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest) -> None:
    sup = supervisor(tmp_path, sandbox_proc)
    try:
        room = await sandbox_rest.ok("POST", "/rooms", json={"name": "theirs"})
        bot = await sup.start_bot("echo", room_url=room["url"])
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        await sup.http("DELETE", f"/sessions/{bot['session_id']}")
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "ended")
        assert "theirs" in await rooms(sandbox_rest)
    finally:
        sup.stop()


async def test_scaling_by_editing_the_config_and_reload_or_sighup(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = supervisor(tmp_path, sandbox_proc)
    try:
        await sup.workers(lambda ws: len([w for w in ws if w["state"] == "idle"]) == 1)
        sup.config["pool"]["min_idle"] = 3
        sup.write_config()
        reply = sup.ctl("reload")
        assert reply.returncode == 0 and "min_idle=3" in reply.stdout
        await sup.workers(lambda ws: len([w for w in ws if w["state"] == "idle"]) == 3)
        sup.config["pool"]["min_idle"] = 2
        sup.write_config()
        sup.signal(signal.SIGHUP)
        await sup.workers(lambda ws: len([w for w in ws if w["state"] == "idle"]) == 2)
        scaled = sup.ctl("scale", "--min-idle", "0")
        assert scaled.returncode == 0
        await sup.workers(lambda ws: not ws)
        sup.config["pool"]["max_workers"] = 0
        sup.write_config()
        # ctl itself refuses the broken file it was pointed at (exit 2)...
        assert sup.ctl("reload").returncode == 2
        # ...and the daemon, asked over the socket, refuses to load it and keeps running.
        import subprocess
        import sys

        from tests.conftest import REPO

        refused = subprocess.run([sys.executable, "-m", "cli", "ctl", "--socket", str(sup.run_dir / "control.sock"),
                                  "reload"], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 1 and "pool.max_workers: expected int >= 1" in refused.stderr, refused.stderr
    finally:
        sup.stop()


async def test_pool_full_answers_429_with_retry_after(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = supervisor(tmp_path, sandbox_proc, pool={"min_idle": 0, "max_workers": 1})
    try:
        await sup.start_bot("echo")
        status, body, headers = await sup.http("POST", "/bots/start", json={"bot_profile": "echo"})
        assert status == 429 and body["error"] == "rate-limit-error" and headers["Retry-After"] == "1"
    finally:
        sup.stop()


async def test_worker_sigkilled_mid_call_fails_over_to_a_new_worker(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = supervisor(tmp_path, sandbox_proc, sessions={"failover": True})
    try:
        bot = await sup.start_bot("echo")
        before = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        caller = await caller_in(bot, seconds=0.5)
        await caller.speak()
        await wait_until(lambda: caller.echoes == 25, what="every frame echoed")
        killed_at = time.monotonic()
        os.kill(before["worker_pid"], signal.SIGKILL)
        after = await sup.wait_session(bot["session_id"], lambda d: d["failovers"] == 1 and d["state"] == "joined")
        failover_s = time.monotonic() - killed_at
        assert after["worker_pid"] != before["worker_pid"]
        assert after["session_id"] == bot["session_id"] and after["failover_gap_ms"] > 0
        print(f"\nfailover: {after['failover_gap_ms']:.0f} ms recorded gap, {failover_s * 1000:.0f} ms observed")
        caller.sent_at.clear()
        caller.echoes = caller.frames_sent = 0
        caller.probe_echoed.clear()
        await caller.wait_for_echo()  # the new worker subscribes afresh
        await caller.speak()
        await wait_until(lambda: caller.echoes == 25, what="the caller hears its echo again")
        await caller.conn.leave()
    finally:
        sup.stop()


async def test_worker_sigkilled_without_failover_fails_the_session_and_deletes_the_room(
    tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest
) -> None:
    sup = supervisor(tmp_path, sandbox_proc)
    try:
        bot = await sup.start_bot("echo")
        detail = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        os.kill(detail["worker_pid"], signal.SIGKILL)
        failed = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "failed")
        assert failed["end_reason"] == "worker_crashed" and "SIGKILL" in failed["error"]
        assert bot["room_url"].rsplit("/", 1)[1] not in await rooms(sandbox_rest)
    finally:
        sup.stop()


async def test_sigterm_drains_every_session_and_leaves_no_process(tmp_path: Path) -> None:
    # the supervisor starts its own sandbox child; sessions nobody ends are drained after 2 s
    sup = supervisor(tmp_path, None, supervisor={"drain_timeout_s": 2})
    try:
        bots = [await sup.start_bot("echo") for _ in range(2)]
        for bot in bots:
            await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        children = sup.descendants()
        assert len(children) >= 4  # forkserver, sandbox, workers
        sup.signal(signal.SIGTERM)
        assert sup.wait(30) == 0
        await wait_until(lambda: [pid for pid in children if alive(pid)], 10, "every child of the supervisor gone",
                         until=lambda living: living == [])
        for bot in bots:
            record = sup.stored(bot["session_id"])
            assert record.state == "ended" and record.end_reason == "drained"
        log = sup.log_path.read_text()
        assert "could not delete the room" not in log
    finally:
        sup.stop()


async def test_garbage_on_workers_sock_is_counted_and_dropped(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    import zmq

    sup = supervisor(tmp_path, sandbox_proc)
    try:
        ctx = zmq.Context()
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.ROUTING_ID, b"rogue")
        rogue.connect(json.loads(sup.ctl("--json", "status").stdout)["workers_endpoint"])
        for junk in ([b"\xff" * 10], [b"\x01\xc1"], [b"a", b"b", b"c"], [os.urandom(64)]):
            rogue.send_multipart(junk)
        from protocol.framing import encode
        from protocol.messages import Hello

        rogue.send(encode(Hello(worker_id="rogue", pid=1, protocol_version=1, backend="x")))
        assert rogue.poll(5000), "a rogue Hello is answered with Reject"
        from protocol.framing import decode

        assert type(decode(rogue.recv())).__name__ == "Reject"
        rogue.close(0)
        ctx.term()
        status = await wait_until(lambda: json.loads(sup.ctl("--json", "status").stdout), 10, "4 bad frames counted",
                                  until=lambda s: s["bad_frames"] >= 4)
        assert status["state"] == "running"
        bot = await sup.start_bot("echo")
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        code, _, _ = await sup.http("GET", "/healthz")
        assert code == 200
    finally:
        sup.stop()


async def test_garbage_on_control_sock_gets_an_error_reply(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    import zmq

    sup = supervisor(tmp_path, sandbox_proc)
    try:
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.connect(f"ipc://{sup.run_dir / 'control.sock'}")
        for junk, expected in ((b"not json", "malformed request"), (b"[1,2]", "malformed request"),
                               (b'{"command": "nope"}', "unknown command"),
                               (b'{"command": "scale", "args": {"min_idle": "x"}}', "min_idle")):
            s.send(junk)
            assert s.poll(5000)
            reply = json.loads(s.recv())
            assert reply["ok"] is False and expected in reply["error"], reply
        s.close(0)
        ctx.term()
        assert sup.ctl("status").returncode == 0
    finally:
        sup.stop()


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    for text, key in (("[pool]\nmax_workers = 0\n", "pool.max_workers: expected int >= 1"),
                      ("[pool]\nbogus = 1\n", "pool.bogus: unknown key"),
                      ("[sessions]\nmax_duration_s = 20000\n", "sessions.max_duration_s: expected int <= 14400"),
                      ("[pool\n", "not valid TOML"),
                      ('[supervisor]\nhttp_host = "0.0.0.0"\n', "supervisor.api_key_env: required when http_host")):
        path = tmp_path / "bad.toml"
        path.write_text(text)
        result = subprocess.run([sys.executable, "-m", "cli", "supervisor", "--config", str(path)],
                                cwd=REPO, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and key in result.stderr, (text, result.stderr)


async def test_idle_session_ends_and_the_event_feed_reports_every_transition(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    import zmq

    sup = supervisor(tmp_path, sandbox_proc, sessions={"idle_timeout_s": 1.0})
    try:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"session")
        sub.connect(f"ipc://{sup.run_dir / 'events.sock'}")
        await sup.followed()
        bot = await sup.start_bot("echo")
        done = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "ended", timeout=15)
        assert done["end_reason"] == "idle"
        states = []
        while sub.poll(500):
            _, data = sub.recv_multipart()
            event = json.loads(data)
            if event["session_id"] == bot["session_id"]:
                states.append(event["state"])
        assert states == ["assigned", "joining", "joined", "leaving", "ended"]
        sub.close(0)
        ctx.term()
    finally:
        sup.stop()


async def test_worker_death_is_detected_at_once(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    """Not a timing assertion: the figure is printed for the record (see `callfleet bench`)."""
    import zmq

    sup = supervisor(tmp_path, sandbox_proc)
    try:
        workers = await sup.workers(lambda ws: any(w["state"] == "idle" for w in ws))
        victim = next(w for w in workers if w["state"] == "idle")
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"worker")
        sub.connect(f"ipc://{sup.run_dir / 'events.sock'}")
        await sup.followed()
        killed = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        detected = None
        while sub.poll(5000):
            _, data = sub.recv_multipart()
            event = json.loads(data)
            if event["worker_id"] == victim["id"] and event["state"] == "dead":
                detected = time.monotonic() - killed
                assert "SIGKILL" in event["reason"]
                break
        assert detected is not None, "the pool never reported the dead worker"
        print(f"\nworker death detected after {detected * 1000:.1f} ms")
        await sup.workers(lambda ws: any(w["state"] == "idle" for w in ws))  # replaced
        sub.close(0)
        ctx.term()
    finally:
        sup.stop()


async def test_ctl_drain_and_ctl_events(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    sup = supervisor(tmp_path, sandbox_proc, supervisor={"drain_timeout_s": 2})  # nobody ends the session
    try:
        follower = subprocess.Popen([sys.executable, "-m", "cli", "ctl", "--config", str(sup.config_path), "events"],
                                    cwd=REPO, stdout=subprocess.PIPE, text=True)
        await sup.followed()
        bot = await sup.start_bot("echo")
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        drained = sup.ctl("drain")
        assert drained.returncode == 0 and "draining" in drained.stdout
        assert sup.wait(30) == 0
        follower.terminate()
        out, _ = follower.communicate(timeout=10)
        lines = [line for line in out.splitlines() if bot["session_id"] in line]
        assert any('"state":"joined"' in line for line in lines), out[-2000:]
        assert any('"end_reason":"drained"' in line for line in lines), out[-2000:]
    finally:
        sup.stop()


async def test_pooled_rooms_serve_starts_and_are_never_leaked(
        tmp_path: Path, own_sandbox: tuple[SandboxProcess, DailyRest]) -> None:
    sandbox_proc, sandbox_rest = own_sandbox
    sup = supervisor(tmp_path, sandbox_proc, daily={"room_pool": 2})
    try:
        async def pooled() -> list[str]:
            return [n for n in await rooms(sandbox_rest) if "-pool-" in n]

        await wait_until(pooled, until=lambda names: len(names) == 2, what="two pooled rooms")
        bot = await sup.start_bot("echo")
        assert "-pool-" in bot["room_url"]  # a ready room, no REST call on the request path
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        caller = await caller_in(bot, seconds=0.4)
        await caller.speak()
        await wait_until(lambda: caller.echoes == 20, what="echo in a pooled room")
        await caller.conn.leave()
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "ended")
        assert bot["room_url"].rsplit("/", 1)[1] not in await rooms(sandbox_rest)  # deleted with the session
        await wait_until(pooled, until=lambda names: len(names) == 2, what="the pool refilled")
        status = json.loads(sup.ctl("--json", "status").stdout)
        assert status["room_pool"] == {"size": 2, "ready": 2, "taken": 1, "too_short": 0}
        # A crash leaves pooled rooms behind; the next start deletes them.
        sup.signal(signal.SIGKILL)
        sup.wait(5)
        leftover = await pooled()
        assert len(leftover) == 2
        sup.start()
        assert not set(leftover) & set(await rooms(sandbox_rest))
        await wait_until(pooled, until=lambda names: len(names) == 2, what="a fresh pool")
    finally:
        sup.stop()
    assert await rooms(sandbox_rest) == []  # a clean stop deletes the rooms still waiting


async def test_a_drain_keeps_a_live_call_until_it_ends_by_itself(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    """SIGTERM takes no new session, but the call in progress goes on being echoed; when
    its caller hangs up the session ends as it would have, and the daemon exits."""
    sup = supervisor(tmp_path, sandbox_proc, supervisor={"drain_timeout_s": 60})
    try:
        bot = await sup.start_bot("echo")
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        caller = await caller_in(bot, seconds=0.4)
        await caller.speak()
        await wait_until(lambda: caller.echoes == 20, what="echo before the drain")
        sup.signal(signal.SIGTERM)
        status, ready, _ = await wait_until(lambda: sup.http("GET", "/readyz"), 10, "/readyz to say 503",
                                            until=lambda got: got[0] == 503)
        assert ready["state"] == "draining", ready
        status, live, _ = await sup.http("GET", "/livez")
        assert status == 200 and live["state"] == "draining"
        status, refused, _ = await sup.http("POST", "/bots/start", json={"bot_profile": "echo"})
        assert status == 503 and refused["error"] == "service-unavailable"
        before = caller.echoes
        await caller.speak()  # the call still works mid-drain
        await wait_until(lambda: caller.echoes == before + 20, what="echo during the drain")
        assert (await sup.session(bot["session_id"]))["state"] == "joined"
        await caller.conn.leave()
        assert await asyncio.to_thread(sup.wait, 20) == 0  # long before the 60 s drain timeout
        record = sup.stored(bot["session_id"])
        assert record is not None and record.end_reason == "participant_left"
    finally:
        sup.stop()


async def test_a_second_sigterm_ends_a_drain_at_once(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = supervisor(tmp_path, sandbox_proc, supervisor={"drain_timeout_s": 60})
    try:
        bot = await sup.start_bot("echo")
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        caller = await caller_in(bot, seconds=0.2)
        sup.signal(signal.SIGTERM)
        await wait_until(lambda: sup.http("GET", "/livez"), 10, "the drain to begin",
                         until=lambda got: got[1]["state"] == "draining")
        assert sup.proc is not None and sup.proc.poll() is None  # draining: the call goes on
        sup.signal(signal.SIGTERM)
        assert await asyncio.to_thread(sup.wait, 15) == 0
        await caller.conn.leave()
        record = sup.stored(bot["session_id"])
        assert record is not None and record.end_reason == "drained"
    finally:
        sup.stop()
