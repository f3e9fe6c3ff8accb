"""``playback``: plays a WAV file or a tone into the call, paced in real time, then leaves
or stays.

Config: ``wav`` (a mono 16-bit file, resampled to the session rate) or ``tone_hz`` with
``seconds``; ``then`` = ``"leave"`` (default) or ``"stay"``; ``start`` = ``"first_participant"``
(default: greet the first human, as Pipecat bots do) or ``"joined"``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar

from callfleet.audio import read_wav, resample, tone
from supervisor.bots.base import Bot

LEAD_FRAMES = 2  # sent ahead of real time so the worker's pacing buffer never runs dry


class PlaybackBot(Bot):
    kind: ClassVar[str] = "playback"

    def __init__(self, ctx: Any, config: dict[str, Any]) -> None:
        super().__init__(ctx, config)
        self.then = config.get("then", "leave")
        self.start_on = config.get("start", "first_participant")
        self._task: asyncio.Task[None] | None = None
        self.frames_played = 0

    def _audio(self) -> bytes:
        rate = self.ctx.sample_rate
        wav = self.config.get("wav")
        if wav:
            pcm, wav_rate, channels = read_wav(Path(wav))
            if channels != 1:
                raise ValueError(f"{wav}: playback needs a mono WAV")
            return resample(pcm, wav_rate, rate)
        return tone(float(self.config.get("tone_hz", 440)), float(self.config.get("seconds", 3)), rate)

    async def on_joined(self, join_data: Any) -> None:
        if self.start_on == "joined":
            self._start()

    async def on_first_participant_joined(self, participant: dict[str, Any]) -> None:
        if self.start_on != "joined":
            self._start()

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._play())

    async def _play(self) -> None:
        pcm = self._audio()
        rate, channels, frame_ms = self.ctx.sample_rate, self.ctx.channels, 20
        size = rate * frame_ms // 1000 * 2 * channels
        started = time.monotonic()
        for i, offset in enumerate(range(0, len(pcm), size)):
            due = started + (i - LEAD_FRAMES) * frame_ms / 1000
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = pcm[offset : offset + size]
            if self.ctx.send_audio(chunk.ljust(size, b"\0"), rate, channels):
                self.frames_played += 1
        # Let the last frames play out of the worker's buffer before leaving.
        await asyncio.sleep(max(0.0, started + len(pcm) / (rate * 2 * channels) - time.monotonic()) + 0.2)
        if self.then == "leave":
            self.ctx.end("playback finished")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
