"""PCM helpers shared by the sandbox, the synthetic callers and the bots (numpy, int16 LE)."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import msgspec
import numpy as np

MARKER_MAGIC = 0x4346  # "CF": a frame whose first samples carry a marker


def resample(pcm: bytes, from_rate: int, to_rate: int, channels: int = 1) -> bytes:
    """Linear-interpolation resampling; identity (the same object) when rates match."""
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).astype(np.float32)
    n_in = samples.shape[0]
    n_out = max(1, round(n_in * to_rate / from_rate))
    x_old = np.arange(n_in, dtype=np.float64)
    x_new = np.linspace(0, n_in - 1, n_out)
    out = np.empty((n_out, channels), dtype=np.float32)
    for c in range(channels):
        out[:, c] = np.interp(x_new, x_old, samples[:, c])
    return np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()


def tone(hz: float, seconds: float, sample_rate: int, amplitude: float = 0.3, phase0: int = 0) -> bytes:
    """A sine tone as mono PCM; ``phase0`` (in samples) lets frames be generated piecewise."""
    n = int(round(seconds * sample_rate))
    t = (np.arange(n) + phase0) / sample_rate
    return (np.sin(2 * math.pi * hz * t) * amplitude * 32767).astype("<i2").tobytes()


def rms(pcm: bytes) -> float:
    if not pcm:
        return 0.0
    a = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(a * a)))


def stamp_marker(pcm: bytes, seq: int) -> bytes:
    """Overwrite the first 3 samples with (magic, seq low, seq high) so an echo can be
    matched to the frame that caused it. Survives any path that does not alter samples."""
    return struct.pack("<HHH", MARKER_MAGIC, seq & 0xFFFF, (seq >> 16) & 0xFFFF) + pcm[6:]


def read_marker(pcm: bytes) -> int | None:
    if len(pcm) < 6:
        return None
    magic, lo, hi = struct.unpack_from("<HHH", pcm)
    return (hi << 16 | lo) if magic == MARKER_MAGIC else None


def write_wav(path: Path, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)


class WavError(ValueError):
    """A file that is not a 16-bit PCM WAV (or is cut short in its header)."""


class WavInfo(msgspec.Struct, frozen=True):
    sample_rate: int
    channels: int
    frames: int


def wav_info(path: Path) -> WavInfo:
    """The header of a 16-bit PCM WAV, without decoding its samples.

    Raises ``OSError`` if the file cannot be opened or read, ``WavError`` if it is not a
    16-bit PCM WAV."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise WavError(f"{8 * w.getsampwidth()}-bit samples; only 16-bit PCM WAV is supported")
            return WavInfo(w.getframerate(), w.getnchannels(), w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavError(f"not a PCM WAV file ({exc or 'truncated header'})") from None


def read_wav(path: Path) -> tuple[bytes, int, int]:
    """(pcm, sample_rate, channels) of a 16-bit WAV file.

    Raises ``OSError`` if it cannot be read, ``WavError`` if it is not a 16-bit PCM WAV."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise WavError(f"{path}: only 16-bit PCM WAV is supported")
            return w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a PCM WAV file ({exc or 'truncated header'})") from None
