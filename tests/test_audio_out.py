"""worker.audio_out.AudioWriter with a paced sink that behaves like daily-python's
blocking ``CustomAudioSource.write_frames``: each write returns once its audio has played
(20 ms per frame), on the writer's own thread."""

from __future__ import annotations

import threading
import time

from worker.audio_out import AudioWriter

RATE = 16000
FRAME = bytes(RATE // 1000 * 20 * 2)  # 20 ms of mono 16-bit


class PacedSink:
    """Plays frames in real time, like a device: a write blocks until its audio is out."""

    def __init__(self) -> None:
        self.clock = 0.0
        self.played: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()

    def write_frames(self, pcm: bytes) -> int:
        now = time.monotonic()
        start = max(now, self.clock)
        self.clock = start + len(pcm) / (RATE * 2)
        with self.lock:
            self.played.append((start, pcm))
        time.sleep(max(0.0, self.clock - time.monotonic()))
        return len(pcm) // 2


def _frame(seq: int) -> bytes:
    return seq.to_bytes(2, "little") + FRAME[2:]


def _stall_then_live(writer: AudioWriter, stalled: int, live: int) -> float:
    """``stalled`` frames arrive at once (a hiccup upstream), then ``live`` more in real
    time. Returns when the last live frame was handed over."""
    for seq in range(stalled):
        writer.put(_frame(seq))
    start = time.monotonic()
    for i in range(live):
        time.sleep(max(0.0, start + i * 0.02 - time.monotonic()))
        writer.put(_frame(stalled + i))
    return time.monotonic()


def test_a_relay_drops_a_stale_backlog_instead_of_keeping_its_latency() -> None:
    sink = PacedSink()
    writer = AudioWriter(sink.write_frames, sample_rate=RATE, channels=1, realtime_slack_ms=60)
    last_put = _stall_then_live(writer, stalled=10, live=25)
    time.sleep(0.2)
    writer.close()
    played = [int.from_bytes(pcm[:2], "little") for _, pcm in sink.played]
    assert played[-1] == 34  # the live edge is played, in order
    assert played == sorted(played)
    assert writer.frames_dropped + writer.frames_skipped >= 5  # most of the 200 ms backlog
    # The last frame came out within the slack of when it was handed over, not 200 ms late.
    assert sink.played[-1][0] - last_put < 0.06 + 0.02


def test_without_slack_every_frame_is_played_however_late() -> None:
    sink = PacedSink()
    writer = AudioWriter(sink.write_frames, sample_rate=RATE, channels=1)
    last_put = _stall_then_live(writer, stalled=10, live=25)
    deadline = time.monotonic() + 3
    while writer.frames_written < 35 and time.monotonic() < deadline:
        time.sleep(0.02)
    writer.close()
    played = [int.from_bytes(pcm[:2], "little") for _, pcm in sink.played]
    assert played == list(range(35))
    assert writer.frames_dropped == writer.frames_skipped == 0
    assert sink.played[-1][0] - last_put > 0.15  # speech made ahead is all played, so it lags


def test_slack_lets_ordinary_jitter_through_untouched() -> None:
    sink = PacedSink()
    writer = AudioWriter(sink.write_frames, sample_rate=RATE, channels=1, realtime_slack_ms=60)
    start = time.monotonic()
    for i in range(50):  # +-8 ms of jitter around a 20 ms cadence
        time.sleep(max(0.0, start + i * 0.02 + (0.008 if i % 2 else -0.008) - time.monotonic()))
        writer.put(_frame(i))
    time.sleep(0.1)
    writer.close()
    assert writer.frames_skipped == writer.frames_dropped == 0
    assert len(sink.played) == 50
