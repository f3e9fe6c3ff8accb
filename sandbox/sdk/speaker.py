"""daily-python's virtual speaker, for the sandbox: the mix of every remote participant's
microphone heard by the process's joined call clients, read as a real-time device.

As in daily-python: one speaker is selected per process (``Daily.select_speaker_device``);
reading while no client is in a call returns ``b""`` at once; in a call, reading N frames
finishes when N frames' worth of time has passed on the device's clock, and returns the
mix (silence where nobody spoke). A blocking device sleeps in ``read_frames``; with a
completion (or a non-blocking device) the read returns ``b""`` at once and the completion
gets the audio on the SDK thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox.sdk.native import not_constructible

# Audio not read within this long is dropped, oldest first: a reader that stalls hears
# the present when it comes back, not a backlog.
MAX_BUFFER_S = 0.5
# A reader this far behind the device clock restarts it at now instead of catching up.
RESYNC_S = 0.2

Scheduler = Callable[[float, Callable[..., None], Any], None]  # (delay_s, fn, arg)


class VirtualSpeakerDevice:
    """A virtual speaker (``Daily.create_speaker_device``); 16-bit PCM at its own rate."""

    __init__ = not_constructible

    @classmethod
    def _create(cls, device_name: str, sample_rate: int, channels: int, non_blocking: bool,
                schedule: Scheduler) -> VirtualSpeakerDevice:
        speaker = object.__new__(cls)
        speaker._name, speaker._rate, speaker._channels = device_name, int(sample_rate), int(channels)
        speaker._non_blocking = bool(non_blocking)
        speaker._schedule = schedule
        speaker._lock = threading.Lock()
        speaker._buffers = {}
        speaker._listeners = set()
        speaker._clock = None
        return speaker

    _name: str
    _rate: int
    _channels: int
    _non_blocking: bool
    _schedule: Scheduler
    _lock: threading.Lock
    _buffers: dict[Any, bytearray]  # one per (client, remote participant)
    _listeners: set[int]  # ids of the joined clients feeding this speaker
    _clock: float | None  # monotonic end of the audio read so far

    @property
    def name(self) -> str:
        return self._name

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return self._channels

    def read_frames(self, num_frames: int, completion: Any = None) -> bytes:
        """Read ``num_frames`` frames of the call's mix (``b""`` when in no call)."""
        delay = self._reserve(int(num_frames))
        if completion is None and not self._non_blocking:
            if delay is None:
                return b""
            if delay > 0:
                time.sleep(delay)
            return self._take(int(num_frames))
        if completion is not None:
            self._schedule(0.0 if delay is None else delay, lambda n: completion(self._take(n)), int(num_frames))
        return b""

    # -- fed by sandbox.client ---------------------------------------------------------------

    def _listen(self, client_id: int, on: bool) -> None:
        """A client joined (on) or left (off) a call while this speaker is selected."""
        with self._lock:
            if on:
                self._listeners.add(client_id)
                return
            self._listeners.discard(client_id)
            for key in [k for k in self._buffers if k[0] == client_id]:
                del self._buffers[key]
            if not self._listeners:
                self._clock = None

    def _forget(self, client_id: int, participant_id: str) -> None:
        with self._lock:
            self._buffers.pop((client_id, participant_id), None)

    def _feed(self, client_id: int, participant_id: str, pcm: bytes, rate: int, channels: int) -> None:
        """Audio a remote participant sent, as a client received it."""
        if rate != self._rate or channels != self._channels:
            pcm = _convert(pcm, rate, channels, self._rate, self._channels)
        limit = int(MAX_BUFFER_S * self._rate) * 2 * self._channels
        with self._lock:
            if client_id not in self._listeners:
                return
            buf = self._buffers.setdefault((client_id, participant_id), bytearray())
            buf += pcm
            while len(buf) > limit:
                del buf[: len(pcm)]  # whole pieces, so frames stay aligned as they were sent

    # -- the device clock --------------------------------------------------------------------

    def _reserve(self, num_frames: int) -> float | None:
        """Claim the next ``num_frames`` of device time; seconds until they are due, or
        None when no client is in a call."""
        with self._lock:
            if not self._listeners:
                return None
            now = time.monotonic()
            if self._clock is None or self._clock < now - RESYNC_S:
                self._clock = now
            self._clock += num_frames / self._rate
            return max(0.0, self._clock - now)

    def _take(self, num_frames: int) -> bytes:
        size = num_frames * 2 * self._channels
        with self._lock:
            if not self._listeners:
                return b""
            # Only whole reads are taken: a participant with less buffered is silent this
            # time, and its audio is not split across two reads.
            parts = [bytes(buf[:size]) for buf in self._buffers.values() if len(buf) >= size]
            for buf in self._buffers.values():
                if len(buf) >= size:
                    del buf[:size]
        if not parts:
            return bytes(size)
        if len(parts) == 1:
            return parts[0]
        import numpy as np  # only a speaker hearing two participants at once pays for it

        mixed = np.sum([np.frombuffer(p, dtype="<i2").astype(np.int32) for p in parts], axis=0)
        return bytes(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())


def _convert(pcm: bytes, rate: int, channels: int, to_rate: int, to_channels: int) -> bytes:
    """Resample and up/down-mix 16-bit PCM to the speaker's format."""
    import numpy as np

    from callfleet.audio import resample

    if channels != to_channels:
        samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).astype(np.int32)
        mono = samples.mean(axis=1).astype("<i2")
        pcm = (np.repeat(mono, to_channels) if to_channels > 1 else mono).tobytes()
    return resample(pcm, rate, to_rate, to_channels)
