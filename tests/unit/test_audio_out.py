"""worker.audio_out.AudioWriter with a paced sink that behaves like daily-python's
blocking ``CustomAudioSource.write_frames``: each write returns once its audio has played
(20 ms per frame), on the writer's own thread.

Time is a fake clock the test moves a millisecond at a time, waiting after each step until
the writer thread has done all it can; so the schedule the sink records is exact and the
same on every run, however loaded the machine.
"""

from __future__ import annotations

import threading
import time

from worker.audio_out import AudioWriter

RATE = 16000
FRAME_MS = 20
FRAME = bytes(RATE // 1000 * FRAME_MS * 2)  # 20 ms of mono 16-bit


class FakeClock:
    """Whole milliseconds, moved only by the test; readable from any thread."""

    def __init__(self) -> None:
        self.ms = 0
        self._cond = threading.Condition()

    def __call__(self) -> float:
        return self.ms / 1000

    def set(self, ms: int) -> None:
        with self._cond:
            self.ms = ms
            self._cond.notify_all()

    def wait_until(self, ms: int) -> None:
        with self._cond:
            while self.ms < ms:
                self._cond.wait()


class PacedSink:
    """Plays frames like a device: a write blocks until its audio is out, on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.free_at = 0
        self.busy_until: int | None = None  # set while a write is blocked
        self.played: list[tuple[int, int]] = []  # (ms it started playing, frame seq)

    def write_frames(self, pcm: bytes) -> int:
        start = max(self.clock.ms, self.free_at)
        self.free_at = start + len(pcm) * 1000 // (RATE * 2)
        self.played.append((start, int.from_bytes(pcm[:2], "little")))
        self.busy_until = self.free_at
        self.clock.wait_until(self.free_at)
        self.busy_until = None
        return len(pcm) // 2


class Rig:
    """A writer, its sink and the clock, stepped together."""

    def __init__(self, **writer_kwargs: int) -> None:
        self.clock = FakeClock()
        self.sink = PacedSink(self.clock)
        self.writer = AudioWriter(self.sink.write_frames, sample_rate=RATE, channels=1, clock=self.clock,
                                  **writer_kwargs)
        self.put_count = 0
        self.put_at: dict[int, int] = {}  # seq -> ms it was handed over

    def settle(self) -> None:
        """Wait until the writer thread is blocked in the sink or idle with nothing left."""
        deadline = time.monotonic() + 10  # liveness only: a stuck writer fails, it is not timed
        w = self.writer
        while True:
            busy = self.sink.busy_until
            if busy is not None and busy > self.clock.ms:
                return
            if busy is None and w.queued_ms == 0 and \
                    w.frames_written + w.frames_skipped + w.frames_dropped == self.put_count:
                return
            assert time.monotonic() < deadline, "the writer thread made no progress"
            time.sleep(0.0002)

    def run_to(self, ms: int) -> None:
        while self.clock.ms < ms:
            self.clock.set(self.clock.ms + 1)
            self.settle()

    def put(self, seq: int, at_ms: int) -> None:
        self.run_to(at_ms)
        self.writer.put(seq.to_bytes(2, "little") + FRAME[2:])
        self.put_count += 1
        self.put_at[seq] = at_ms
        self.settle()

    def stall_then_live(self, stalled: int, live: int) -> None:
        """``stalled`` frames arrive at once (a hiccup upstream), then ``live`` more in real time."""
        for seq in range(stalled):
            self.put(seq, 0)
        for i in range(live):
            self.put(stalled + i, i * FRAME_MS)

    def close(self) -> None:
        self.writer.close()

    @property
    def seqs(self) -> list[int]:
        return [seq for _, seq in self.sink.played]

    def lag_ms(self, seq: int) -> int:
        """From handing a frame over to its starting to play."""
        return next(start for start, s in self.sink.played if s == seq) - self.put_at[seq]


def test_a_relay_drops_a_stale_backlog_instead_of_keeping_its_latency() -> None:
    rig = Rig(realtime_slack_ms=60)
    rig.stall_then_live(stalled=10, live=25)
    rig.run_to(rig.put_at[34] + 200)
    rig.close()
    assert rig.seqs[-1] == 34  # the live edge is played, in order
    assert rig.seqs == sorted(rig.seqs)
    assert rig.writer.frames_dropped + rig.writer.frames_skipped >= 5  # most of the 200 ms backlog
    # The last frame starts within the slack of when it was handed over, not 200 ms late.
    assert rig.lag_ms(34) <= 60


def test_without_slack_every_frame_is_played_however_late() -> None:
    rig = Rig()
    rig.stall_then_live(stalled=10, live=25)
    rig.run_to(rig.put_at[34] + 35 * FRAME_MS)
    rig.close()
    assert rig.seqs == list(range(35))
    assert rig.writer.frames_dropped == rig.writer.frames_skipped == 0
    assert rig.lag_ms(34) == 10 * FRAME_MS  # speech made ahead is all played, so it lags by the backlog


def test_slack_lets_ordinary_jitter_through_untouched() -> None:
    rig = Rig(realtime_slack_ms=60)
    for i in range(50):  # +-8 ms of jitter around a 20 ms cadence
        rig.put(i, 10 + i * FRAME_MS + (8 if i % 2 else -8))
    rig.run_to(rig.put_at[49] + 100)
    rig.close()
    assert rig.writer.frames_skipped == rig.writer.frames_dropped == 0
    assert rig.seqs == list(range(50))
