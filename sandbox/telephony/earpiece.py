"""The phone's loudspeaker side: the server's audio, buffered and played out at 8 kHz.

A server (Pipecat among them) sends audio faster than real time; the phone keeps it and
plays 20 ms per tick of its clock, as Twilio does. A ``mark`` is echoed once everything
sent before it has been played (at once when nothing is buffered); ``clear`` drops what is
buffered and echoes every pending mark. What is played, silence included, is what the phone
heard: its recording.
"""

from __future__ import annotations

from collections import deque

from sandbox.telephony import mulaw
from sandbox.telephony.mouth import CHUNK

MAX_BUFFERED_S = 600  # a runaway sender cannot grow the buffer past this; the rest is dropped


class Earpiece:
    """The playout buffer, its marks, and the recording of what was played."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._marks: deque[tuple[int, str]] = deque()  # (position in the stream, name)
        self._played = 0  # bytes of the stream played so far (cleared ones count as played)
        self._received = 0  # bytes of the stream received so far
        self.heard = bytearray()  # μ-law as played, silence where nothing was buffered
        self.heard_bytes = 0  # server audio played, silence not counted
        self.cleared_bytes = 0
        self.dropped_bytes = 0  # beyond MAX_BUFFERED_S
        self.clears = 0

    def receive(self, ulaw: bytes) -> None:
        """Buffer the server's audio behind what is not yet played."""
        room = MAX_BUFFERED_S * mulaw.RATE - len(self._buffer)
        kept = ulaw[: max(0, room)]
        self.dropped_bytes += len(ulaw) - len(kept)
        self._buffer += kept
        self._received += len(kept)

    def mark(self, name: str) -> list[str]:
        """Note a mark after the audio received so far; the marks played by now (this one, if
        nothing is buffered)."""
        self._marks.append((self._received, name))
        return self._reached()

    def clear(self) -> list[str]:
        """Drop the audio not yet played; every pending mark is echoed."""
        self.clears += 1
        self.cleared_bytes += len(self._buffer)
        self._buffer.clear()
        self._played = self._received
        names = [name for _, name in self._marks]
        self._marks.clear()
        return names

    def play(self) -> list[str]:
        """Play the next 20 ms (silence when nothing is buffered); the marks reached."""
        chunk = bytes(self._buffer[:CHUNK])
        del self._buffer[:CHUNK]
        self._played += len(chunk)
        self.heard_bytes += len(chunk)
        self.heard += chunk.ljust(CHUNK, bytes([mulaw.SILENCE]))
        return self._reached()

    def _reached(self) -> list[str]:
        names = []
        while self._marks and self._marks[0][0] <= self._played:
            names.append(self._marks.popleft()[1])
        return names
