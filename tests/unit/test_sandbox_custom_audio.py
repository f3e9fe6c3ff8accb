"""sandbox.client's CustomAudioSource keeps daily-python's contract for ``write_frames``
without a thread per write: completions arrive on the SDK thread, once per write, with the
frame count, in the order of the writes; audio leaves in 20 ms pieces at real-time pace
(at most ``LEAD_S`` ahead), from the source's one pacing thread (which ends with the
source) or the blocking writer's own thread.

A small sink stands in for the call client the source's track is bound to (its only
method is the one the source calls)."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import pytest

import sandbox.client as sc
from sandbox.sdk import loop
from tests.sdk_client import ensure_sdk
from tests.waiting import wait_until

RATE = 16000
PIECE = RATE * 2 * 20 // 1000  # 20 ms of 16-bit mono


class Sink:
    """Records every piece sent: its bytes, when, from which thread."""

    def __init__(self) -> None:
        self.pieces: list[tuple[bytes, float, int]] = []

    def _send_audio(self, pcm: bytes, rate: int, channels: int, track: str) -> None:
        self.pieces.append((pcm, time.monotonic(), threading.get_ident()))


class Completions:
    """Each completion's argument and the thread it ran on, in the order they came."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []  # (write index, frames, thread ident)

    def of(self, index: int) -> Any:
        return lambda n: self.calls.append((index, n, threading.get_ident()))


def _source_with_sink() -> tuple[sc.CustomAudioSource, Sink]:
    ensure_sdk()
    source = sc.CustomAudioSource(RATE, 1)
    sink = Sink()
    source._sinks.append((sink, "microphone"))  # what a joined client's track binding does
    return source, sink


def _sdk_ident() -> int:
    sdk = loop.require()
    assert sdk.thread.ident is not None
    return sdk.thread.ident


def _frame(i: int) -> bytes:
    return bytes([i % 256]) * PIECE


async def test_completions_come_on_the_sdk_thread_once_per_write_in_order() -> None:
    source, sink = _source_with_sink()
    completions = Completions()
    for i in range(30):
        assert source.write_frames(_frame(i), completion=completions.of(i)) == 0
    await wait_until(lambda: len(completions.calls) == 30, timeout=5)
    assert [c[0] for c in completions.calls] == list(range(30))
    assert {c[1] for c in completions.calls} == {PIECE // 2}
    assert {c[2] for c in completions.calls} == {_sdk_ident()}
    assert [p[0] for p in sink.pieces] == [_frame(i) for i in range(30)]


async def test_writes_with_a_completion_share_one_pacing_thread_that_ends_with_the_source() -> None:
    source, sink = _source_with_sink()
    completions = Completions()
    before = set(threading.enumerate())
    for i in range(50):
        source.write_frames(_frame(i), completion=completions.of(i))
    during = set(threading.enumerate()) - before  # most of the second of audio is still queued
    await wait_until(lambda: len(completions.calls) == 50, timeout=5)
    assert [t.name for t in during] == ["sandbox-audio-pacer"]
    (pacer,) = during
    assert {p[2] for p in sink.pieces} == {pacer.ident}
    del source
    gc.collect()
    await wait_until(lambda: not pacer.is_alive(), timeout=5, what="the pacing thread to end")


async def test_a_burst_is_paced_in_real_time_at_most_lead_ahead() -> None:
    source, sink = _source_with_sink()
    completions = Completions()
    started = time.monotonic()
    source.write_frames(bytes(PIECE * 50), completion=completions.of(0))  # one second at once
    await wait_until(lambda: completions.calls, timeout=5)
    assert len(sink.pieces) == 50 and {len(p[0]) for p in sink.pieces} == {PIECE}
    # Piece k may leave once k * 20 ms minus the lead has passed, never before.
    for k, (_, sent_at, _) in enumerate(sink.pieces):
        assert sent_at - started >= k * 0.020 - source.LEAD_S - 0.001, k
    assert completions.calls == [(0, PIECE * 50 // 2, _sdk_ident())]


async def test_a_blocking_write_waits_for_queued_writes_and_keeps_their_order() -> None:
    source, sink = _source_with_sink()
    completions = Completions()
    for i in range(20):  # 400 ms queued: the blocking write must go after all of it
        source.write_frames(_frame(i), completion=completions.of(i))
    written: list[int] = []
    blocking = threading.Thread(target=lambda: written.append(source.write_frames(_frame(99))))
    blocking.start()
    source.write_frames(_frame(100), completion=completions.of(100))
    await wait_until(lambda: len(completions.calls) == 21 and written, timeout=5)
    blocking.join(1)
    assert written == [PIECE // 2]
    order = [p[0][0] for p in sink.pieces]
    assert order[:20] == list(range(20))
    assert sorted(order[20:]) == [99, 100]  # the blocking write and the last queued one, after


async def test_a_blocking_write_with_nothing_queued_sends_from_the_callers_thread() -> None:
    source, sink = _source_with_sink()
    assert source.write_frames(bytes(PIECE * 3)) == PIECE * 3 // 2
    assert [p[2] for p in sink.pieces] == [threading.get_ident()] * 3


async def test_a_write_after_a_completion_write_drained_is_sent_again() -> None:
    source, sink = _source_with_sink()
    completions = Completions()
    source.write_frames(_frame(1), completion=completions.of(1))
    await wait_until(lambda: len(completions.calls) == 1, timeout=5)
    source.write_frames(_frame(2), completion=completions.of(2))
    await wait_until(lambda: len(completions.calls) == 2, timeout=5)
    assert [p[0] for p in sink.pieces] == [_frame(1), _frame(2)]


def test_a_write_with_a_completion_before_daily_init_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "_sdk", None)
    source = sc.CustomAudioSource(RATE, 1)
    with pytest.raises(RuntimeError, match=r"Daily.init\(\) must be called first"):
        source.write_frames(bytes(PIECE), completion=lambda n: None)
