"""The call's audio in: which participants' tracks the call client renders, and each frame
they deliver, handed from its SDK thread to the worker's loop with a small header."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from protocol import encode
from protocol.audio import AudioIn
from protocol.messages import AudioSettings, SetAudioRenderer


class AudioRenderers:
    """The call client's audio renderers, each (participant, source) active or stopped.

    ``emit_audio(header_bytes, pcm)`` is called on the loop for each frame of an active one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, emit_audio: Callable[[bytes, bytes], None]) -> None:
        self._loop = loop
        self._emit_audio = emit_audio
        self._active: dict[tuple[str, str], bool] = {}  # (participant, source) -> active
        self._seq: dict[tuple[str, str], itertools.count[int]] = {}
        self.frames_in = 0

    def start(self, client: Any, cmd: SetAudioRenderer, audio: AudioSettings) -> None:
        """Render a participant's audio source (at the call's rate and frame unless ``cmd``
        names its own)."""
        key = (cmd.participant_id, cmd.audio_source)
        self._seq.setdefault(key, itertools.count())
        self._active[key] = True
        client.set_audio_renderer(
            cmd.participant_id,
            self._on_audio,
            audio_source=cmd.audio_source,
            sample_rate=cmd.sample_rate or audio.sample_rate,
            callback_interval_ms=cmd.callback_interval_ms or audio.frame_ms,
        )

    def stop(self, participant_id: str, audio_source: str) -> None:
        """Drop what one of a participant's sources delivers from now on."""
        self._active[(participant_id, audio_source)] = False

    def participant_left(self, participant_id: str | None) -> None:
        """Drop what every source of a participant who left delivers."""
        for key in [k for k in self._active if k[0] == participant_id]:
            self._active[key] = False

    def stop_all(self) -> None:
        """Drop whatever arrives while the call is being left."""
        for key in self._active:
            self._active[key] = False

    def clear(self) -> None:
        """The call is over: forget its renderers."""
        self._active.clear()

    def _on_audio(self, participant_id: str, audio_data: Any, audio_source: str) -> None:
        # SDK thread. Encode the small header here, send on the loop.
        key = (participant_id, audio_source)
        if not self._active.get(key):
            return
        header = encode(
            AudioIn(
                participant_id,
                next(self._seq[key]),
                audio_data.sample_rate,
                audio_data.num_channels,
                audio_source,
            )
        )
        self._loop.call_soon_threadsafe(self._deliver_audio, header, audio_data.audio_frames)

    def _deliver_audio(self, header: bytes, pcm: bytes) -> None:
        self.frames_in += 1
        self._emit_audio(header, pcm)
