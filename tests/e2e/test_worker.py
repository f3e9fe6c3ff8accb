"""The worker process, started for real, driven over a real ROUTER socket."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from protocol.audio import AudioIn, AudioOut
from protocol.framing import encode
from protocol.messages import (
    CallStateUpdated,
    Err,
    ErrCode,
    ExitCode,
    Exiting,
    GetParticipantCounts,
    Hello,
    Join,
    Leave,
    Ok,
    Ping,
    Pong,
    Reject,
    SendAppMessage,
    Shutdown,
)
from tests.conftest import REPO, FakeSupervisor, wait_exit
from tests.waiting import wait_until
from worker.call import DEFAULT_TIMEOUT_S

DOUBLE = "tests.doubles.threaded_client"


async def test_real_daily_worker_boots_handshakes_and_answers_pings(fake_supervisor: FakeSupervisor) -> None:
    proc = fake_supervisor.spawn(backend="daily")
    hello = await fake_supervisor.expect(Hello, timeout=20)
    assert hello.message.pid == proc.pid
    assert hello.message.backend == "daily"
    assert hello.message.sdk_version.startswith("daily-python")
    assert "join" in hello.message.capabilities and "start_dialout" in hello.message.capabilities
    assert hello.peer is not None
    await fake_supervisor.send(hello.peer, Reject(reason="test says no"))
    assert wait_exit(proc, 10) == ExitCode.REJECTED


async def test_real_daily_join_to_unreachable_room_reports_the_failure_and_exits_clean(
    fake_supervisor: FakeSupervisor,
) -> None:
    proc = fake_supervisor.spawn(backend="daily")
    peer = await fake_supervisor.welcome(ping_timeout_s=10)
    await fake_supervisor.send(peer, Ping(seq=1, sent_at=time.time()))
    pong = await fake_supervisor.expect(Pong)
    assert pong.message.seq == 1
    # Offline, daily-python fails the room lookup (DNS) -- in ~19 s here; the join timeout
    # bounds it either way, and the reply or an error event names what went wrong.
    reply = await fake_supervisor.command(peer, Join(id=1, meeting_url="https://callfleet-test.invalid/room", timeout_s=30), timeout=40)
    assert isinstance(reply, Err)
    assert reply.code in (ErrCode.SDK_ERROR, ErrCode.TIMEOUT)
    if reply.code is ErrCode.SDK_ERROR:
        assert "RoomLookup" in reply.message or "Connect" in reply.message
    # The worker is still usable after the failed join.
    counts = await fake_supervisor.command(peer, GetParticipantCounts(id=2))
    assert isinstance(counts, Ok)
    await fake_supervisor.send(peer, Shutdown(reason="test over"))
    exiting = await fake_supervisor.expect(Exiting, timeout=15)
    assert exiting.message.exit_code == 0
    assert wait_exit(proc, 15) == 0
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "panicked" not in stderr


async def test_worker_exits_when_the_supervisor_goes_silent(fake_supervisor: FakeSupervisor) -> None:
    proc = fake_supervisor.spawn(backend=DOUBLE)
    await fake_supervisor.welcome(ping_timeout_s=1.0)
    exiting = await fake_supervisor.expect(Exiting, timeout=30)
    assert "no message from the supervisor" in exiting.message.reason  # the silence, not another cause
    assert await asyncio.to_thread(wait_exit, proc, 10) == ExitCode.SUPERVISOR_LOST


async def test_worker_without_welcome_gives_up_as_a_boot_failure(fake_supervisor: FakeSupervisor) -> None:
    proc = fake_supervisor.spawn(backend=DOUBLE, extra=["--handshake-timeout", "1"])
    await fake_supervisor.expect(Hello)
    assert await asyncio.to_thread(wait_exit, proc, 10) == ExitCode.BOOT_FAILED


async def test_unknown_backend_is_a_boot_failure(fake_supervisor: FakeSupervisor) -> None:
    proc = fake_supervisor.spawn(backend="no.such.backend")
    assert await asyncio.to_thread(wait_exit, proc, 20) == ExitCode.BOOT_FAILED
    assert b"no.such.backend" in (proc.stderr.read() if proc.stderr else b"")


PARENT_SCRIPT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "worker", "--connect", sys.argv[1],
                          "--worker-id", "orphan", "--backend", sys.argv[2]])
print(child.pid, flush=True)
time.sleep(600)
"""


async def test_worker_exits_when_its_parent_is_sigkilled(fake_supervisor: FakeSupervisor) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, fake_supervisor.endpoint, DOUBLE],
        cwd=REPO, stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    # A 60 s ping timeout: within the wait below only the parent's death can end it.
    await fake_supervisor.welcome(ping_timeout_s=60)
    parent.kill()
    parent.wait()
    exiting = await fake_supervisor.expect(Exiting, timeout=30)
    assert "no message from the supervisor" not in exiting.message.reason, exiting.message
    await wait_until(lambda: not _alive(child_pid), 30, "the worker to exit after its parent", interval=0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent is gone, init reaps it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_missing_completion_becomes_a_timeout_error_and_the_worker_stays_usable(
    fake_supervisor: FakeSupervisor,
) -> None:
    proc = fake_supervisor.spawn(backend=DOUBLE, env={"CALLFLEET_DOUBLE": "send_app_message=never"})
    peer = await fake_supervisor.welcome()
    joined = await fake_supervisor.command(peer, Join(id=1, meeting_url="http://sandbox/r1", timeout_s=5))
    assert isinstance(joined, Ok), joined
    reply = await fake_supervisor.command(peer, SendAppMessage(id=2, message={"hi": 1}), timeout=DEFAULT_TIMEOUT_S + 20)
    assert isinstance(reply, Err) and reply.code is ErrCode.TIMEOUT
    assert reply.message == f"send_app_message did not complete within {DEFAULT_TIMEOUT_S:g}s"
    # Still answering pings and commands.
    await fake_supervisor.send(peer, Ping(seq=9, sent_at=time.time()))
    assert (await fake_supervisor.expect(Pong)).message.seq == 9
    assert isinstance(await fake_supervisor.command(peer, GetParticipantCounts(id=3)), Ok)
    assert isinstance(await fake_supervisor.command(peer, Leave(id=4)), Ok)
    await fake_supervisor.send(peer, Shutdown(reason="done"))
    assert await asyncio.to_thread(wait_exit, proc, 10) == 0


async def test_join_whose_completion_never_fires_fails_after_its_own_timeout(
    fake_supervisor: FakeSupervisor,
) -> None:
    proc = fake_supervisor.spawn(backend=DOUBLE, env={"CALLFLEET_DOUBLE": "join=never"})
    peer = await fake_supervisor.welcome()
    reply = await fake_supervisor.command(peer, Join(id=1, meeting_url="http://sandbox/r1", timeout_s=1.5))
    assert isinstance(reply, Err) and reply.code is ErrCode.TIMEOUT
    assert reply.message == "join did not complete within 1.5s"  # the Join's timeout_s, not a default
    await fake_supervisor.send(peer, Shutdown(reason="done"))
    assert await asyncio.to_thread(wait_exit, proc, 15) == 0


async def test_events_come_from_sdk_threads_in_order_and_audio_flows_both_ways(
    fake_supervisor: FakeSupervisor, tmp_path: Path,
) -> None:
    playing = tmp_path / "play"  # the device plays nothing until this file exists
    proc = fake_supervisor.spawn(backend=DOUBLE, env={"CALLFLEET_DOUBLE": f"play_after={playing}"})
    peer = await fake_supervisor.welcome()
    await fake_supervisor.send(peer, Join(id=1, meeting_url="http://sandbox/r1", timeout_s=5))
    states: list[str] = []
    audio: list[AudioIn] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(audio) < 10:
        got = await fake_supervisor.recv()
        if isinstance(got.message, CallStateUpdated):
            states.append(got.message.state)
        elif isinstance(got.message, AudioIn):
            assert len(got.pcm) == 640  # 20 ms at 16 kHz mono
            audio.append(got.message)
    assert states[:2] == ["joining", "joined"]
    assert [a.seq for a in audio] == list(range(len(audio)))  # numbered, none lost
    assert all(a.participant_id == "remote-1" for a in audio)
    # Audio out: a burst of 25 frames (500 ms) does not block the socket: with the device
    # holding the first frame, the ping sent after the burst is answered before any is played.
    for seq in range(25):
        assert fake_supervisor.channel.send_audio(encode(AudioOut(seq, 16000, 1)), b"\0" * 640, to=peer)
    await fake_supervisor.send(peer, Ping(seq=5, sent_at=time.time()))
    pong = await fake_supervisor.expect(Pong)
    assert pong.message.seq == 5
    assert pong.message.frames_out == 0
    playing.touch()

    async def ping_pong() -> Pong:
        await fake_supervisor.send(peer, Ping(seq=6, sent_at=time.time()))
        return (await fake_supervisor.expect(Pong)).message

    played = await wait_until(ping_pong, 10, "the whole burst played", until=lambda p: p.frames_out == 25, interval=0.1)
    assert played.frames_dropped == 0  # every frame written
    assert played.frames_in >= 10
    await fake_supervisor.send(peer, Shutdown(reason="done"))
    assert await asyncio.to_thread(wait_exit, proc, 10) == 0


async def test_worker_exits_after_sessions_per_worker_calls(fake_supervisor: FakeSupervisor) -> None:
    proc = fake_supervisor.spawn(backend=DOUBLE)
    peer = await fake_supervisor.welcome(sessions_per_worker=1)
    assert isinstance(await fake_supervisor.command(peer, Join(id=1, meeting_url="http://s/r")), Ok)
    assert isinstance(await fake_supervisor.command(peer, Leave(id=2)), Ok)
    exiting = await fake_supervisor.expect(Exiting)
    assert "sessions_per_worker" in exiting.message.reason
    assert await asyncio.to_thread(wait_exit, proc, 10) == 0


async def test_garbage_on_the_socket_is_dropped_and_the_worker_keeps_going(
    fake_supervisor: FakeSupervisor,
) -> None:
    proc = fake_supervisor.spawn(backend=DOUBLE)
    peer = await fake_supervisor.welcome()
    for junk in ([b"\x00garbage"], [b"\x01\xc1"], [b"a", b"b", b"c"], [encode(AudioOut(1, 16000, 1)), b"odd"]):
        fake_supervisor.channel.sock.send_multipart([peer, *junk])
    await fake_supervisor.send(peer, Ping(seq=42, sent_at=time.time()))
    assert (await fake_supervisor.expect(Pong)).message.seq == 42
    await fake_supervisor.send(peer, Shutdown(reason="done"))
    assert await asyncio.to_thread(wait_exit, proc, 10) == 0
    assert b"dropped undecodable frame" in (proc.stderr.read() if proc.stderr else b"")


async def test_sigterm_makes_the_worker_leave_and_exit(fake_supervisor: FakeSupervisor) -> None:
    proc = fake_supervisor.spawn(backend=DOUBLE)
    peer = await fake_supervisor.welcome()
    assert isinstance(await fake_supervisor.command(peer, Join(id=1, meeting_url="http://s/r")), Ok)
    proc.send_signal(signal.SIGTERM)
    exiting = await fake_supervisor.expect(Exiting)
    assert "SIGTERM" in exiting.message.reason
    assert await asyncio.to_thread(wait_exit, proc, 10) == ExitCode.SUPERVISOR_LOST


async def test_a_participant_joining_while_the_join_completes_is_still_rendered(
    fake_supervisor: FakeSupervisor,
) -> None:
    proc = fake_supervisor.spawn(backend=DOUBLE, env={"CALLFLEET_DOUBLE": "late_joiner=yes"})
    peer = await fake_supervisor.welcome()
    assert isinstance(await fake_supervisor.command(peer, Join(id=1, meeting_url="http://s/r", timeout_s=5)), Ok)
    heard: set[str] = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and heard != {"remote-1", "remote-late"}:
        got = await fake_supervisor.recv()
        if isinstance(got.message, AudioIn):
            heard.add(got.message.participant_id)
    assert heard == {"remote-1", "remote-late"}
    await fake_supervisor.send(peer, Shutdown(reason="done"))
    assert await asyncio.to_thread(wait_exit, proc, 10) == 0
