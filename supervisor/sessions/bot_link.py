"""The session as its bot sees it (``BotContext``): audio and commands to the session's
current worker, and the way to end or fail the session. Owned by the session's actor,
which points it at a new worker after a failover; the frames every worker of the session
played out or dropped stay counted."""

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
    """What the session's bot acts through (``BotContext``)."""

    def __init__(self, session_id: str, sample_rate: int, channels: int, run_dir: Path, pool: Pool,
                 stop: Callable[[EndReason, str | None], None], on_drop: Callable[[], None]) -> None:
        self.session_id = session_id
        self.run_dir = run_dir
        self.sample_rate = sample_rate
        self.channels = channels
        self.pool = pool
        self._worker: WorkerHandle | None = None
        self._former_frames = (0, 0)  # frames out and dropped by workers the session had before
        self._stop = stop
        self._on_drop = on_drop
        self._seq = 0
        self.frames_out_sent = 0
        self.frames_out_dropped = 0

    @property
    def worker(self) -> WorkerHandle | None:
        """The session's worker now (None between a loss and its replacement, and at the end)."""
        return self._worker

    @worker.setter
    def worker(self, handle: WorkerHandle | None) -> None:
        old = self._worker
        if old is not None and handle is not old:
            out, dropped = self._former_frames
            self._former_frames = (out + old.frames_out, dropped + old.frames_dropped)
        self._worker = handle

    def worker_frames(self) -> tuple[int, int]:
        """The bot's voice as its workers played it out and dropped it, over every worker."""
        out, dropped = self._former_frames
        if self._worker is not None:
            out, dropped = out + self._worker.frames_out, dropped + self._worker.frames_dropped
        return out, dropped

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
