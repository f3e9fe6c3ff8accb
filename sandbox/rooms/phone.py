"""Synthetic phone participants: the far end of a dial-in or dial-out call.

A phone speaks a tone in paced 20 ms frames, hears whatever is routed to it (counted and
kept for inspection), and answers DTMF by pressing the same keys back, which gives tests
DTMF in both directions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from callfleet.audio import rms, tone

RATE = 16000
FRAME_MS = 20


class Phone:
    def __init__(
        self,
        participant_id: str,
        number: str,
        *,
        speak: Callable[[bytes, int], None],
        tone_hz: float = 440.0,
    ) -> None:
        self.participant_id = participant_id
        self.number = number
        self._speak = speak
        self.tone_hz = tone_hz
        self.frames_sent = 0
        self.frames_heard = 0
        self.loud_frames_heard = 0
        self.dtmf_heard = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._talk())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def hear(self, pcm: bytes) -> None:
        self.frames_heard += 1
        if rms(pcm) > 300:
            self.loud_frames_heard += 1

    async def _talk(self) -> None:
        n = RATE * FRAME_MS // 1000
        started = time.monotonic()
        seq = 0
        while True:
            self._speak(tone(self.tone_hz, FRAME_MS / 1000, RATE, phase0=seq * n), seq)
            self.frames_sent += 1
            seq += 1
            delay = started + seq * FRAME_MS / 1000 - time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    def inspect(self) -> dict[str, object]:
        return {
            "number": self.number,
            "frames_sent": self.frames_sent,
            "frames_heard": self.frames_heard,
            "loud_frames_heard": self.loud_frames_heard,
            "dtmf_heard": self.dtmf_heard,
        }
