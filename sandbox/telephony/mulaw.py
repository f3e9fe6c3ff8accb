"""G.711 μ-law, the only audio a Twilio Media Stream carries: 8-bit samples at 8 kHz, mono.

The same codes as the stdlib's ``audioop.lin2ulaw``/``ulaw2lin`` (deprecated since 3.11,
gone in 3.13), in numpy.
"""

from __future__ import annotations

import numpy as np

RATE = 8000
BIAS = 0x84  # added to a magnitude before its segment is found, as G.711 does
CLIP = 8159  # the largest 14-bit magnitude that is not clipped
SILENCE = 0xFF  # μ-law's zero: what a phone sends when nobody speaks


def _decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = (((codes & 0x0F) << 3) + BIAS) << exponent
    return np.where(codes & 0x80, BIAS - magnitude, magnitude - BIAS).astype("<i2")


DECODE = _decode_table()  # code -> 16-bit sample


def decode(ulaw: bytes) -> bytes:
    """μ-law bytes as 16-bit little-endian PCM, two bytes per code."""
    return DECODE[np.frombuffer(ulaw, dtype=np.uint8)].tobytes()


def encode(pcm: bytes) -> bytes:
    """16-bit little-endian PCM as μ-law, one byte per sample (an odd last byte is dropped).

    As G.711 (and audioop) does it: on the sample's top 14 bits, biased, in 8 segments."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.int32) >> 2
    mask = np.where(samples < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(samples), CLIP) + (BIAS >> 2)
    segment = np.maximum(0, np.floor(np.log2(magnitude)).astype(np.int32) - 5)
    code = np.where(segment >= 8, 0x7F, (np.minimum(segment, 7) << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8).tobytes()
