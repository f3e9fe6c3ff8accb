"""``echo``: every participant's audio straight back into the call, frame for frame.

No buffering, no copy: the received ZeroMQ frame is forwarded as the bot's output."""

from __future__ import annotations

from typing import Any, ClassVar

from protocol.audio import AudioIn
from supervisor.bots.base import Bot


class EchoBot(Bot):
    kind: ClassVar[str] = "echo"

    def on_audio(self, header: AudioIn, pcm: Any) -> None:
        self.ctx.send_audio(pcm, header.sample_rate, header.channels)
