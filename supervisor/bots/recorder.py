"""``recorder``: one WAV per participant in ``run_dir/recordings/SESSION/``.

The supervisor's event loop forwards every session's audio, so this bot never touches the
disk on it: ``on_audio`` only puts the frame on a bounded queue, and one writer thread per
recorder opens, writes and closes the files. One thread rather than batches flushed with
``asyncio.to_thread``: frames reach each file in order with no flush timer, and the fast
path costs one ``put_nowait``. If the disk stalls long enough to fill the queue, further
frames are dropped and counted (``frames_dropped``) rather than blocking every session.

Files are opened at a participant's first frame and closed when the session ends, however
it ends (``close`` runs on every path out of the session): ``close`` waits until every frame
already accepted is written and each file's header is patched, so each is a valid WAV. A
write that fails (disk full, directory gone) fails the session with the error.
"""

from __future__ import annotations

import asyncio
import queue
import re
import threading
import wave
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import structlog

from protocol.audio import AudioIn
from supervisor.bots.base import Bot

log = structlog.get_logger("supervisor.bots.recorder")


class _Frame(msgspec.Struct, array_like=True):
    participant_id: str
    sample_rate: int
    channels: int
    pcm: Any  # bytes, or a received frame's memoryview: the writer copies it to the file


_STOP = object()  # the writer's last item: close the files and exit


def open_wav(path: Path, sample_rate: int, channels: int) -> wave.Wave_write:
    """A 16-bit WAV open for writing (blocking; runs on the writer thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = wave.open(str(path), "wb")
    out.setnchannels(channels)
    out.setsampwidth(2)
    out.setframerate(sample_rate)
    return out


class RecorderBot(Bot):
    kind: ClassVar[str] = "recorder"
    # About 60 s of one participant at 20 ms frames: a long disk stall, bounded memory.
    queue_frames: ClassVar[int] = 3000
    # The writer's way to open a file; a test can watch which thread does the I/O.
    open_wav: ClassVar[Any] = staticmethod(open_wav)

    def __init__(self, ctx: Any, config: dict[str, Any]) -> None:
        super().__init__(ctx, config)
        self.directory = Path(ctx.run_dir) / "recordings" / ctx.session_id
        self.paths: dict[str, Path] = {}  # filled by the writer as each file opens
        self.frames_accepted = 0
        self.frames_dropped = 0
        self.error: str | None = None
        self._loop = asyncio.get_running_loop()
        self._queue: queue.Queue[Any] = queue.Queue(self.queue_frames)
        self._closed = False
        self._writer = threading.Thread(target=self._write, name=f"recorder-{ctx.session_id}", daemon=True)
        self._writer.start()

    def on_audio(self, header: AudioIn, pcm: Any) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(_Frame(header.participant_id, header.sample_rate, header.channels,
                                          getattr(pcm, "buffer", pcm)))
        except queue.Full:
            self.frames_dropped += 1
            return
        self.frames_accepted += 1

    def _write(self) -> None:
        """The writer thread: every queued frame into its participant's file, in order."""
        files: dict[str, wave.Wave_write] = {}
        try:
            while (item := self._queue.get()) is not _STOP:
                if self.error is not None:
                    continue  # already failed: keep draining so on_audio never sees a full queue
                try:
                    out = files.get(item.participant_id)
                    if out is None:
                        safe = re.sub(r"[^A-Za-z0-9_-]", "_", item.participant_id)
                        path = self.directory / f"{safe}.wav"
                        out = files[item.participant_id] = self.open_wav(path, item.sample_rate, item.channels)
                        self.paths[item.participant_id] = path
                    out.writeframesraw(item.pcm)
                except Exception as exc:  # the writer must outlive any error, or close() waits forever
                    self._failed(f"recording failed: {exc}")
        finally:
            for out in files.values():
                try:
                    out.close()  # patches the header with the final length
                except Exception as exc:
                    self._failed(f"recording failed: {exc}")

    def _failed(self, detail: str) -> None:
        if self.error is None:
            self.error = detail
            self._loop.call_soon_threadsafe(self._report_failure, detail)

    def _report_failure(self, detail: str) -> None:
        log.error("recorder failed", session_id=self.ctx.session_id, error=detail)
        if not self._closed:
            self.ctx.fail(detail)

    async def close(self) -> None:
        """Write every accepted frame, close every file, and stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        # A blocking put: the queue may be full of frames still to write, none to drop.
        await asyncio.to_thread(self._queue.put, _STOP)
        await asyncio.to_thread(self._writer.join)
        if self.frames_dropped:
            log.warning("recorder dropped frames: the disk could not keep up", session_id=self.ctx.session_id,
                        dropped=self.frames_dropped, accepted=self.frames_accepted)
