"""The sandbox's room protocol: participants (``sandbox.client`` or synthetic callers)
talk to the room server over one ZeroMQ DEALER each.

Requests carry an id and get exactly one ``Resp``; the server pushes ``Ev`` (named after
the ``daily.EventHandler`` callback it becomes) and audio as ``[AudioHead, pcm]``.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Wire(msgspec.Struct, tag=True, array_like=True):
    pass


class Req(_Wire, tag="q"):
    rid: int
    op: str
    args: dict[str, Any] = {}


class Resp(_Wire, tag="r"):
    rid: int
    error: str | None = None
    data: Any = None


class Ev(_Wire, tag="e"):
    """A callback for the participant: ``on_<name>(*args)``."""

    callback: str
    args: list[Any] = []


class Beat(_Wire, tag="b"):
    """Heartbeat, both ways: a participant that stops beating is dropped from its room."""


class AudioHead(_Wire, tag="a"):
    """Header of an audio frame. Client -> server: ``participant_id`` is empty and
    ``source`` names the track; server -> client: who spoke, on which track."""

    participant_id: str
    source: str
    seq: int
    sample_rate: int
    channels: int


Wire = Req | Resp | Ev | Beat | AudioHead

encoder = msgspec.msgpack.Encoder()
decoder = msgspec.msgpack.Decoder(Wire)

HEARTBEAT_S = 0.5
HEARTBEAT_TIMEOUT_S = 3.0
