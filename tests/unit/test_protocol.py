"""The wire: every message round-trips; anything else is a ProtocolError and only that."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import daily
import msgspec
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import PROTOCOL_VERSION, ProtocolError, decode, decode_audio_header, encode, split
from protocol.audio import AudioIn, AudioOut
from protocol.messages import (
    COMMANDS,
    CONTROL_TYPES,
    EVENT_BY_CALLBACK,
    EVENTS,
    Completion,
    Err,
    ErrCode,
    Hello,
    Join,
    Leave,
    Ok,
    Ping,
    SetAudioRenderer,
)
from protocol.transport import BadFrameLog

# MessagePack integers are 64-bit, and NaN never equals itself: keep generated values in
# the domain the wire actually carries.
st.register_type_strategy(int, st.integers(-(2**63), 2**63 - 1))
st.register_type_strategy(float, st.floats(allow_nan=False))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _values(tp: Any) -> st.SearchStrategy[Any]:
    """Values of an annotated field type; JSON-like wherever the type says ``Any``."""
    if tp is Any:
        return json_values
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _instances(tp)
    if getattr(tp, "__metadata__", None):  # Annotated[int, Meta(ge, le, multiple_of)]
        meta = tp.__metadata__[0]
        step = meta.multiple_of or 1
        return st.integers(meta.ge // step, meta.le // step).map(lambda v: v * step)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_values(a) for a in args))
    if origin is dict:
        return st.dictionaries(_values(args[0]), _values(args[1]), max_size=3)
    if origin is list:
        return st.lists(_values(args[0]), max_size=3)
    if tp is str:
        return st.text(max_size=30)
    return st.from_type(tp)


def _instances(cls: type) -> st.SearchStrategy[Any]:
    return st.builds(cls, **{f.name: _values(f.type) for f in msgspec.structs.fields(cls)})


@pytest.mark.parametrize("cls", CONTROL_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_control_message_round_trips(cls: type, data: st.DataObject) -> None:
    msg = data.draw(_instances(cls))
    assert decode(encode(msg)) == msg


@settings(max_examples=200, deadline=None)
@given(
    pid=st.text(max_size=64),
    seq=st.integers(0, 2**63 - 1),
    rate=st.sampled_from([8000, 16000, 24000, 48000]),
    channels=st.integers(1, 2),
)
def test_audio_headers_round_trip(pid: str, seq: int, rate: int, channels: int) -> None:
    for header in (AudioIn(pid, seq, rate, channels), AudioOut(seq, rate, channels)):
        assert decode_audio_header(encode(header)) == header


def test_every_daily_event_callback_has_an_event_struct() -> None:
    callbacks = {n for n in dir(daily.EventHandler) if n.startswith("on_")}
    assert callbacks == set(EVENT_BY_CALLBACK)
    for name, cls in EVENT_BY_CALLBACK.items():
        params = [p for p in inspect.signature(getattr(daily.EventHandler, name)).parameters if p != "self"]
        assert list(cls.__struct_fields__) == params, name


def test_every_command_names_a_real_call_client_method_with_matching_keywords() -> None:
    for cmd in COMMANDS:
        if not cmd.method:
            continue  # worker-local commands (ClearAudioRenderer)
        method = getattr(daily.CallClient, cmd.method)
        params = inspect.signature(method).parameters
        fields = [f for f in cmd.__struct_fields__ if f != "id"]
        if cmd in (Join, Leave, SetAudioRenderer):
            continue  # carried out by the worker's own code, not passed through as keywords
        for f in fields:
            assert f in params, f"{cmd.__name__}.{f} is not a parameter of CallClient.{cmd.method}"
        if cmd.completion is not Completion.NONE:
            assert "completion" in params, cmd.__name__


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x01", bytes([PROTOCOL_VERSION]) + b"\xc1", bytes([PROTOCOL_VERSION]) + b"\x81\xa4type\xa4Nope"],
    ids=["empty", "version-only", "bad-msgpack", "unknown-tag"],
)
def test_bad_control_frames_raise_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(frame)


def test_wrong_version_frame_names_both_versions() -> None:
    good = encode(Ping(seq=1, sent_at=0.0))
    bad = bytes([PROTOCOL_VERSION + 1]) + good[1:]
    with pytest.raises(ProtocolError, match=f"version {PROTOCOL_VERSION + 1}.*speaks {PROTOCOL_VERSION}"):
        decode(bad)


def _flip(frame: bytes, at: int, value: int) -> bytes:
    at %= len(frame)
    return frame[:at] + bytes([value]) + frame[at + 1 :]


# Pure noise almost never decodes; a real frame with one byte changed often still does.
noisy_frames = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda b: bytes([PROTOCOL_VERSION]) + b),
    st.builds(_flip, st.sampled_from(CONTROL_TYPES).flatmap(_instances).map(encode), st.integers(0), st.integers(0, 255)),
    st.builds(_flip, st.builds(AudioIn, st.text(max_size=8), st.integers(0, 2**63 - 1), st.integers(1, 48000),
                               st.integers(1, 2)).map(encode), st.integers(0), st.integers(0, 255)),
)


@settings(max_examples=500, deadline=None)
@given(noisy_frames)
def test_any_bytes_decode_to_a_wire_type_that_re_encodes_or_raise_protocol_error(blob: bytes) -> None:
    for decoder, wire_types in ((decode, tuple(CONTROL_TYPES)), (decode_audio_header, (AudioIn, AudioOut))):
        try:
            value = decoder(blob)
        except ProtocolError as exc:
            assert str(exc), "a ProtocolError says what is wrong"
            continue
        assert isinstance(value, wire_types), f"{decoder.__name__} returned {value!r}"
        assert encode(decoder(encode(value))) == encode(value)  # bytes, not ==: a flipped float may be NaN


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CONTROL_TYPES).flatmap(_instances), st.data())
def test_truncated_frames_raise_protocol_error(msg: Any, data: st.DataObject) -> None:
    frame = encode(msg)
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(ProtocolError):
        decode(frame[:cut])


def test_wrong_field_types_raise_protocol_error() -> None:
    frame = bytes([PROTOCOL_VERSION]) + msgspec.msgpack.encode({"type": "Ping", "seq": "one", "sent_at": 0})
    with pytest.raises(ProtocolError, match="seq"):
        decode(frame)


def test_split_rejects_wrong_part_counts_and_odd_pcm() -> None:
    header = encode(AudioIn("p", 0, 16000, 1))
    with pytest.raises(ProtocolError, match="3 parts"):
        split([header, b"\0\0", b"x"])
    with pytest.raises(ProtocolError, match="odd"):
        split([header, b"\0\0\0"])
    with pytest.raises(ProtocolError):
        split([])


def test_audio_route_path_forwards_the_received_pcm_frame_itself() -> None:
    """The router decodes the header and hands on the very zmq.Frame it received."""
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://route")
    b.connect("inproc://route")
    pcm = bytes(range(256)) * 3  # 768 bytes, above pyzmq's zero-copy threshold? irrelevant: identity
    a.send_multipart([encode(AudioIn("p1", 7, 16000, 1)), pcm])
    parts = b.recv_multipart(copy=False)
    header, routed_pcm = split(parts)
    assert header == AudioIn("p1", 7, 16000, 1)
    assert routed_pcm is parts[1]  # not a copy, not a re-encoding
    assert isinstance(routed_pcm, zmq.Frame)
    assert routed_pcm.bytes == pcm
    a.close(0)
    b.close(0)
    ctx.term()


def test_err_codes_and_ok_results_survive_the_wire() -> None:
    assert decode(encode(Err(3, ErrCode.TIMEOUT, "join did not complete"))).code is ErrCode.TIMEOUT
    assert decode(encode(Ok(4, {"participants": {"local": {"id": "x"}}}))).result["participants"]


def test_hello_rejects_unknown_fields() -> None:
    raw = msgspec.msgpack.encode(
        {"type": "Hello", "worker_id": "w", "pid": 1, "protocol_version": 1, "backend": "x", "extra": 1}
    )
    with pytest.raises(ProtocolError, match="extra"):
        decode(bytes([PROTOCOL_VERSION]) + raw)


def test_bad_frame_log_counts_every_frame_but_logs_once_per_peer_per_interval() -> None:
    log = BadFrameLog(interval_s=60)
    assert log.record(b"a", now=0) is True
    assert log.record(b"a", now=30) is False
    assert log.record(b"b", now=30) is True
    assert log.record(b"a", now=61) is True
    assert log.total == 4 and log.by_peer == {b"a": 3, b"b": 1}


def test_events_and_commands_are_distinct_tags() -> None:
    names = [c.__name__ for c in CONTROL_TYPES]
    assert len(names) == len(set(names))
    assert len(EVENTS) == len(EVENT_BY_CALLBACK)
    assert Hello in CONTROL_TYPES
