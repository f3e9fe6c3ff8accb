"""The recorder bot: every frame it accepts ends up in its participant's WAV, and no file
I/O happens on the event loop that forwards every session's audio."""

from __future__ import annotations

import asyncio
import threading
import wave
from pathlib import Path
from typing import Any

from callfleet.audio import read_wav, tone
from protocol.audio import AudioIn
from supervisor.bots.recorder import RecorderBot, open_wav


class FakeContext:
    """The session as the bot sees it; records how the bot asked it to end."""

    def __init__(self, run_dir: Path) -> None:
        self.session_id = "s1"
        self.run_dir = run_dir
        self.sample_rate, self.channels = 16000, 1
        self.ended: list[str] = []
        self.failed: list[str] = []
        self.failed_event = asyncio.Event()

    def send_audio(self, pcm: Any, sample_rate: int, channels: int) -> bool:
        return True

    def end(self, reason: str) -> None:
        self.ended.append(reason)

    def fail(self, detail: str) -> None:
        self.failed.append(detail)
        self.failed_event.set()

    def next_id(self) -> int:
        return 1


class WatchedFile:
    """A real WAV writer that notes which thread each call runs on."""

    def __init__(self, inner: wave.Wave_write, threads: set[int]) -> None:
        self.inner, self.threads = inner, threads

    def writeframesraw(self, data: Any) -> None:
        self.threads.add(threading.get_ident())
        self.inner.writeframesraw(data)

    def close(self) -> None:
        self.threads.add(threading.get_ident())
        self.inner.close()


def gated_recorder(gate: threading.Event, entered: threading.Event, threads: set[int],
                   queue_frames: int | None = None) -> type[RecorderBot]:
    """A recorder whose writer waits at ``gate`` before opening its first file."""

    def opener(path: Path, sample_rate: int, channels: int) -> WatchedFile:
        threads.add(threading.get_ident())
        entered.set()
        gate.wait(30)
        return WatchedFile(open_wav(path, sample_rate, channels), threads)

    attrs: dict[str, Any] = {"open_wav": staticmethod(opener)}
    if queue_frames is not None:
        attrs["queue_frames"] = queue_frames
    return type("GatedRecorder", (RecorderBot,), attrs)


def frame(pid: str, i: int) -> tuple[AudioIn, bytes]:
    pcm = tone(200 + 100 * int(pid[-1]), 0.02, 16000, phase0=320 * i)
    return AudioIn(participant_id=pid, sample_rate=16000, channels=1, seq=i), pcm


async def test_every_frame_given_to_on_audio_is_in_the_wav_after_close(tmp_path: Path) -> None:
    gate, entered, threads = threading.Event(), threading.Event(), set[int]()
    bot = gated_recorder(gate, entered, threads)(FakeContext(tmp_path), {})
    said: dict[str, list[bytes]] = {"p1": [], "p2": [], "p3": []}
    for i in range(400):
        for pid in said:
            header, pcm = frame(pid, i)
            bot.on_audio(header, pcm)
            said[pid].append(pcm)
    assert entered.wait(10)
    # The writer is held before its first open, yet on_audio took all 1200 frames: it wrote nothing itself.
    assert not await asyncio.to_thread(lambda: list(tmp_path.rglob("*.wav")))
    assert bot.frames_accepted == 1200 and bot.frames_dropped == 0
    gate.set()
    await bot.close()
    directory = tmp_path / "recordings" / "s1"
    assert sorted(p.name for p in directory.glob("*.wav")) == ["p1.wav", "p2.wav", "p3.wav"]
    for pid, frames in said.items():
        pcm, rate, channels = read_wav(directory / f"{pid}.wav")
        assert (rate, channels) == (16000, 1)
        assert len(pcm) // 2 == 400 * 320  # exact sample count: nothing lost at close
        assert pcm == b"".join(frames)


async def test_file_io_happens_on_the_writer_thread_never_on_the_event_loop(tmp_path: Path) -> None:
    gate, entered, threads = threading.Event(), threading.Event(), set[int]()
    gate.set()
    bot = gated_recorder(gate, entered, threads)(FakeContext(tmp_path), {})
    for i in range(50):
        bot.on_audio(*frame("p1", i))
    await bot.close()
    assert threads and threading.get_ident() not in threads  # open, write and close all off the loop
    assert bot.paths["p1"].exists()


async def test_frames_beyond_a_full_queue_are_dropped_and_counted_and_the_rest_kept(tmp_path: Path) -> None:
    gate, entered, threads = threading.Event(), threading.Event(), set[int]()
    bot = gated_recorder(gate, entered, threads, queue_frames=5)(FakeContext(tmp_path), {})
    frames = [frame("p1", i) for i in range(10)]
    bot.on_audio(*frames[0])
    assert entered.wait(10)  # the writer holds frame 0; the queue has room for 5 more
    for header, pcm in frames[1:]:
        bot.on_audio(header, pcm)  # never blocks, even with the disk stalled
    assert (bot.frames_accepted, bot.frames_dropped) == (6, 4)
    gate.set()
    await bot.close()  # the queue was full at close: its frames are still written
    pcm, _, _ = read_wav(tmp_path / "recordings" / "s1" / "p1.wav")
    assert pcm == b"".join(p for _, p in frames[:6])


async def test_session_fails_when_the_recording_cannot_be_written(tmp_path: Path) -> None:
    def full_disk(path: Path, sample_rate: int, channels: int) -> wave.Wave_write:
        raise OSError(28, "No space left on device")

    ctx = FakeContext(tmp_path)
    bot = type("FullDiskRecorder", (RecorderBot,), {"open_wav": staticmethod(full_disk)})(ctx, {})
    for i in range(20):
        bot.on_audio(*frame("p1", i))
    await asyncio.wait_for(ctx.failed_event.wait(), 10)
    assert ctx.failed == ["recording failed: [Errno 28] No space left on device"] and ctx.ended == []
    await bot.close()  # still returns: the writer kept draining after the failure
