"""The bot's voice: PCM from the supervisor into the call's custom microphone track.

``CustomAudioSource.write_frames`` blocks for as long as the audio lasts (the SDK paces it
in real time). A dedicated thread does that blocking, fed by a bounded queue, so a burst
from the supervisor never stalls the worker's socket loop. When more than ``max_buffer_ms``
is queued the oldest audio is dropped and counted: a bot that talks over a stale backlog
sounds broken, one that skips does not.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from callfleet.ratelimit import TokenBucket

log = structlog.get_logger("worker.audio_out")


class AudioWriter:
    """Owns the writer thread for one ``CustomAudioSource``."""

    def __init__(
        self,
        write_frames: Callable[[bytes], Any],
        *,
        sample_rate: int,
        channels: int,
        max_buffer_ms: int = 1000,
        realtime_slack_ms: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write_frames
        self._bytes_per_ms = sample_rate * channels * 2 // 1000
        self.realtime_slack_ms = realtime_slack_ms
        # Bytes that may be written ahead of real time: refilled at the audio's byte rate.
        self._slack: TokenBucket | None = None
        if realtime_slack_ms and self._bytes_per_ms:
            self._slack = TokenBucket(1000.0 * self._bytes_per_ms, realtime_slack_ms * self._bytes_per_ms, clock=clock)
        self._max_bytes = max_buffer_ms * self._bytes_per_ms
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        self.frames_written = 0
        self.frames_dropped = 0
        self.frames_skipped = 0  # beyond the real-time slack
        self._thread = threading.Thread(target=self._run, name="audio-out", daemon=True)
        self._thread.start()

    def put(self, pcm: bytes) -> None:
        """Queue one chunk of PCM; never blocks."""
        with self._cond:
            if self._closed:
                return
            self._queue.append(pcm)
            self._queued_bytes += len(pcm)
            limit = self._max_bytes
            if self.realtime_slack_ms:
                limit = min(limit, self.realtime_slack_ms * self._bytes_per_ms)
            while self._queued_bytes > limit and len(self._queue) > 1:
                dropped = self._queue.popleft()
                self._queued_bytes -= len(dropped)
                self.frames_dropped += 1
            self._cond.notify()

    def clear(self) -> None:
        """Forget everything queued (the bot was interrupted or left)."""
        with self._cond:
            self._queue.clear()
            self._queued_bytes = 0

    @property
    def queued_ms(self) -> float:
        return self._queued_bytes / self._bytes_per_ms if self._bytes_per_ms else 0.0

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread; whatever is still queued is discarded."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                pcm = self._queue.popleft()
                self._queued_bytes -= len(pcm)
            if self._slack is not None and not self._slack.try_take(len(pcm)):
                self.frames_skipped += 1
                continue
            try:
                self._write(pcm)
                self.frames_written += 1
            except Exception:
                # The SDK refused the frame (e.g. track gone mid-teardown); keep going.
                log.exception("audio write failed")
