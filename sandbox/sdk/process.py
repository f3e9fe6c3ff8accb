"""``Daily``, the SDK's static entry points, and what daily-python keeps once per process:
its log level, the SDK thread, the virtual devices by name and the one selected speaker."""

from __future__ import annotations

import enum
import weakref
from typing import Any, Protocol

from sandbox.sdk import loop
from sandbox.sdk.custom_audio import VirtualMicrophoneDevice
from sandbox.sdk.native import not_constructible
from sandbox.sdk.speaker import VirtualSpeakerDevice
from sandbox.sdk.vad import NativeVad
from sandbox.sdk.video import VirtualCameraDevice


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


class Listener(Protocol):
    """A client in a call: it feeds the selected speaker with what it hears."""

    def _hear_speaker(self, speaker: VirtualSpeakerDevice) -> None: ...


class Devices:
    """The process's virtual devices, as daily-python keeps them: by name, the one selected
    speaker, and the clients in a call that feed it."""

    def __init__(self) -> None:
        self.speakers: dict[str, VirtualSpeakerDevice] = {}
        self.microphones: dict[str, VirtualMicrophoneDevice] = {}
        self.speaker: VirtualSpeakerDevice | None = None  # the selected one
        self.joined: weakref.WeakSet[Listener] = weakref.WeakSet()

    def clear(self) -> None:
        """Forget every device and the selection (``Daily.deinit``)."""
        self.speakers.clear()
        self.microphones.clear()
        self.speaker = None


DEVICES = Devices()


class Daily:
    """The SDK: ``init`` once per process, then clients and virtual devices."""

    __init__ = not_constructible

    @staticmethod
    def init(worker_threads: int = 2, log_level: Any = ...) -> None:
        """Start the SDK thread; raises RuntimeError on a second call (daily aborts)."""
        if loop.current() is not None:
            raise RuntimeError("Daily.init() called twice (daily-python aborts the process)")
        if log_level is not ...:
            Daily.set_log_level(log_level)
        loop.start()

    @staticmethod
    def deinit() -> None:
        """Stop the SDK thread and forget every virtual device."""
        loop.stop()
        DEVICES.clear()

    @staticmethod
    def set_log_level(log_level: LogLevel) -> None:
        """Raises TypeError, as daily does, for anything but a LogLevel."""
        if not isinstance(log_level, LogLevel):
            raise TypeError(f"'{type(log_level).__name__}' object is not an instance of 'LogLevel'")

    @staticmethod
    def create_native_vad(reset_period_ms: int = 1000, sample_rate: int = 16000, channels: int = 1) -> NativeVad:
        """A voice activity detector (energy-based, see ``NativeVad``)."""
        return NativeVad._create(reset_period_ms, sample_rate, channels)

    @staticmethod
    def create_camera_device(device_name: str, width: int, height: int, color_format: str = "RGBA") -> VirtualCameraDevice:
        """A virtual camera; its frames are dropped. Raises ValueError for an unknown color
        format, RuntimeError before ``init``."""
        loop.require()
        return VirtualCameraDevice._create(device_name, width, height, color_format)

    @staticmethod
    def create_speaker_device(device_name: str, sample_rate: int = 16000, channels: int = 1,
                              non_blocking: bool = False) -> VirtualSpeakerDevice:
        """A virtual speaker, heard once selected. Raises RuntimeError before ``init``."""
        sdk = loop.require()
        speaker = VirtualSpeakerDevice._create(device_name, sample_rate, channels, non_blocking, sdk.call_later)
        DEVICES.speakers[device_name] = speaker
        return speaker

    @staticmethod
    def create_microphone_device(device_name: str, sample_rate: int = 16000, channels: int = 1,
                                 non_blocking: bool = False) -> VirtualMicrophoneDevice:
        """A virtual microphone, sent by a client whose inputs name it as ``deviceId``.
        Raises RuntimeError before ``init``."""
        loop.require()
        microphone = VirtualMicrophoneDevice._create(device_name, sample_rate, channels, non_blocking)
        DEVICES.microphones[device_name] = microphone
        return microphone

    @staticmethod
    def select_speaker_device(device_name: str) -> None:
        """Make the named speaker the process's; raises RuntimeError (daily's text) for an
        unknown name."""
        speaker = DEVICES.speakers.get(device_name)
        if speaker is None:
            raise RuntimeError("unable to select virtual speaker device")
        old, DEVICES.speaker = DEVICES.speaker, speaker
        for client in list(DEVICES.joined):
            if old is not None and old is not speaker:
                old._listen(id(client), False)
            client._hear_speaker(speaker)
