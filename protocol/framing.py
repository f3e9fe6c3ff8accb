"""Bytes on the wire: one version byte, then MessagePack.

Control is a one-part ZeroMQ message, audio a two-part one (``[header, pcm]``). Anything
else -- a wrong part count, a wrong version byte, bytes that do not decode -- raises
``ProtocolError`` and nothing else, so a receiver can count it, log it and drop it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from protocol.audio import AudioHeader, AudioIn, AudioOut
from protocol.messages import PROTOCOL_VERSION, Message

_VERSION_PREFIX = bytes([PROTOCOL_VERSION])

_encoder = msgspec.msgpack.Encoder()
_control_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(Message)
_audio_decoder: msgspec.msgpack.Decoder[AudioIn | AudioOut] = msgspec.msgpack.Decoder(AudioHeader)


class ProtocolError(Exception):
    """A frame that is not a valid message of this protocol version."""


def encode(msg: msgspec.Struct) -> bytes:
    """Encode a control message or an audio header into one frame."""
    buf = bytearray(_VERSION_PREFIX)
    _encoder.encode_into(msg, buf, 1)
    return bytes(buf)


def _payload(frame: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(frame)
    if len(view) < 2:
        raise ProtocolError(f"frame too short ({len(view)} bytes)")
    if view[0] != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {view[0]} but this side speaks {PROTOCOL_VERSION}")
    return view[1:]


def decode(frame: bytes | bytearray | memoryview) -> Any:
    """Decode a one-part control frame into its ``Message`` Struct.

    Raises ``ProtocolError`` for a wrong version, truncated or undecodable frame.
    """
    payload = _payload(frame)
    # msgspec raises a bare UnicodeDecodeError (not a DecodeError) for bad UTF-8 in a str.
    try:
        return _control_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"undecodable control frame: {exc}") from None


def decode_audio_header(frame: bytes | bytearray | memoryview) -> AudioIn | AudioOut:
    """Decode the header part of an audio message; the PCM part is never looked at.

    Raises ``ProtocolError`` for a wrong version, truncated or undecodable header.
    """
    payload = _payload(frame)
    try:
        return _audio_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"undecodable audio header: {exc}") from None


def split(parts: Sequence[Any]) -> tuple[Any, Any]:
    """Classify the parts of one received message (identity already removed).

    Returns ``(message, None)`` for control or ``(header, pcm_part)`` for audio, where
    ``pcm_part`` is the received part itself (bytes or ``zmq.Frame``), untouched.
    Raises ``ProtocolError`` for any other shape.
    """
    if len(parts) == 1:
        return decode(_buffer(parts[0])), None
    if len(parts) == 2:
        header = decode_audio_header(_buffer(parts[0]))
        pcm = parts[1]
        if len(_buffer(pcm)) % 2:
            raise ProtocolError("PCM part has an odd number of bytes")
        return header, pcm
    raise ProtocolError(f"message has {len(parts)} parts; expected 1 (control) or 2 (audio)")


def _buffer(part: Any) -> bytes | bytearray | memoryview:
    # zmq.Frame exposes .buffer (a memoryview, no copy); bytes pass through.
    buf = getattr(part, "buffer", part)
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"frame part of type {type(part).__name__}")
    return buf
