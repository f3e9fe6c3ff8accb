"""Audio a client sends: ``CustomAudioSource`` and its ``CustomAudioTrack``, and the virtual
microphone (``Daily.create_microphone_device``), which is a custom source under another name."""

from __future__ import annotations

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
    blocks for the audio's duration; with one it returns at once and completes later.

    ``auto_silence`` is accepted and kept; the sandbox sends no silence between writes (a
    gap is a gap to the other participants) whichever it is."""

    PIECE_MS = 20
    LEAD_S = 0.1

    def __init__(self, sample_rate: int, channels: int, auto_silence: bool = True) -> None:
        self._sample_rate = sample_rate
        self._channels = channels
        self._auto_silence = bool(auto_silence)
        self._clock = 0.0
        self._lock = threading.Lock()
        self._sinks: list[tuple[AudioSink, str]] = []  # (client, track name)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def channels(self) -> int:
        return self._channels

    def write_frames(self, frames: bytes, completion: Any = None) -> int:
        """Send ``frames`` (16-bit PCM) to every call the source's track is in; returns the
        number of frames written, or 0 at once with a completion (it gets the number)."""
        if completion is not None:
            threading.Thread(target=lambda: self._complete(frames, completion), daemon=True).start()
            return 0
        return self._write(bytes(frames))

    def _complete(self, frames: bytes, completion: Callable[[int], None]) -> None:
        n = self._write(bytes(frames))
        sdk = loop.current()
        if sdk is not None:
            sdk.call(completion, n)

    def _write(self, frames: bytes) -> int:
        """Send in 20 ms pieces at real-time pace. Like an audio device's playout buffer,
        up to ``LEAD_S`` of audio may be handed over ahead of time: steady input passes
        straight through (no added latency), a burst is smoothed out."""
        bytes_per_ms = self._sample_rate * self._channels * 2 // 1000
        piece = self.PIECE_MS * bytes_per_ms
        with self._lock:
            for start in range(0, len(frames), piece):
                chunk = frames[start : start + piece]
                now = time.monotonic()
                if self._clock < now:
                    self._clock = now  # idle since the last write: start afresh
                while (ahead := self._clock - time.monotonic()) > self.LEAD_S:
                    time.sleep(ahead - self.LEAD_S)
                for client, track in list(self._sinks):
                    client._send_audio(chunk, self._sample_rate, self._channels, track)
                self._clock += len(chunk) / bytes_per_ms / 1000
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
