"""Where speech is, by level: the stand-in speech-to-text's idea of an utterance.

20 ms frames of 16-bit mono PCM; a frame is voiced when its RMS is above ``THRESHOLD_DBFS``.
Speech starts with ``ONSET_FRAMES`` voiced frames in a row (a click is not a word) and ends
after ``HANGOVER_S`` without a voiced frame. The hangover is longer than a model's
endpointing (Deepgram's default is 10 ms) because a level detector cannot tell the pause
between two sentences (espeak-ng's are about 0.35 s) from the end of a turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.02
THRESHOLD_DBFS = -40.0
ONSET_FRAMES = 2
HANGOVER_S = 0.5


@dataclass(frozen=True)
class SpeechStarted:
    at: float  # seconds since the stream began, where the first voiced frame starts


@dataclass(frozen=True)
class SpeechEnded:
    end: float  # where the last voiced frame ends


VadEvent = SpeechStarted | SpeechEnded


class EnergyVad:
    """Speech and silence in a stream of PCM fed in pieces of any length."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.frame_bytes = 2 * max(1, round(sample_rate * FRAME_S))
        self.hangover_frames = round(HANGOVER_S / FRAME_S)
        self.threshold = 32768 * 10 ** (THRESHOLD_DBFS / 20)
        self._pending = b""
        self._frames = 0  # frames analysed so far
        self._voiced_run = 0
        self._start: int | None = None  # frame where the current speech started
        self._last_voiced = 0  # frame after the last voiced one

    @property
    def position(self) -> float:
        """Seconds of audio analysed so far."""
        return self._seconds(self._frames)

    @property
    def speaking(self) -> bool:
        return self._start is not None

    @property
    def last_voiced(self) -> float:
        """Where the last voiced frame ends, in seconds since the stream began."""
        return self._seconds(self._last_voiced)

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """What ``pcm`` (following what was fed before) starts and ends, in order."""
        data = self._pending + pcm
        whole = len(data) // self.frame_bytes * self.frame_bytes
        self._pending = data[whole:]
        if not whole:
            return []
        frames = np.frombuffer(data[:whole], dtype="<i2").astype(np.float64).reshape(-1, self.frame_bytes // 2)
        levels = np.sqrt(np.mean(frames * frames, axis=1))
        events: list[VadEvent] = []
        for level in levels:
            voiced = level > self.threshold
            self._frames += 1
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if voiced:
                self._last_voiced = self._frames
            if self._start is None and self._voiced_run >= ONSET_FRAMES:
                self._start = self._frames - ONSET_FRAMES
                events.append(SpeechStarted(at=self._seconds(self._start)))
            elif self._start is not None and self._frames - self._last_voiced >= self.hangover_frames:
                events.append(SpeechEnded(end=self.last_voiced))
                self._start = None
        return events

    def _seconds(self, frames: int) -> float:
        return frames * self.frame_bytes / 2 / self.sample_rate


def has_speech(pcm: bytes, sample_rate: int) -> bool:
    """Whether ``pcm`` (16-bit mono) holds speech by this module's measure."""
    return bool(EnergyVad(sample_rate).feed(pcm))

