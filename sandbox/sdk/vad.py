"""``NativeVad`` (``Daily.create_native_vad``): voice activity detection, daily-python's shape."""

from __future__ import annotations

from sandbox.sdk.native import not_constructible


class NativeVad:
    """Voice activity, daily-python's shape: ``analyze_frames`` takes 10 ms of 16-bit PCM
    (only the first 10 ms of longer input) and returns a speech probability in 0..1.

    The sandbox's detector is energy-based -- a logistic on the frame's level, smoothed over
    recent frames and reset every ``reset_period_ms`` -- not daily's model: silence reads 0,
    sustained loud audio approaches 1."""

    __init__ = not_constructible

    @classmethod
    def _create(cls, reset_period_ms: int, sample_rate: int, channels: int) -> NativeVad:
        vad = object.__new__(cls)
        vad._reset_ms, vad._rate, vad._channels = reset_period_ms, sample_rate, channels
        vad._level = 0.0
        vad._elapsed_ms = 0
        return vad

    _reset_ms: int
    _rate: int
    _channels: int
    _level: float
    _elapsed_ms: int

    @property
    def reset_period_ms(self) -> int:
        return self._reset_ms

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return self._channels

    def analyze_frames(self, frames: bytes) -> float:
        """The speech probability (0..1) of the first 10 ms of ``frames``."""
        # Imported here, not at the top: workers import this module, and numpy would add
        # megabytes to every worker that never uses a VAD.
        import math

        import numpy as np

        n = self._rate // 100 * self._channels
        samples = np.frombuffer(bytes(frames)[: n * 2], dtype="<i2").astype(np.float64)
        if samples.size == 0:
            return 0.0
        self._elapsed_ms += 10
        if self._reset_ms and self._elapsed_ms >= self._reset_ms:
            self._level, self._elapsed_ms = 0.0, 0
        rms = float(np.sqrt(np.mean(samples * samples)))
        dbfs = 20 * math.log10(rms / 32768) if rms > 0 else -120.0
        instant = 1 / (1 + math.exp(-(dbfs + 40) / 4))  # -40 dBFS is the midpoint
        self._level = 0.6 * self._level + 0.4 * instant
        return round(self._level, 4) if rms > 0 else 0.0
