"""A room's cloud recording: every participant's audio mixed into one mono WAV.

Each participant's audio is laid on the timeline where it arrived (its first frame's
offset from the recording start) and then appended back to back, the way a paced source
produces it; the mix is the sum, clipped. The file's length is the recording's duration.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from callfleet.audio import resample, write_wav

RATE = 16000


class Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()
        self._tracks: dict[str, tuple[int, list[bytes]]] = {}  # pid -> (start sample, chunks)
        self.participants: set[str] = set()

    def add(self, participant_id: str, pcm: bytes, sample_rate: int, channels: int) -> None:
        if channels != 1:
            samples = np.frombuffer(pcm, "<i2").reshape(-1, channels).mean(axis=1)
            pcm = samples.astype("<i2").tobytes()
        pcm = resample(pcm, sample_rate, RATE)
        track = self._tracks.get(participant_id)
        if track is None:
            offset = int((time.monotonic() - self.started) * RATE)
            track = self._tracks[participant_id] = (offset, [])
            self.participants.add(participant_id)
        track[1].append(pcm)

    def finish(self) -> float:
        """Write the WAV; returns the duration in seconds."""
        duration = time.monotonic() - self.started
        total = int(duration * RATE)
        mix = np.zeros(total, dtype=np.int32)
        for offset, chunks in self._tracks.values():
            samples = np.frombuffer(b"".join(chunks), "<i2").astype(np.int32)
            end = min(total, offset + len(samples))
            if end > offset:
                mix[offset:end] += samples[: end - offset]
        write_wav(self.path, np.clip(mix, -32768, 32767).astype("<i2").tobytes(), RATE)
        return duration
