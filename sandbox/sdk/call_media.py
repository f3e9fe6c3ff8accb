"""A call client's audio and video: what it renders of others (renderers, the selected
speaker) and what it sends (custom tracks, the microphone its inputs choose)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.sdk import custom_audio, loop
from sandbox.sdk.call_core import CallCore, CallState
from sandbox.sdk.custom_audio import CustomAudioTrack
from sandbox.sdk.native import not_constructible
from sandbox.sdk.process import DEVICES
from sandbox.sdk.speaker import VirtualSpeakerDevice
from sandbox.wire import AudioHead


class AudioData:
    """Audio handed to a renderer callback (read-only, like daily's)."""

    __slots__ = ("_frames", "_rate", "_channels")
    _frames: bytes
    _rate: int
    _channels: int

    __init__ = not_constructible

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


class CallMedia(CallCore):
    """Renderers, the speaker, custom tracks and inputs of a ``CallClient``."""

    # -- what the client hears -------------------------------------------------------------

    def set_audio_renderer(self, participant_id: str, callback: Any, audio_source: str = "microphone",
                           sample_rate: int = 16000, callback_interval_ms: int = 20,
                           logging_interval_ms: int = 10000) -> None:
        """Call ``callback(participant_id, AudioData, audio_source)`` every
        ``callback_interval_ms`` with what the participant sends, at ``sample_rate``.
        Raises ValueError for an interval that is not a positive multiple of 10."""
        if callback_interval_ms <= 0 or callback_interval_ms % 10:
            raise ValueError("callback_interval_ms must be a positive multiple of 10")
        self._renderers[(participant_id, audio_source)] = (callback, sample_rate, callback_interval_ms, bytearray())
        if self._conn is not None:
            self._run(self._renderer_request(participant_id, audio_source, sample_rate))

    def set_video_renderer(self, participant_id: str, callback: Any, video_source: str = "camera",
                           color_format: str = "RGBA", logging_interval_ms: int = 10000) -> None:
        """Accepted and kept; never called, since no video arrives in the sandbox's rooms."""
        self._video_renderers[(participant_id, video_source)] = (callback, color_format)

    def _on_room_audio(self, head: AudioHead, pcm: bytes) -> None:
        speaker = DEVICES.speaker
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
            loop.guarded(callback, head.participant_id, data, head.source)

    def _hear_speaker(self, speaker: VirtualSpeakerDevice) -> None:
        """Feed the selected speaker: everyone's microphone, at the speaker's rate."""
        speaker._listen(id(self), True)
        if self._conn is not None:
            self._run(self._renderer_request("*", "microphone", speaker.sample_rate))

    # -- what the client sends: daily's rules for custom tracks -- a name in use cannot be
    # added again, updating an unknown name adds it, removing an unknown name succeeds.

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
        if self._state is CallState.JOINED:
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

    def _apply_inputs(self, input_settings: Mapping[str, Any]) -> None:
        """Merge ``input_settings`` into the inputs; the microphone they name (a custom
        track by id, or a virtual microphone by ``deviceId``) becomes what is sent."""
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
        track = custom_audio.tracks.get(track_id) if track_id else None
        if track is None and settings.get("deviceId") in DEVICES.microphones:
            track = DEVICES.microphones[settings["deviceId"]]._track
        if track is not None:
            self._bind_tracks(False)
            self._tracks["microphone"] = track
            if self._state is CallState.JOINED:
                self._bind_tracks(True)
