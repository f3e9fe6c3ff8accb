"""The phone's microphone side: what it is saying, cut into the 20 ms chunks a Media Stream
sends, and silence between utterances (a phone line never falls quiet on the wire)."""

from __future__ import annotations

import asyncio
from collections import deque

from sandbox.telephony import mulaw

CHUNK_MS = 20
CHUNK = mulaw.RATE * CHUNK_MS // 1000  # μ-law bytes in one chunk
SILENT_CHUNK = bytes([mulaw.SILENCE]) * CHUNK


class Mouth:
    """Utterances queued in order; ``next_chunk`` takes the next 20 ms of them, or silence."""

    def __init__(self) -> None:
        self._queue: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self._offset = 0  # into the utterance at the head of the queue
        self.spoken_bytes = 0  # speech sent, silence not counted

    def say(self, ulaw: bytes) -> asyncio.Future[None]:
        """Queue ``ulaw`` after what is already being said; the future is done once its last
        chunk has been taken, or cancelled if the call ends first."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if ulaw:
            self._queue.append((ulaw, done))
        else:
            done.set_result(None)
        return done

    def next_chunk(self) -> bytes:
        """The next 20 ms to send: speech (the end of an utterance padded with silence), or silence."""
        if not self._queue:
            return SILENT_CHUNK
        ulaw, done = self._queue[0]
        chunk = ulaw[self._offset : self._offset + CHUNK]
        self._offset += len(chunk)
        self.spoken_bytes += len(chunk)
        if self._offset >= len(ulaw):
            self._queue.popleft()
            self._offset = 0
            if not done.done():
                done.set_result(None)
        return chunk.ljust(CHUNK, bytes([mulaw.SILENCE]))

    def hush(self) -> None:
        """Stop mid-sentence: drop everything not yet said (the call is over)."""
        for _, done in self._queue:
            done.cancel()
        self._queue.clear()
        self._offset = 0
