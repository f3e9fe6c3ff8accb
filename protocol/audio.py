"""Audio headers: the first part of a two-part ``[header, pcm]`` ZeroMQ message.

The header is a tiny MessagePack array, so whoever routes audio decodes a few dozen bytes
and forwards the PCM part as the very ``zmq.Frame`` it received, never copied or re-encoded.
PCM is 16-bit signed little-endian, interleaved when ``channels > 1``.
"""

from __future__ import annotations

import msgspec


class _AudioHeader(msgspec.Struct, tag=True, array_like=True, forbid_unknown_fields=True):
    pass


class AudioIn(_AudioHeader, tag="i"):
    """Audio heard in the call: worker -> supervisor, one per renderer callback."""

    participant_id: str
    seq: int
    sample_rate: int
    channels: int
    source: str = "microphone"


class AudioOut(_AudioHeader, tag="o"):
    """Audio the bot speaks: supervisor -> worker, written to the custom microphone track."""

    seq: int
    sample_rate: int
    channels: int


AudioHeader = AudioIn | AudioOut

BYTES_PER_SAMPLE = 2


def frame_bytes(sample_rate: int, channels: int, frame_ms: int) -> int:
    """Size in bytes of one PCM frame of ``frame_ms`` milliseconds."""
    return sample_rate * frame_ms // 1000 * channels * BYTES_PER_SAMPLE
