"""The session as its bot sees it (``BotContext``): audio and commands to the session's
current worker, and the way to end or fail the session. Owned by the session's actor,
which points it at a new worker after a failover."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol.audio import AudioOut
from protocol.framing import encode
from protocol.messages import Command, Err, ErrCode, Ok
from supervisor.pool import Pool, WorkerHandle
from supervisor.sessions.state import EndReason


class BotLink:
    def __init__(self, session_id: str, sample_rate: int, channels: int, run_dir: Path, pool: Pool,
                 stop: Callable[[EndReason, str | None], None], on_drop: Callable[[], None]) -> None:
        self.session_id = session_id
        self.run_dir = run_dir
        self.sample_rate = sample_rate
        self.channels = channels
        self.pool = pool
        self.worker: WorkerHandle | None = None
        self._stop = stop
        self._on_drop = on_drop
        self._seq = 0
        self.frames_out_sent = 0
        self.frames_out_dropped = 0

    def send_audio(self, pcm: Any, sample_rate: int, channels: int) -> bool:
        """Queue PCM for the call without blocking; False (and counted) when dropped."""
        worker = self.worker
        self._seq += 1
        if worker is not None and self.pool.send_audio(worker, encode(AudioOut(self._seq, sample_rate, channels)), pcm):
            self.frames_out_sent += 1
            return True
        self.frames_out_dropped += 1
        self._on_drop()
        return False

    async def command(self, cmd: Command, timeout_s: float = 10.0) -> Ok | Err:
        worker = self.worker
        if worker is None:
            return Err(cmd.id, ErrCode.EXITING, "no worker")
        return await self.pool.request(worker, cmd, timeout_s)

    def end(self, reason: str) -> None:
        self._stop(EndReason.BOT_ENDED, reason)

    def fail(self, detail: str) -> None:
        self._stop(EndReason.ERROR, detail)

    def next_id(self) -> int:
        return self.pool.next_request_id()
