"""Audio a client sends: ``CustomAudioSource`` and its ``CustomAudioTrack``, and the virtual
microphone (``Daily.create_microphone_device``), which is a custom source under another name."""

from __future__ import annotations

import collections
import threading
import time
import uuid
import weakref
from typing import Any, Protocol

from sandbox.sdk import loop
from sandbox.sdk.native import not_constructible


class AudioSink(Protocol):
    """A client in a call sending a track: it takes each paced piece of the track's audio."""

    def _send_audio(self, pcm: bytes, rate: int, channels: int, track: str, *, on_sdk_thread: bool) -> None: ...


class CustomAudioSource:
    """Audio a client sends. ``write_frames`` paces in real time: without a completion it
    blocks for the audio's duration; with one it returns at once, the source's queue is
    paced on the SDK thread, and the completion is called there, as daily-python calls it.

    No thread is started per write: a write with a completion is one hand-off to the SDK
    thread (none when that thread is already draining the source's queue), and the audio
    goes out from there with no further hop. Writes leave in the order they were made,
    with or without a completion.

    ``auto_silence`` is accepted and kept; the sandbox sends no silence between writes (a
    gap is a gap to the other participants) whichever it is."""

    PIECE_MS = 20
    LEAD_S = 0.1

    def __init__(self, sample_rate: int, channels: int, auto_silence: bool = True) -> None:
        self._sample_rate = sample_rate
        self._channels = channels
        self._auto_silence = bool(auto_silence)
        self._bytes_per_ms = sample_rate * channels * 2 // 1000
        self._clock = 0.0  # when what was handed over so far ends playing (monotonic)
        self._lock = threading.Lock()
        # Writes not yet sent: [pcm, bytes already sent, completion]; drained on the SDK thread.
        self._queue: collections.deque[list[Any]] = collections.deque()
        self._sending = False  # a blocking write or the SDK thread's drain is sending
        self._sinks: list[tuple[AudioSink, str]] = []  # (client, track name)

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
            with self._lock:
                self._queue.append([bytes(frames), 0, completion])
                start = not self._sending
                self._sending = True
            if start:
                sdk.call(self._drain, sdk)
            return 0
        return self._write_blocking(bytes(frames))

    def _write_blocking(self, frames: bytes) -> int:
        """Send on the caller's thread, sleeping to keep pace; after any queued writes."""
        done = threading.Event()
        with self._lock:
            if self._sending:  # queued writes go first: this one waits its turn in the queue
                self._queue.append([frames, 0, lambda n: done.set()])
                queued = True
            else:
                self._sending, queued = True, False
        if queued:
            done.wait()
            return self._frame_count(frames)
        piece = self.PIECE_MS * self._bytes_per_ms
        for start in range(0, len(frames), piece):
            chunk = frames[start : start + piece]
            if (ahead := self._ahead()) > 0:
                time.sleep(ahead)
            self._send(chunk, on_sdk_thread=False)
        sdk = loop.current()
        with self._lock:
            if not self._queue or sdk is None:
                self._sending = False
                sdk = None
        if sdk is not None:  # writes with a completion came meanwhile: the SDK thread takes over
            sdk.call(self._drain, sdk)
        return self._frame_count(frames)

    def _drain(self, sdk: loop.SdkLoop) -> None:
        """On the SDK thread: send what is queued, as far as the pace allows, calling each
        write's completion once all of it is handed over; come back when it is time."""
        piece = self.PIECE_MS * self._bytes_per_ms
        while True:
            with self._lock:
                if not self._queue:
                    self._sending = False
                    return
                write = self._queue[0]
            pcm, sent, completion = write
            while sent < len(pcm):
                if (ahead := self._ahead()) > 0:
                    write[1] = sent
                    sdk.loop.call_later(ahead, self._drain, sdk)
                    return
                self._send(pcm[sent : sent + piece], on_sdk_thread=True)
                sent += piece
            with self._lock:
                self._queue.popleft()
            # On the loop's next turn, as daily-python queues it, not inline: called inline, a
            # Pipecat writer's next write came before anything else the turn held, and the
            # runner's shared SDK loop fell behind by a second (bench, peer, N=4..10).
            sdk.loop.call_soon(loop.guarded, completion, self._frame_count(pcm))

    def _ahead(self) -> float:
        """How long to wait before the next piece may be handed over: up to ``LEAD_S`` of
        audio may go ahead of real time, like an audio device's playout buffer, so steady
        input passes straight through (no added latency) and a burst is smoothed out."""
        now = time.monotonic()
        if self._clock < now:
            self._clock = now  # idle since the last write: start afresh
        return self._clock - now - self.LEAD_S

    def _send(self, chunk: bytes, *, on_sdk_thread: bool) -> None:
        for client, track in list(self._sinks):
            client._send_audio(chunk, self._sample_rate, self._channels, track, on_sdk_thread=on_sdk_thread)
        self._clock += len(chunk) / self._bytes_per_ms / 1000

    def _frame_count(self, frames: bytes) -> int:
        return len(frames) // (2 * self._channels)


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
