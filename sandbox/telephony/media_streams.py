"""Twilio Media Streams on the wire: the JSON messages of a bidirectional ``<Connect><Stream>``.

The phone (Twilio's side) sends ``connected``, ``start``, ``media`` (8 kHz μ-law, base64, in
20 ms chunks), ``mark`` when a server's mark has been played, ``dtmf`` and ``stop``. The
server sends ``media``, ``mark`` and ``clear``. Field names as Twilio spells them
(camelCase; counters such as ``sequenceNumber`` are strings).
"""

from __future__ import annotations

import msgspec

PROTOCOL_VERSION = "1.0.0"
ENCODING = "audio/x-mulaw"


# -- what the phone sends --------------------------------------------------------------------

class Connected(msgspec.Struct, tag_field="event", tag="connected"):
    protocol: str = "Call"
    version: str = PROTOCOL_VERSION


class MediaFormat(msgspec.Struct, rename="camel"):
    encoding: str = ENCODING
    sample_rate: int = 8000
    channels: int = 1


class StartInfo(msgspec.Struct, rename="camel"):
    account_sid: str
    stream_sid: str
    call_sid: str
    tracks: list[str]
    custom_parameters: dict[str, str]
    media_format: MediaFormat


class Start(msgspec.Struct, tag_field="event", tag="start", rename="camel"):
    sequence_number: str
    start: StartInfo
    stream_sid: str


class InboundMedia(msgspec.Struct):
    track: str
    chunk: str
    timestamp: str
    payload: str


class Media(msgspec.Struct, tag_field="event", tag="media", rename="camel"):
    sequence_number: str
    media: InboundMedia
    stream_sid: str


class MarkName(msgspec.Struct):
    name: str


class Mark(msgspec.Struct, tag_field="event", tag="mark", rename="camel"):
    sequence_number: str
    stream_sid: str
    mark: MarkName


class Digit(msgspec.Struct):
    track: str
    digit: str


class Dtmf(msgspec.Struct, tag_field="event", tag="dtmf", rename="camel"):
    sequence_number: str
    stream_sid: str
    dtmf: Digit


class StopInfo(msgspec.Struct, rename="camel"):
    account_sid: str
    call_sid: str


class Stop(msgspec.Struct, tag_field="event", tag="stop", rename="camel"):
    sequence_number: str
    stream_sid: str
    stop: StopInfo



# -- what the server sends -------------------------------------------------------------------

class OutboundMedia(msgspec.Struct):
    payload: str


class ServerMedia(msgspec.Struct, tag_field="event", tag="media", rename="camel"):
    media: OutboundMedia
    stream_sid: str = ""


class ServerMark(msgspec.Struct, tag_field="event", tag="mark", rename="camel"):
    mark: MarkName
    stream_sid: str = ""


class Clear(msgspec.Struct, tag_field="event", tag="clear", rename="camel"):
    stream_sid: str = ""


ServerMessage = ServerMedia | ServerMark | Clear

encoder = msgspec.json.Encoder()
server_decoder = msgspec.json.Decoder(ServerMessage)


def decode_server(data: str | bytes) -> ServerMessage | None:
    """A server's message, or None for anything else (other events, not JSON): Twilio
    ignores what it does not know."""
    try:
        return server_decoder.decode(data)
    except msgspec.DecodeError:
        return None
