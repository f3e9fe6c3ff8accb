"""daily-python's video classes, for a sandbox whose rooms carry no video.

Daily answers a room without video this way: custom video tracks and virtual cameras take
frames (checked as daily checks them) and nothing is sent; a video renderer is accepted
and never called; every participant's camera reads ``"off"``. ``sandbox.client`` re-exports
these names so that ``import daily`` code (Pipecat's DailyTransport) finds them.
"""

from __future__ import annotations

import uuid

from sandbox.sdk.native import not_constructible

# daily-python 0.36 accepts exactly these (ValueError names them for anything else).
COLOR_FORMATS = ("RGBA", "BGRA", "ARGB", "ABGR", "RGB", "I420")


def check_color_format(color_format: str, *, list_valid: bool = True) -> str:
    """Return ``color_format`` if daily knows it; raises ValueError (daily's text) if not."""
    if color_format not in COLOR_FORMATS:
        valid = f". Valid formats: {', '.join(COLOR_FORMATS)}" if list_valid else ""
        raise ValueError(f"invalid color format '{color_format}'{valid}")
    return color_format


def frame_size(width: int, height: int, color_format: str) -> int:
    """Bytes in one frame of ``width`` x ``height`` pixels in ``color_format``."""
    if color_format == "I420":
        return width * height + 2 * (((width + 1) // 2) * ((height + 1) // 2))
    return width * height * (3 if color_format == "RGB" else 4)


class VideoFrame:
    """A received video frame. The sandbox never delivers one (no video in its rooms);
    like daily's, it cannot be created from Python."""

    __slots__ = ("_buffer", "_width", "_height", "_timestamp_us", "_color_format")
    _buffer: bytes
    _width: int
    _height: int
    _timestamp_us: int
    _color_format: str

    __init__ = not_constructible

    @property
    def buffer(self) -> bytes:
        return self._buffer

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def timestamp_us(self) -> int:
        return self._timestamp_us

    @property
    def color_format(self) -> str:
        return self._color_format


class CustomVideoSource:
    """Video a client sends. Frames are checked (size, as daily does) and dropped.

    Raises ValueError for an unknown color format."""

    def __init__(self, width: int, height: int, color_format: str = "RGBA") -> None:
        self._width, self._height = int(width), int(height)
        self._color_format = check_color_format(color_format)
        self._frame_size = frame_size(self._width, self._height, self._color_format)
        self.frames_written = 0  # sandbox-only: what a test can see of accepted frames

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def color_format(self) -> str:
        return self._color_format

    def write_frame(self, frame: bytes) -> None:
        """Accept one frame; raises ValueError when its size does not match the source's."""
        size = len(frame)
        if size != self._frame_size:
            raise ValueError(f"frame size mismatch: expected {self._frame_size} bytes for "
                             f"{self._width}x{self._height} {self._color_format}, got {size}")
        self.frames_written += 1


class CustomVideoTrack:
    def __init__(self, video_source: CustomVideoSource) -> None:
        self._id = str(uuid.uuid4())
        self.source = video_source

    @property
    def id(self) -> str:
        return self._id


class VirtualCameraDevice:
    """A virtual camera (``Daily.create_camera_device``). Like daily's, ``write_frame``
    takes any bytes; the sandbox drops them."""

    __slots__ = ("_name", "_width", "_height", "_color_format", "frames_written")
    _name: str
    _width: int
    _height: int
    _color_format: str
    frames_written: int

    __init__ = not_constructible

    @classmethod
    def _create(cls, device_name: str, width: int, height: int, color_format: str) -> VirtualCameraDevice:
        check_color_format(color_format, list_valid=False)
        camera = object.__new__(cls)
        camera._name, camera._width, camera._height = device_name, int(width), int(height)
        camera._color_format = color_format
        camera.frames_written = 0
        return camera

    @property
    def name(self) -> str:
        return self._name

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def color_format(self) -> str:
        return self._color_format

    def write_frame(self, frame: bytes) -> None:
        self.frames_written += 1
