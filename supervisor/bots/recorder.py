"""``recorder``: one WAV per participant in ``run_dir/recordings/SESSION/``.

Files are opened at a participant's first frame and closed when the session ends, however
it ends (``close`` runs on every path out of the session), so each is a valid WAV.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path
from typing import Any, ClassVar

from protocol.audio import AudioIn
from supervisor.bots.base import Bot


class RecorderBot(Bot):
    kind: ClassVar[str] = "recorder"

    def __init__(self, ctx: Any, config: dict[str, Any]) -> None:
        super().__init__(ctx, config)
        self.directory = Path(ctx.run_dir) / "recordings" / ctx.session_id
        self._files: dict[str, wave.Wave_write] = {}
        self.paths: dict[str, Path] = {}

    def on_audio(self, header: AudioIn, pcm: Any) -> None:
        out = self._files.get(header.participant_id)
        if out is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            safe = re.sub(r"[^A-Za-z0-9_-]", "_", header.participant_id)
            path = self.directory / f"{safe}.wav"
            out = wave.open(str(path), "wb")
            out.setnchannels(header.channels)
            out.setsampwidth(2)
            out.setframerate(header.sample_rate)
            self._files[header.participant_id] = out
            self.paths[header.participant_id] = path
        out.writeframesraw(getattr(pcm, "buffer", pcm))

    async def close(self) -> None:
        for out in self._files.values():
            out.close()  # patches the header with the final length
        self._files.clear()
