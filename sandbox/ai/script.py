"""The transcript script: what the stand-in speech-to-text hears the next utterances say."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

PLACEHOLDER = "hello"  # an utterance nobody scripted: still a turn a bot reacts to


class TranscriptScript:
    """An ordered queue of texts; each utterance the stand-ins detect takes the next one.

    Shared by every listener (Deepgram sockets, transcription requests) in the order their
    utterances are detected. Thread-safe, because a phone or a test that pushes the
    sentence it is about to say may run on another thread than the sandbox's loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()

    def push(self, *texts: str) -> None:
        """Append ``texts``: the utterances after those already scripted."""
        with self._lock:
            self._queue.extend(texts)

    def replace(self, texts: Iterable[str]) -> None:
        """Drop what is scripted and script ``texts`` instead."""
        with self._lock:
            self._queue = deque(texts)

    def pending(self) -> list[str]:
        """What the next utterances will be transcribed as, in order."""
        with self._lock:
            return list(self._queue)

    def take(self) -> str:
        """The text of the utterance just detected: the next scripted one, else ``PLACEHOLDER``."""
        with self._lock:
            return self._queue.popleft() if self._queue else PLACEHOLDER
