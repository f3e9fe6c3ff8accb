"""What a phone can say, as the 8 kHz μ-law a Media Stream carries: a WAV, a tone, silence,
or a sentence spoken by espeak-ng (``sandbox.ai.synthesis``: a speech-shaped signal without it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from callfleet.audio import read_wav, resample, tone
from sandbox.ai.synthesis import synthesize
from sandbox.telephony import mulaw

RATE = mulaw.RATE


def from_pcm(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """16-bit PCM at any rate (several channels are mixed down) as 8 kHz μ-law."""
    if channels > 1:
        frames = np.frombuffer(pcm[: len(pcm) // (2 * channels) * 2 * channels], dtype="<i2").reshape(-1, channels)
        pcm = frames.mean(axis=1).round().astype("<i2").tobytes()
    return mulaw.encode(resample(pcm, sample_rate, RATE))


def from_wav(path: Path) -> bytes:
    """A 16-bit PCM WAV file, resampled to 8 kHz μ-law.

    Raises ``OSError`` if it cannot be read, ``callfleet.audio.WavError`` if it is not a
    16-bit PCM WAV."""
    pcm, rate, channels = read_wav(path)
    return from_pcm(pcm, rate, channels)


def from_tone(hz: float, seconds: float) -> bytes:
    """A sine tone of ``hz`` for ``seconds``."""
    return mulaw.encode(tone(hz, seconds, RATE))


def silence(seconds: float) -> bytes:
    """``seconds`` of μ-law silence."""
    return bytes([mulaw.SILENCE]) * round(seconds * RATE)


async def from_text(text: str) -> bytes:
    """``text`` spoken by espeak-ng when it is installed (else a speech-shaped signal).

    Raises ``sandbox.ai.synthesis.SynthesisError`` if espeak-ng fails."""
    return mulaw.encode(await synthesize(text, RATE))
