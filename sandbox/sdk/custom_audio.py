"""Audio a client sends: ``CustomAudioSource`` and its ``CustomAudioTrack``, and the virtual
microphone (``Daily.create_microphone_device``), which is a custom source under another name."""

from __future__ import annotations

import collections
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from sandbox.sdk import loop
from sandbox.sdk.native import not_constructible


class AudioSink(Protocol):
    """A client in a call sending a track: it takes each paced piece of the track's audio."""

    def _send_audio(self, pcm: bytes, rate: int, channels: int, track: str) -> None: ...


class CustomAudioSource:
    """Audio a client sends. ``write_frames`` paces in real time: without a completion it
    blocks for the audio's duration; with one it returns at once, the audio is paced on the
    source's own pacing thread, and the completion is called on the SDK thread, as
    daily-python calls it.

    No thread is started per write: one pacing thread per source, started by its first write
    with a completion, waits for the next write and ends with the source. Writes leave in
    the order they were made; a blocking write waits for the queued ones.

    ``auto_silence`` is accepted and kept; the sandbox sends no silence between writes (a
    gap is a gap to the other participants) whichever it is."""

    PIECE_MS = 20
    LEAD_S = 0.1

    def __init__(self, sample_rate: int, channels: int, auto_silence: bool = True) -> None:
        self._sample_rate = sample_rate
        self._channels = channels
        self._auto_silence = bool(auto_silence)
        self._sinks: list[tuple[AudioSink, str]] = []  # (client, track name)
        self._pacer = _Pacer(sample_rate, channels, self._sinks, self.PIECE_MS, self.LEAD_S)
        weakref.finalize(self, self._pacer.close)  # the pacing thread ends with the source

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def channels(self) -> int:
        return self._channels

    def write_frames(self, frames: bytes, completion: Any = None) -> int:
        """Send ``frames`` (16-bit PCM) to every call the source's track is in; returns the
        number of frames written, or 0 at once with a completion (it gets the number).
        Raises RuntimeError for a write with a completion before ``Daily.init()``."""
        if completion is not None:
            sdk = loop.require()
            self._pacer.queue(bytes(frames), lambda n: sdk.call(loop.guarded, completion, n))
            return 0
        return self._pacer.write(bytes(frames))


class _Pacer:
    """A source's pacing: its clock, its queue of writes with a completion and the thread
    that sends them. Holds no reference to the source, so the source can be collected (and
    close it)."""

    def __init__(self, rate: int, channels: int, sinks: list[tuple[AudioSink, str]], piece_ms: int,
                 lead_s: float) -> None:
        self.rate, self.channels, self.sinks, self.lead_s = rate, channels, sinks, lead_s
        self.bytes_per_ms = rate * channels * 2 // 1000
        self.piece = piece_ms * self.bytes_per_ms
        self.clock = 0.0  # when what was handed over so far ends playing (monotonic)
        self.cond = threading.Condition()
        self.pending: collections.deque[tuple[bytes, Callable[[int], None]]] = collections.deque()
        self.sending = False  # the pacing thread or a blocking writer is sending
        self.closed = False
        self.thread: threading.Thread | None = None

    def queue(self, pcm: bytes, done: Callable[[int], None]) -> None:
        with self.cond:
            self.pending.append((pcm, done))
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="sandbox-audio-pacer", daemon=True)
                self.thread.start()
            self.cond.notify_all()

    def write(self, pcm: bytes) -> int:
        """A blocking write: after the queued ones, on the caller's thread."""
        with self.cond:
            while self.sending or self.pending:
                self.cond.wait()
            self.sending = True
        try:
            return self.send(pcm)
        finally:
            with self.cond:
                self.sending = False
                self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def run(self) -> None:
        while True:
            with self.cond:
                while (self.sending or not self.pending) and not self.closed:
                    self.cond.wait()
                if self.closed:
                    return
                pcm, done = self.pending.popleft()
                self.sending = True
            try:
                n = self.send(pcm)
            finally:
                with self.cond:
                    self.sending = False
                    self.cond.notify_all()
            done(n)

    def send(self, pcm: bytes) -> int:
        """Send in 20 ms pieces at real-time pace. Like an audio device's playout buffer,
        up to ``lead_s`` of audio may be handed over ahead of time: steady input passes
        straight through (no added latency), a burst is smoothed out."""
        for start in range(0, len(pcm), self.piece):
            chunk = pcm[start : start + self.piece]
            now = time.monotonic()
            if self.clock < now:
                self.clock = now  # idle since the last write: start afresh
            while (ahead := self.clock - time.monotonic()) > self.lead_s:
                time.sleep(ahead - self.lead_s)
            for client, track in list(self.sinks):
                client._send_audio(chunk, self.rate, self.channels, track)
            self.clock += len(chunk) / self.bytes_per_ms / 1000
        return len(pcm) // (2 * self.channels)


# Every live track by id: inputs name a custom microphone track by its id.
tracks: weakref.WeakValueDictionary[str, CustomAudioTrack] = weakref.WeakValueDictionary()


class CustomAudioTrack:
    def __init__(self, audio_source: CustomAudioSource) -> None:
        self._id = str(uuid.uuid4())
        self.source = audio_source
        tracks[self._id] = self

    @property
    def id(self) -> str:
        return self._id


class VirtualMicrophoneDevice:
    """A virtual microphone (``Daily.create_microphone_device``): a client whose inputs
    name it (``microphone.settings.deviceId``) sends what is written, paced like a custom
    track. As in daily-python, writing while no client in a call uses it writes nothing
    and returns 0 at once."""

    __init__ = not_constructible

    @classmethod
    def _create(cls, device_name: str, sample_rate: int, channels: int, non_blocking: bool) -> VirtualMicrophoneDevice:
        microphone = object.__new__(cls)
        microphone._name = device_name
        microphone._non_blocking = bool(non_blocking)
        microphone._source = CustomAudioSource(sample_rate, channels, False)
        microphone._track = CustomAudioTrack(microphone._source)
        return microphone

    _name: str
    _non_blocking: bool
    _source: CustomAudioSource
    _track: CustomAudioTrack

    @property
    def name(self) -> str:
        return self._name

    @property
    def sample_rate(self) -> int:
        return self._source.sample_rate

    @property
    def channels(self) -> int:
        return self._source.channels

    def write_frames(self, frames: bytes, completion: Any = None) -> int:
        """Send ``frames`` as the microphone of every client in a call that uses it;
        returns the number of frames written (0 when none does)."""
        if not self._source._sinks:
            if completion is not None:
                loop.require().call(completion, 0)
            return 0
        if completion is None and not self._non_blocking:
            ten_ms = self._source.sample_rate // 100 * self._source.channels * 2
            frames = bytes(frames)
            # daily pads a blocking write up to the next 10 ms
            frames += bytes(-len(frames) % ten_ms)
            return self._source.write_frames(frames)
        return self._source.write_frames(frames, completion or (lambda n: None))
