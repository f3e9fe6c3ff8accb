"""``echo``: every participant's audio straight back into the call.

One participant speaking: the received frame is forwarded as is -- no buffering, no copy.
Several at once: the bot has one voice (one microphone track, 50 frames a second), so
their frames for the same 20 ms slot are mixed (summed, clipped) into one frame; a slot
is sent as soon as every recent speaker has contributed, or when a speaker's next frame
arrives first, or after one frame time at the latest.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import numpy as np

from protocol.audio import AudioIn
from supervisor.bots.base import Bot

RECENT_S = 0.1  # a participant counts as speaking if a frame came this recently


class EchoBot(Bot):
    kind: ClassVar[str] = "echo"
    # Live audio: three frames of slack absorb jitter; a backlog beyond that is stale.
    realtime_slack_ms: ClassVar[int] = 80

    def __init__(self, ctx: Any, config: dict[str, Any]) -> None:
        super().__init__(ctx, config)
        self.last_seen: dict[str, float] = {}
        self.slot: dict[str, Any] = {}  # participant -> frame waiting to be mixed
        self.slot_format: tuple[int, int] = (0, 0)
        self._timer: asyncio.TimerHandle | None = None
        self.mixed_frames = 0

    def on_audio(self, header: AudioIn, pcm: Any) -> None:
        now = time.monotonic()
        pid = header.participant_id
        self.last_seen[pid] = now
        speakers = [p for p, seen in self.last_seen.items() if now - seen < RECENT_S]
        if len(speakers) <= 1 and not self.slot:
            self.ctx.send_audio(pcm, header.sample_rate, header.channels)
            return
        if pid in self.slot:
            self._flush()  # this speaker's next frame: the slot is complete
        self.slot[pid] = pcm
        self.slot_format = (header.sample_rate, header.channels)
        if len(self.slot) >= len(speakers):
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(0.02, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        frames = list(self.slot.values())
        self.slot.clear()
        if not frames:
            return
        rate, channels = self.slot_format
        if len(frames) == 1:
            self.ctx.send_audio(frames[0], rate, channels)
            return
        arrays = [np.frombuffer(getattr(f, "buffer", f), dtype="<i2") for f in frames]
        length = max(len(a) for a in arrays)
        mix = np.zeros(length, dtype=np.int32)
        for a in arrays:
            mix[: len(a)] += a
        self.mixed_frames += 1
        self.ctx.send_audio(np.clip(mix, -32768, 32767).astype("<i2").tobytes(), rate, channels)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
