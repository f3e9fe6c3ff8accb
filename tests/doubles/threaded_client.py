"""A stand-in for daily-python that behaves like it where it matters to the worker.

Completions and events arrive on a thread of the double's own, never the caller's; audio
renderers are called from another thread every ``callback_interval_ms``; ``write_frames``
blocks for the audio's duration. What misbehaves is chosen by the environment variable
``CALLFLEET_DOUBLE`` (comma-separated), e.g. ``join=never`` or ``send_app_message=never``:
that method's completion is then never called, as happens with the real SDK.
``play_after=PATH`` holds the first ``write_frames`` until a file exists at ``PATH``, so a
test can tell "answered while the audio was still being played" from a race.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

_RULES = dict(
    item.split("=", 1) for item in os.environ.get("CALLFLEET_DOUBLE", "").split(",") if "=" in item
)

REMOTE_ID = "remote-1"
LATE_ID = "remote-late"


class _SdkThread:
    """One thread that runs every callback, in order, like the SDK's event thread."""

    def __init__(self) -> None:
        self.q: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="double-sdk", daemon=True)
        self.thread.start()

    def post(self, fn: Callable[[], None], delay: float = 0.0) -> None:
        if delay:
            threading.Timer(delay, self.q.put, args=(fn,)).start()
        else:
            self.q.put(fn)

    def _run(self) -> None:
        while (fn := self.q.get()) is not None:
            try:
                fn()
            except Exception:  # the real SDK swallows handler exceptions too
                pass


_sdk: _SdkThread | None = None
_init_count = 0


class Daily:
    @staticmethod
    def init(worker_threads: int = 2, log_level: Any = None) -> None:
        global _sdk, _init_count
        _init_count += 1
        if _init_count > 1:
            os.abort()  # what daily-python does on a second init
        _sdk = _SdkThread()

    @staticmethod
    def deinit() -> None:
        pass


class EventHandler:
    def __init__(self, *args: Any) -> None:
        pass


class AudioData:
    def __init__(self, frames: bytes, sample_rate: int, channels: int) -> None:
        self.audio_frames = frames
        self.sample_rate = sample_rate
        self.num_channels = channels
        self.bits_per_sample = 16
        self.num_audio_frames = len(frames) // (2 * channels)


class CustomAudioSource:
    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.written: list[bytes] = []

    def write_frames(self, frames: bytes, completion: Any = None) -> int:
        gate = _RULES.get("play_after")
        while gate is not None and not os.path.exists(gate):
            time.sleep(0.005)
        time.sleep(len(frames) / (2 * self.channels * self.sample_rate))
        self.written.append(frames)
        return len(frames) // (2 * self.channels)


class CustomAudioTrack:
    def __init__(self, audio_source: CustomAudioSource) -> None:
        self.id = str(uuid.uuid4())


def _participant(pid: str, local: bool) -> dict[str, Any]:
    return {"id": pid, "info": {"isLocal": local, "userName": pid}, "media": {}}


class CallClient:
    def __init__(self, event_handler: Any = None) -> None:
        assert _sdk is not None, "Daily.init() first"
        self._h = event_handler
        self._joined = False
        self._renderers: dict[str, tuple[Callable[..., None], int, int]] = {}
        self._audio_thread: threading.Thread | None = None

    def _complete(self, name: str, completion: Any, *args: Any) -> None:
        if _RULES.get(name) == "never" or completion is None:
            return
        assert _sdk is not None
        _sdk.post(lambda: completion(*args), delay=0.01)

    def _event(self, callback: str, *args: Any) -> None:
        assert _sdk is not None
        _sdk.post(lambda: getattr(self._h, callback)(*args))

    def join(self, meeting_url: str, meeting_token: Any = None, client_settings: Any = None,
             completion: Any = None) -> None:
        self._event("on_call_state_updated", "joining")
        if _RULES.get("join") == "error":
            self._complete("join", completion, None, "Connection(RoomLookup)")
            return
        self._joined = True
        data = {"meetingSession": {"id": "m1"},
                "participants": {"local": _participant("local-1", True),
                                 REMOTE_ID: _participant(REMOTE_ID, False)}}
        self._event("on_call_state_updated", "joined")
        if _RULES.get("late_joiner") == "yes":
            # Someone joins after the join data was made but before the completion runs.
            self._event("on_participant_joined", _participant(LATE_ID, False))
        self._complete("join", completion, data, None)
        self._audio_thread = threading.Thread(target=self._speak, name="double-audio", daemon=True)
        self._audio_thread.start()

    def _speak(self) -> None:
        seq = 0
        while self._joined:
            for pid, (cb, rate, interval) in list(self._renderers.items()):
                n = rate * interval // 1000
                cb(pid, AudioData(seq.to_bytes(2, "little") * n, rate, 1), "microphone")
            seq += 1
            time.sleep(0.02)

    def leave(self, completion: Any = None) -> None:
        self._joined = False
        self._event("on_call_state_updated", "left")
        self._complete("leave", completion, None)

    def release(self) -> None:
        self._renderers.clear()

    def set_audio_renderer(self, participant_id: str, callback: Any, audio_source: str = "microphone",
                           sample_rate: int = 16000, callback_interval_ms: int = 20,
                           logging_interval_ms: int = 10000) -> None:
        self._renderers[participant_id] = (callback, sample_rate, callback_interval_ms)

    def participants(self) -> dict[str, Any]:
        return {"local": _participant("local-1", True)}

    def participant_counts(self) -> dict[str, Any]:
        return {"present": 2, "hidden": 0}

    def set_user_name(self, user_name: str) -> None:
        pass

    def send_app_message(self, message: Any, participant_id: Any = None, completion: Any = None) -> None:
        self._complete("send_app_message", completion, None)

    def update_subscription_profiles(self, profile_settings: Any, completion: Any = None) -> None:
        self._complete("update_subscription_profiles", completion, None)
