"""daily-python's API, offline: every public name of the ``daily`` module (``Daily``,
``CallClient``, ``EventHandler``, ``CustomAudioSource``, ``CustomAudioTrack``, ``AudioData``,
``LogLevel``, the video classes and the virtual devices) with the same signatures and
threading, so that ``import daily`` code -- Pipecat's DailyTransport -- runs unmodified.

Threading as in daily-python: ``Daily.init()`` starts an SDK thread (an asyncio loop of its
own); every completion, event and audio renderer callback runs on it, never on the
caller's thread. Methods return at once and report through their completion.
``CustomAudioSource.write_frames`` blocks for as long as the audio lasts, like the real one.
Video is answered the way Daily answers a room without video (``sandbox.video``): tracks
and cameras take frames and drop them, renderers never receive any, cameras read "off".
The virtual speaker hears the mix of the call (``sandbox.speaker``); a virtual microphone
selected by ``deviceId`` in the inputs sends like a custom track. Live streaming answers
with an error in the completion, as Daily does for a room without it.
"""

from __future__ import annotations

import asyncio
import enum
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from sandbox.connection import JoinError, RequestError, RoomConnection
from sandbox.speaker import VirtualSpeakerDevice
from sandbox.video import CustomVideoSource, CustomVideoTrack, VideoFrame, VirtualCameraDevice
from sandbox.wire import AudioHead

__all__ = [
    "AudioData", "CallClient", "CustomAudioSource", "CustomAudioTrack", "CustomVideoSource",
    "CustomVideoTrack", "Daily", "EventHandler", "LogLevel", "NativeVad", "VideoFrame",
    "VirtualCameraDevice", "VirtualMicrophoneDevice", "VirtualSpeakerDevice",
]

__version__ = "sandbox"

NOT_JOINED = "Call client is not in a call"


class LogLevel(enum.Enum):
    """daily-python's log levels (``int(level)`` gives daily's number)."""

    Off = 0
    Error = 1
    Warn = 2
    Info = 3
    Debug = 4
    Trace = 5

    def __int__(self) -> int:
        return int(self.value)


class _Sdk:
    """The SDK thread: one asyncio loop shared by every client of the process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="sandbox-sdk", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(self.loop.call_later, delay, _guarded, fn, *args)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(2)


def _guarded(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        traceback.print_exc(file=sys.stderr)  # daily-python swallows it; say so at least


_sdk: _Sdk | None = None
# Virtual devices are process-wide in daily-python: by name, and the one selected speaker.
_speakers: dict[str, VirtualSpeakerDevice] = {}
_microphones: dict[str, VirtualMicrophoneDevice] = {}
_speaker: VirtualSpeakerDevice | None = None
_joined: weakref.WeakSet[CallClient] = weakref.WeakSet()  # clients in a call, for the speaker


def _require_sdk() -> _Sdk:
    if _sdk is None:
        raise RuntimeError("Daily.init() must be called first")
    return _sdk


def _not_constructible(self: object, *args: object, **kwargs: object) -> None:
    """``__init__`` of the classes daily-python makes natively and Python cannot create."""
    raise TypeError(f"cannot create '{type(self).__name__}' instances")


class Daily:
    """The SDK: ``init`` once per process, then clients and virtual devices."""

    __init__ = _not_constructible

    @staticmethod
    def init(worker_threads: int = 2, log_level: Any = ...) -> None:
        """Start the SDK thread; raises RuntimeError on a second call (daily aborts)."""
        global _sdk
        if _sdk is not None:
            raise RuntimeError("Daily.init() called twice (daily-python aborts the process)")
        if log_level is not ...:
            Daily.set_log_level(log_level)
        _sdk = _Sdk()

    @staticmethod
    def deinit() -> None:
        global _sdk, _speaker
        if _sdk is not None:
            _sdk.stop()
            _sdk = None
        _speakers.clear()
        _microphones.clear()
        _speaker = None

    @staticmethod
    def set_log_level(log_level: LogLevel) -> None:
        """Raises TypeError, as daily does, for anything but a LogLevel."""
        if not isinstance(log_level, LogLevel):
            raise TypeError(f"'{type(log_level).__name__}' object is not an instance of 'LogLevel'")

    @staticmethod
    def create_native_vad(reset_period_ms: int = 1000, sample_rate: int = 16000, channels: int = 1) -> NativeVad:
        return NativeVad._create(reset_period_ms, sample_rate, channels)

    @staticmethod
    def create_camera_device(device_name: str, width: int, height: int, color_format: str = "RGBA") -> VirtualCameraDevice:
        """A virtual camera; its frames are dropped. Raises ValueError for an unknown color
        format, RuntimeError before ``init``."""
        _require_sdk()
        return VirtualCameraDevice._create(device_name, width, height, color_format)

    @staticmethod
    def create_speaker_device(device_name: str, sample_rate: int = 16000, channels: int = 1,
                              non_blocking: bool = False) -> VirtualSpeakerDevice:
        """A virtual speaker, heard once selected. Raises RuntimeError before ``init``."""
        sdk = _require_sdk()
        speaker = VirtualSpeakerDevice._create(device_name, sample_rate, channels, non_blocking, sdk.call_later)
        _speakers[device_name] = speaker
        return speaker

    @staticmethod
    def create_microphone_device(device_name: str, sample_rate: int = 16000, channels: int = 1,
                                 non_blocking: bool = False) -> VirtualMicrophoneDevice:
        """A virtual microphone, sent by a client whose inputs name it as ``deviceId``.
        Raises RuntimeError before ``init``."""
        _require_sdk()
        microphone = VirtualMicrophoneDevice._create(device_name, sample_rate, channels, non_blocking)
        _microphones[device_name] = microphone
        return microphone

    @staticmethod
    def select_speaker_device(device_name: str) -> None:
        """Make the named speaker the process's; raises RuntimeError (daily's text) for an
        unknown name."""
        global _speaker
        speaker = _speakers.get(device_name)
        if speaker is None:
            raise RuntimeError("unable to select virtual speaker device")
        old, _speaker = _speaker, speaker
        for client in list(_joined):
            if old is not None and old is not speaker:
                old._listen(id(client), False)
            client._hear_speaker(speaker)


class NativeVad:
    """Voice activity, daily-python's shape: ``analyze_frames`` takes 10 ms of 16-bit PCM
    (only the first 10 ms of longer input) and returns a speech probability in 0..1.

    The sandbox's detector is energy-based -- a logistic on the frame's level, smoothed over
    recent frames and reset every ``reset_period_ms`` -- not daily's model: silence reads 0,
    sustained loud audio approaches 1."""

    __init__ = _not_constructible

    @classmethod
    def _create(cls, reset_period_ms: int, sample_rate: int, channels: int) -> NativeVad:
        vad = object.__new__(cls)
        vad._reset_ms, vad._rate, vad._channels = reset_period_ms, sample_rate, channels
        vad._level = 0.0
        vad._elapsed_ms = 0
        return vad

    _reset_ms: int
    _rate: int
    _channels: int
    _level: float
    _elapsed_ms: int

    @property
    def reset_period_ms(self) -> int:
        return self._reset_ms

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return self._channels

    def analyze_frames(self, frames: bytes) -> float:
        # Imported here, not at the top: workers import this module, and numpy would add
        # megabytes to every worker that never uses a VAD.
        import math

        import numpy as np

        n = self._rate // 100 * self._channels
        samples = np.frombuffer(bytes(frames)[: n * 2], dtype="<i2").astype(np.float64)
        if samples.size == 0:
            return 0.0
        self._elapsed_ms += 10
        if self._reset_ms and self._elapsed_ms >= self._reset_ms:
            self._level, self._elapsed_ms = 0.0, 0
        rms = float(np.sqrt(np.mean(samples * samples)))
        dbfs = 20 * math.log10(rms / 32768) if rms > 0 else -120.0
        instant = 1 / (1 + math.exp(-(dbfs + 40) / 4))  # -40 dBFS is the midpoint
        self._level = 0.6 * self._level + 0.4 * instant
        return round(self._level, 4) if rms > 0 else 0.0


class EventHandler:
    """Base class for event handlers; override the ``on_*`` methods you need."""

    def __init__(self, *args: Any) -> None:
        pass

    def on_active_speaker_changed(self, participant: Any) -> None: ...
    def on_app_message(self, message: Any, sender: Any) -> None: ...
    def on_available_devices_updated(self, available_devices: Any) -> None: ...
    def on_call_state_updated(self, state: Any) -> None: ...
    def on_dialin_connected(self, data: Any) -> None: ...
    def on_dialin_error(self, data: Any) -> None: ...
    def on_dialin_ready(self, sip_endpoint: Any) -> None: ...
    def on_dialin_stopped(self, data: Any) -> None: ...
    def on_dialin_warning(self, data: Any) -> None: ...
    def on_dialout_answered(self, data: Any) -> None: ...
    def on_dialout_connected(self, data: Any) -> None: ...
    def on_dialout_error(self, data: Any) -> None: ...
    def on_dialout_stopped(self, data: Any) -> None: ...
    def on_dialout_warning(self, data: Any) -> None: ...
    def on_dtmf_event(self, data: Any) -> None: ...
    def on_error(self, message: Any) -> None: ...
    def on_inputs_updated(self, input_settings: Any) -> None: ...
    def on_live_stream_error(self, stream_id: Any, message: Any) -> None: ...
    def on_live_stream_started(self, status: Any) -> None: ...
    def on_live_stream_stopped(self, stream_id: Any) -> None: ...
    def on_live_stream_updated(self, update: Any) -> None: ...
    def on_live_stream_warning(self, stream_id: Any, message: Any) -> None: ...
    def on_network_connection_status_updated(self, status: Any) -> None: ...
    def on_network_stats_updated(self, stats: Any) -> None: ...
    def on_participant_counts_updated(self, counts: Any) -> None: ...
    def on_participant_joined(self, participant: Any) -> None: ...
    def on_participant_left(self, participant: Any, reason: Any) -> None: ...
    def on_participant_updated(self, participant: Any) -> None: ...
    def on_publishing_updated(self, publishing_settings: Any) -> None: ...
    def on_recording_error(self, stream_id: Any, message: Any) -> None: ...
    def on_recording_started(self, status: Any) -> None: ...
    def on_recording_stopped(self, stream_id: Any) -> None: ...
    def on_subscription_profiles_updated(self, subscription_profiles: Any) -> None: ...
    def on_subscriptions_updated(self, subscriptions: Any) -> None: ...
    def on_transcription_error(self, message: Any) -> None: ...
    def on_transcription_message(self, message: Any) -> None: ...
    def on_transcription_started(self, status: Any) -> None: ...
    def on_transcription_stopped(self, stopped_by: Any, stopped_by_error: Any) -> None: ...
    def on_transcription_updated(self, update: Any) -> None: ...


class AudioData:
    """Audio handed to a renderer callback (read-only, like daily's)."""

    __slots__ = ("_frames", "_rate", "_channels")
    _frames: bytes
    _rate: int
    _channels: int

    __init__ = _not_constructible

    @classmethod
    def _create(cls, audio_frames: bytes, sample_rate: int, num_channels: int) -> AudioData:
        data = object.__new__(cls)
        data._frames, data._rate, data._channels = audio_frames, sample_rate, num_channels
        return data

    @property
    def audio_frames(self) -> bytes:
        return self._frames

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def num_channels(self) -> int:
        return self._channels

    @property
    def bits_per_sample(self) -> int:
        return 16

    @property
    def num_audio_frames(self) -> int:
        return len(self._frames) // (2 * self._channels)


_tracks: weakref.WeakValueDictionary[str, CustomAudioTrack] = weakref.WeakValueDictionary()


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
        self._sinks: list[tuple[CallClient, str]] = []  # (client, track name)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def channels(self) -> int:
        return self._channels

    def write_frames(self, frames: bytes, completion: Any = None) -> int:
        if completion is not None:
            threading.Thread(target=lambda: self._complete(frames, completion), daemon=True).start()
            return 0
        return self._write(bytes(frames))

    def _complete(self, frames: bytes, completion: Callable[[int], None]) -> None:
        n = self._write(bytes(frames))
        sdk = _sdk
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


class CustomAudioTrack:
    def __init__(self, audio_source: CustomAudioSource) -> None:
        self._id = str(uuid.uuid4())
        self.source = audio_source
        _tracks[self._id] = self

    @property
    def id(self) -> str:
        return self._id


class VirtualMicrophoneDevice:
    """A virtual microphone (``Daily.create_microphone_device``): a client whose inputs
    name it (``microphone.settings.deviceId``) sends what is written, paced like a custom
    track. As in daily-python, writing while no client in a call uses it writes nothing
    and returns 0 at once."""

    __init__ = _not_constructible

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
        if not self._source._sinks:
            if completion is not None:
                _require_sdk().call(completion, 0)
            return 0
        if completion is None and not self._non_blocking:
            ten_ms = self._source.sample_rate // 100 * self._source.channels * 2
            frames = bytes(frames)
            # daily pads a blocking write up to the next 10 ms
            frames += bytes(-len(frames) % ten_ms)
            return self._source.write_frames(frames)
        return self._source.write_frames(frames, completion or (lambda n: None))


class CallClient:
    """A participant of a sandbox room, with ``daily.CallClient``'s API."""

    def __init__(self, event_handler: Any = None) -> None:
        self._sdk = _require_sdk()
        self._handler = event_handler
        self._conn: RoomConnection | None = None
        self._state = "initialized"
        self._participants: dict[str, dict[str, Any]] = {}
        self._local: dict[str, Any] = {}
        self._renderers: dict[tuple[str, str], tuple[Callable[..., None], int, int, bytearray]] = {}
        self._inputs: dict[str, Any] = {
            "camera": {"isEnabled": False, "settings": {}},
            "microphone": {"isEnabled": True, "settings": {}},
            "screenAudio": {"isEnabled": False, "settings": {}},
            "screenVideo": {"isEnabled": False, "settings": {}},
            "customAudio": {},
            "customVideo": {},
        }
        self._publishing: dict[str, Any] = {"camera": {"isPublishing": False}, "microphone": {"isPublishing": True}}
        self._subscriptions: dict[str, Any] = {}
        self._profiles: dict[str, Any] = {"base": {"camera": "subscribed", "microphone": "subscribed", "screenVideo": "subscribed", "screenAudio": "subscribed"}}
        self._tracks: dict[str, CustomAudioTrack] = {}  # what is sent, by track name
        self._video_tracks: dict[str, CustomVideoTrack] = {}
        self._video_renderers: dict[tuple[str, str], tuple[Callable[..., None], str]] = {}  # never called
        self._active_speaker: dict[str, Any] = {}
        self._released = False

    # -- delivery on the SDK thread --------------------------------------------------------

    def _emit(self, callback: str, *args: Any) -> None:
        handler = getattr(self._handler, callback, None)
        if handler is None:
            return
        try:
            handler(*args)
        except Exception:
            # daily-python swallows what handlers raise; at least say so on stderr.
            traceback.print_exc(file=sys.stderr)

    def _complete(self, completion: Any, *args: Any) -> None:
        if completion is not None:
            try:
                completion(*args)
            except Exception:
                traceback.print_exc(file=sys.stderr)

    def _set_state(self, state: str) -> None:
        self._state = state
        self._emit("on_call_state_updated", state)

    def _on_room_event(self, callback: str, args: list[Any]) -> None:
        if callback == "_left":
            self._conn = None
            self._bind_tracks(False)
            self._stop_hearing()
            self._participants.clear()
            self._emit("on_error", str(args[0]) if args else "left the call")
            self._set_state("left")
            return
        if callback in ("on_participant_joined", "on_participant_updated") and args:
            self._participants[args[0]["id"]] = args[0]
        elif callback == "on_participant_left" and args:
            self._participants.pop(args[0]["id"], None)
            for key in [k for k in self._renderers if k[0] == args[0]["id"]]:
                del self._renderers[key]
            if _speaker is not None:
                _speaker._forget(id(self), args[0]["id"])
        elif callback == "on_active_speaker_changed" and args:
            self._active_speaker = args[0]
        self._emit(callback, *args)

    def _on_room_audio(self, head: AudioHead, pcm: bytes) -> None:
        speaker = _speaker
        if speaker is not None and head.source == "microphone":
            speaker._feed(id(self), head.participant_id, pcm, head.sample_rate, head.channels)
        key = (head.participant_id, head.source)
        renderer = self._renderers.get(key)
        if renderer is None:
            return
        callback, rate, interval_ms, buf = renderer
        buf += pcm
        chunk = rate * interval_ms // 1000 * head.channels * 2
        while len(buf) >= chunk:
            data = AudioData._create(bytes(buf[:chunk]), rate, head.channels)
            del buf[:chunk]
            try:
                callback(head.participant_id, data, head.source)
            except Exception:
                traceback.print_exc(file=sys.stderr)

    def _send_audio(self, pcm: bytes, rate: int, channels: int, track: str) -> None:
        # Called on the writer's thread: hand the frame to the SDK loop.
        conn = self._conn
        if conn is not None and self._state == "joined":
            self._sdk.call(conn.send_audio, pcm, rate, channels, track)

    def _hear_speaker(self, speaker: VirtualSpeakerDevice) -> None:
        """Feed the selected speaker: everyone's microphone, at the speaker's rate."""
        speaker._listen(id(self), True)
        if self._conn is not None:
            self._run(self._renderer_request("*", "microphone", speaker.sample_rate))

    def _stop_hearing(self) -> None:
        _joined.discard(self)
        if _speaker is not None:
            _speaker._listen(id(self), False)

    def _bind_tracks(self, bind: bool) -> None:
        for name, track in self._tracks.items():
            sinks = track.source._sinks
            if bind and (self, name) not in sinks:
                sinks.append((self, name))
            elif not bind and (self, name) in sinks:
                sinks.remove((self, name))

    def _run(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._sdk.submit(coro)

    async def _request(self, op: str, completion: Any, **args: Any) -> None:
        if self._conn is None or self._state != "joined":
            self._complete(completion, NOT_JOINED)
            return
        try:
            await self._conn.request(op, **args)
        except (TimeoutError, RequestError) as exc:
            self._complete(completion, str(exc) or "request timed out")
            return
        self._complete(completion, None)

    def _fail(self, completion: Any, message: str) -> None:
        self._sdk.call(self._complete, completion, message)

    # -- joining and leaving -----------------------------------------------------------------

    def join(self, meeting_url: str, meeting_token: Any = None, client_settings: Any = None, completion: Any = None) -> None:
        self._run(self._join(meeting_url, meeting_token, client_settings or {}, completion))

    async def _join(self, url: str, token: str | None, settings: Mapping[str, Any], completion: Any) -> None:
        if self._state in ("joining", "joined"):
            self._complete(completion, None, "Call client is already in a call")
            return
        self._set_state("joining")
        self._apply_inputs(settings.get("inputs") or {})
        mic_on = bool(self._inputs["microphone"].get("isEnabled", True))
        conn = RoomConnection(self._on_room_event, self._on_room_audio)
        user_name = self._local.get("info", {}).get("userName", "") if self._local else ""
        speaker = _speaker
        try:
            # With a speaker selected, everyone's microphone is rendered from the first frame.
            data = await conn.join(url, token, user_name=user_name, mic=mic_on,
                                   render_all=speaker.sample_rate if speaker is not None else None)
        except JoinError as exc:
            self._emit("on_error", str(exc))
            self._set_state("leaving")
            self._set_state("left")
            self._complete(completion, None, str(exc))
            return
        self._conn = conn
        _joined.add(self)
        if speaker is not None:
            speaker._listen(id(self), True)  # before any await: no audio can come in between
        self._local = data["participants"]["local"]
        self._participants = {k: v for k, v in data["participants"].items() if k != "local"}
        # Renderers set before this point are requested here; any set from now on requests
        # itself (set_audio_renderer checks _conn), so none falls between the two.
        for (pid, source), (_, rate, _, _) in list(self._renderers.items()):
            await self._renderer_request(pid, source, rate)
        self._bind_tracks(True)
        self._set_state("joined")
        self._complete(completion, data, None)

    def leave(self, completion: Any = None) -> None:
        self._run(self._leave(completion))

    async def _leave(self, completion: Any) -> None:
        if self._conn is None or self._state != "joined":
            self._complete(completion, None)
            return
        self._set_state("leaving")
        self._bind_tracks(False)
        self._stop_hearing()
        conn, self._conn = self._conn, None
        await conn.leave()
        self._participants.clear()
        self._set_state("left")
        self._complete(completion, None)

    def release(self) -> None:
        self._released = True
        self._bind_tracks(False)
        self._stop_hearing()
        conn, self._conn = self._conn, None
        if conn is not None:
            self._sdk.call(conn.close)
        self._handler = None

    # -- queries -----------------------------------------------------------------------------

    def participants(self) -> Mapping[str, Any]:
        out: dict[str, Any] = dict(self._participants)
        if self._local:
            out["local"] = self._local
        return out

    def participant_counts(self) -> Mapping[str, Any]:
        present = len(self._participants) + (1 if self._state == "joined" else 0)
        return {"present": present, "hidden": 0}

    def active_speaker(self) -> Mapping[str, Any]:
        return dict(self._active_speaker)

    def inputs(self) -> Mapping[str, Any]:
        return dict(self._inputs)

    def publishing(self) -> Mapping[str, Any]:
        return dict(self._publishing)

    def subscriptions(self) -> Mapping[str, Any]:
        return dict(self._subscriptions)

    def subscription_profiles(self) -> Mapping[str, Any]:
        return dict(self._profiles)

    def get_network_stats(self) -> Mapping[str, Any]:
        return {"threshold": "good", "quality": 100, "stats": {"latest": {}, "worstVideoReceivePacketLoss": 0}}

    # -- audio ---------------------------------------------------------------------------------

    def set_audio_renderer(self, participant_id: str, callback: Any, audio_source: str = "microphone",
                           sample_rate: int = 16000, callback_interval_ms: int = 20,
                           logging_interval_ms: int = 10000) -> None:
        if callback_interval_ms <= 0 or callback_interval_ms % 10:
            raise ValueError("callback_interval_ms must be a positive multiple of 10")
        self._renderers[(participant_id, audio_source)] = (callback, sample_rate, callback_interval_ms, bytearray())
        if self._conn is not None:
            self._run(self._renderer_request(participant_id, audio_source, sample_rate))

    async def _renderer_request(self, pid: str, source: str, rate: int) -> None:
        if self._conn is None:
            return
        try:
            await self._conn.request("set_renderer", participant_id=pid, source=source, sample_rate=rate)
        except (TimeoutError, RequestError) as exc:
            self._emit("on_error", f"set_audio_renderer failed: {exc}")

    def set_video_renderer(self, participant_id: str, callback: Any, video_source: str = "camera",
                           color_format: str = "RGBA", logging_interval_ms: int = 10000) -> None:
        """Accepted and kept; never called, since no video arrives in the sandbox's rooms."""
        self._video_renderers[(participant_id, video_source)] = (callback, color_format)

    # -- custom tracks: daily's rules -- a name in use cannot be added again, updating an
    # unknown name adds it, removing an unknown name succeeds.

    @staticmethod
    def _name_in_use(track_name: str) -> str:
        return f'Inputs(TrackNameAlreadyInUse("{track_name}"))'

    def _custom_input(self, kind: str, track_name: str, track_id: str | None) -> None:
        custom = dict(self._inputs[kind])
        if track_id is None:
            custom.pop(track_name, None)
        else:
            custom[track_name] = {"isEnabled": True, "settings": {"customTrack": {"id": track_id}}}
        self._inputs[kind] = custom

    def _set_audio_track(self, track_name: str, audio_track: CustomAudioTrack | None) -> None:
        self._bind_tracks(False)
        if audio_track is None:
            self._tracks.pop(track_name, None)
        else:
            self._tracks[track_name] = audio_track
        if self._state == "joined":
            self._bind_tracks(True)
        self._custom_input("customAudio", track_name, audio_track.id if audio_track is not None else None)

    def add_custom_audio_track(self, track_name: str, audio_track: Any, ignore_audio_level: Any = None, completion: Any = None) -> None:
        if track_name in self._inputs["customAudio"]:
            self._fail(completion, self._name_in_use(track_name))
            return
        self._set_audio_track(track_name, audio_track)
        self._sdk.call(self._complete, completion, None)

    def update_custom_audio_track(self, track_name: str, audio_track: Any, ignore_audio_level: Any = None, completion: Any = None) -> None:
        self._set_audio_track(track_name, audio_track)
        self._sdk.call(self._complete, completion, None)

    def remove_custom_audio_track(self, track_name: str, completion: Any = None) -> None:
        if track_name in self._inputs["customAudio"]:
            self._set_audio_track(track_name, None)
        self._sdk.call(self._complete, completion, None)

    def add_custom_video_track(self, track_name: str, video_track: Any, completion: Any = None) -> None:
        if track_name in self._video_tracks:
            self._fail(completion, self._name_in_use(track_name))
            return
        self.update_custom_video_track(track_name, video_track, completion)

    def update_custom_video_track(self, track_name: str, video_track: Any, completion: Any = None) -> None:
        # Accepted as Daily accepts it; its frames go nowhere (no video in sandbox rooms).
        self._video_tracks[track_name] = video_track
        self._custom_input("customVideo", track_name, video_track.id)
        self._sdk.call(self._complete, completion, None)

    def remove_custom_video_track(self, track_name: str, completion: Any = None) -> None:
        if self._video_tracks.pop(track_name, None) is not None:
            self._custom_input("customVideo", track_name, None)
        self._sdk.call(self._complete, completion, None)

    # -- settings --------------------------------------------------------------------------------

    def _apply_inputs(self, input_settings: Mapping[str, Any]) -> None:
        for device in ("camera", "microphone", "screenAudio", "screenVideo"):
            value = input_settings.get(device)
            if value is None:
                continue
            if isinstance(value, bool):
                value = {"isEnabled": value}
            merged = dict(self._inputs[device])
            merged.update(value)
            self._inputs[device] = merged
        settings = self._inputs["microphone"].get("settings") or {}
        track_id = (settings.get("customTrack") or {}).get("id")
        track = _tracks.get(track_id) if track_id else None
        if track is None and settings.get("deviceId") in _microphones:
            track = _microphones[settings["deviceId"]]._track
        if track is not None:
            self._bind_tracks(False)
            self._tracks["microphone"] = track
            if self._state == "joined":
                self._bind_tracks(True)

    def update_inputs(self, input_settings: Any, completion: Any = None) -> None:
        self._run(self._update_inputs(dict(input_settings or {}), completion))

    async def _update_inputs(self, input_settings: dict[str, Any], completion: Any) -> None:
        before = self._inputs["microphone"].get("isEnabled")
        self._apply_inputs(input_settings)
        after = self._inputs["microphone"].get("isEnabled")
        if self._conn is not None and self._state == "joined" and before != after:
            try:
                await self._conn.request("update_mic", enabled=bool(after))
            except RequestError as exc:
                self._complete(completion, str(exc))
                return
        self._emit("on_inputs_updated", self.inputs())
        self._complete(completion, None)

    def update_publishing(self, publishing_settings: Any, completion: Any = None) -> None:
        self._publishing.update(publishing_settings or {})
        self._sdk.call(self._settings_done, "on_publishing_updated", self.publishing(), completion)

    def update_subscriptions(self, participant_settings: Any = None, profile_settings: Any = None, completion: Any = None) -> None:
        self._subscriptions.update(participant_settings or {})
        self._profiles.update(profile_settings or {})
        self._sdk.call(self._settings_done, "on_subscriptions_updated", self.subscriptions(), completion)

    def update_subscription_profiles(self, profile_settings: Any, completion: Any = None) -> None:
        for name, profile in (profile_settings or {}).items():
            self._profiles[name] = {**self._profiles.get(name, {}), **profile}
        self._sdk.call(self._settings_done, "on_subscription_profiles_updated", self.subscription_profiles(), completion)

    def _settings_done(self, callback: str, value: Any, completion: Any) -> None:
        self._emit(callback, value)
        self._complete(completion, None)

    def update_permissions(self, permissions: Any, completion: Any = None) -> None:
        if not self._local.get("info", {}).get("isOwner"):
            self._fail(completion, "only meeting owners can update permissions")
            return
        self._sdk.call(self._complete, completion, None)

    def update_remote_participants(self, remote_participants: Any, completion: Any = None) -> None:
        self._run(self._request("update_remote_participants", completion, remote_participants=remote_participants))

    def eject_remote_participants(self, ids: Any, completion: Any = None) -> None:
        self._run(self._request("eject", completion, ids=list(ids)))

    def set_user_name(self, user_name: str) -> None:
        self._local.setdefault("info", {})["userName"] = user_name
        if self._state == "joined":
            self._run(self._request("set_user_name", None, user_name=user_name))

    def set_ice_config(self, ice_config: Any = None, completion: Any = None) -> None:
        self._sdk.call(self._complete, completion, None)

    def set_proxy_url(self, proxy_url: Any = None, completion: Any = None) -> None:
        self._sdk.call(self._complete, completion, None)

    # -- messages ------------------------------------------------------------------------------

    def send_app_message(self, message: Any, participant_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("app_message", completion, message=message, recipient=participant_id))

    def send_prebuilt_chat_message(self, message: str, user_name: Any = None, completion: Any = None) -> None:
        self._run(self._request("send_prebuilt_chat_message", completion, message=message, user_name=user_name))

    # -- recording, transcription, streaming ---------------------------------------------------

    def start_recording(self, streaming_settings: Any = None, stream_id: Any = None, force_new: Any = None, completion: Any = None) -> None:
        self._run(self._request("start_recording", completion, stream_id=stream_id, force_new=force_new))

    def stop_recording(self, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("stop_recording", completion, stream_id=stream_id))

    def update_recording(self, update_settings: Any, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("update_recording", completion, stream_id=stream_id))

    def start_transcription(self, settings: Any = None, completion: Any = None) -> None:
        self._run(self._request("start_transcription", completion, settings=settings))

    def stop_transcription(self, completion: Any = None) -> None:
        self._run(self._request("stop_transcription", completion))

    def update_transcription(self, participants: Any = None, instance_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("update_transcription", completion, participants=participants))

    def start_live_stream_with_endpoints(self, endpoints: Any, streaming_settings: Any = None, stream_id: Any = None, force_new: Any = None, completion: Any = None) -> None:
        self._run(self._request("start_live_stream_with_endpoints", completion))

    def start_live_stream_with_rtmp_urls(self, rtmp_urls: Any, streaming_settings: Any = None, stream_id: Any = None, force_new: Any = None, completion: Any = None) -> None:
        self._run(self._request("start_live_stream_with_rtmp_urls", completion))

    def update_live_stream(self, update_settings: Any, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("update_live_stream", completion))

    def stop_live_stream(self, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("stop_live_stream", completion))

    def add_live_streaming_endpoints(self, endpoints: Any, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("add_live_streaming_endpoints", completion))

    def remove_live_streaming_endpoints(self, endpoints: Any, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("remove_live_streaming_endpoints", completion))

    # -- telephony -----------------------------------------------------------------------------

    def start_dialout(self, settings: Any, completion: Any = None) -> None:
        self._run(self._request("start_dialout", completion, settings=settings))

    def stop_dialout(self, participant_id: str, completion: Any = None) -> None:
        self._run(self._request("stop_dialout", completion, participant_id=participant_id))

    def send_dtmf(self, settings: Any, completion: Any = None) -> None:
        self._run(self._request("send_dtmf", completion, settings=settings))

    def sip_call_transfer(self, settings: Any, completion: Any = None) -> None:
        self._run(self._request("sip_call_transfer", completion, settings=settings))

    def sip_refer(self, settings: Any, completion: Any = None) -> None:
        self._run(self._request("sip_refer", completion, settings=settings))
