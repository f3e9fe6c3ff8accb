"""daily-python's API, offline: every public name of the ``daily`` module (``Daily``,
``CallClient``, ``EventHandler``, ``CustomAudioSource``, ``CustomAudioTrack``, ``AudioData``,
``LogLevel``, the video classes and the virtual devices) with the same signatures and
threading, so that ``import daily`` code -- Pipecat's DailyTransport -- runs unmodified.
The worker loads it by this name as its ``sandbox`` backend; its parts live in ``sandbox.sdk``.

Threading as in daily-python: ``Daily.init()`` starts an SDK thread (an asyncio loop of its
own); every completion, event and audio renderer callback runs on it, never on the
caller's thread. Methods return at once and report through their completion.
``CustomAudioSource.write_frames`` blocks for as long as the audio lasts, like the real one.
Video is answered the way Daily answers a room without video (``sandbox.sdk.video``): tracks
and cameras take frames and drop them, renderers never receive any, cameras read "off".
The virtual speaker hears the mix of the call (``sandbox.sdk.speaker``); a virtual microphone
selected by ``deviceId`` in the inputs sends like a custom track. Live streaming answers
with an error in the completion, as Daily does for a room without it.
"""

from __future__ import annotations

from sandbox.sdk.call_media import AudioData
from sandbox.sdk.call_membership import CallMembership
from sandbox.sdk.call_operations import CallOperations
from sandbox.sdk.call_settings import CallSettings
from sandbox.sdk.custom_audio import CustomAudioSource, CustomAudioTrack, VirtualMicrophoneDevice
from sandbox.sdk.events import EventHandler
from sandbox.sdk.process import Daily, LogLevel
from sandbox.sdk.speaker import VirtualSpeakerDevice
from sandbox.sdk.vad import NativeVad
from sandbox.sdk.video import CustomVideoSource, CustomVideoTrack, VideoFrame, VirtualCameraDevice

__all__ = [
    "AudioData", "CallClient", "CustomAudioSource", "CustomAudioTrack", "CustomVideoSource",
    "CustomVideoTrack", "Daily", "EventHandler", "LogLevel", "NativeVad", "VideoFrame",
    "VirtualCameraDevice", "VirtualMicrophoneDevice", "VirtualSpeakerDevice",
]

__version__ = "sandbox"


class CallClient(CallMembership, CallSettings, CallOperations):
    """A participant of a sandbox room, with ``daily.CallClient``'s API: joining and the
    room's events (``CallMembership``), audio and tracks (``CallMedia``), settings
    (``CallSettings``) and room operations (``CallOperations``), on one state (``CallCore``)."""
