"""One live transcription, Deepgram's way: audio and control messages in, Deepgram's JSON
messages out. No socket here (``sandbox.ai.deepgram`` carries them); no model either.

Utterances are found by level (``sandbox.ai.vad``) and transcribed as the transcript
script's next text. With ``vad_events`` an utterance opens with ``SpeechStarted``; with
``interim_results`` it is revealed a word more every ``INTERIM_EVERY_S`` of audio in
non-final ``Results``. Its text goes out once, in a final ``Results``: after
``vad.HANGOVER_S`` of silence (``speech_final`` true, whatever ``endpointing`` asks), at
``CloseStream``, or at once when the client sends ``Finalize`` (``from_finalize`` true,
``speech_final`` false; what is left of that utterance then adds no words). With
``utterance_end_ms``, ``UtteranceEnd`` follows once that much audio has passed without a
word. ``CloseStream`` ends with ``Metadata``. Times are seconds of audio since the stream
began, as Deepgram's are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from sandbox.ai.script import TranscriptScript
from sandbox.ai.vad import EnergyVad, SpeechStarted

INTERIM_EVERY_S = 0.5
CONFIDENCE = 0.99
MODEL_UUID = "00000000-5a4d-4b0c-8000-000000000000"  # the stand-in "model"
Message = dict[str, Any]


@dataclass(frozen=True)
class ListenOptions:
    """What the client asked for in the socket's query."""

    sample_rate: int
    channels: int = 1
    model: str = "nova-3"
    interim_results: bool = False
    vad_events: bool = False
    utterance_end_ms: int | None = None


@dataclass
class Utterance:
    text: str
    start: float
    interims: int = 0
    finalized: bool = False  # its words went out on a Finalize: the rest of it adds none


class ListenStream:
    """The transcriber behind one socket."""

    def __init__(self, options: ListenOptions, script: TranscriptScript, request_id: str) -> None:
        self.options = options
        self.script = script
        self.request_id = request_id
        self.created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.vad = EnergyVad(options.sample_rate)
        self.utterance: Utterance | None = None
        self.last_word_end: float | None = None  # of the last final words, until UtteranceEnd is sent
        self._remainder = b""  # a partial sample frame (all channels) carried to the next message
        self._sha256 = hashlib.sha256()

    def audio(self, data: bytes) -> list[Message]:
        """The messages that ``data`` (raw linear16, interleaved channels) gives rise to."""
        self._sha256.update(data)
        out: list[Message] = []
        for event in self.vad.feed(self._mono(data)):
            if isinstance(event, SpeechStarted):
                self.utterance = Utterance(text=self.script.take(), start=event.at)
                self.last_word_end = None
                if self.options.vad_events:
                    out.append({"type": "SpeechStarted", "channel": [0, 1], "timestamp": event.at})
            else:
                out.extend(self._final(event.end, speech_final=True, from_finalize=False))
                self.utterance, self.last_word_end = None, event.end
        if self.utterance is not None and not self.utterance.finalized and self.options.interim_results:
            out.extend(self._interims())
        if self._utterance_end_due():
            out.append({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self.last_word_end})
            self.last_word_end = None
        return out

    def finalize(self) -> list[Message]:
        """``Finalize``: the utterance so far as final, or an empty final result if nothing is
        pending (so the client knows its request is done).

        The utterance stays open until its silence: a client's VAD may finalize in a pause
        between two sentences, and the script gave the whole utterance one text."""
        if self.utterance is None or self.utterance.finalized:
            position = self.vad.position
            return [self._results("", position, position, is_final=True, speech_final=False, from_finalize=True)]
        out = self._final(self.vad.last_voiced, speech_final=False, from_finalize=True)
        self.utterance.finalized = True
        return out

    def close(self) -> list[Message]:
        """``CloseStream``: the utterance in progress as final, then ``Metadata``."""
        out = self._final(self.vad.last_voiced, speech_final=True, from_finalize=False)
        self.utterance = None
        out.append({"type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id,
                    "sha256": self._sha256.hexdigest(), "created": self.created, "duration": self.vad.position,
                    "channels": self.options.channels, "models": [MODEL_UUID],
                    "model_info": {MODEL_UUID: self._model_info()}})
        return out

    def _mono(self, data: bytes) -> bytes:
        channels = self.options.channels
        data = self._remainder + data
        whole = len(data) // (2 * channels) * (2 * channels)
        self._remainder = data[whole:]
        if channels == 1:
            return data[:whole]
        samples = np.frombuffer(data[:whole], dtype="<i2").reshape(-1, channels).astype(np.int32)
        return bytes((samples.sum(axis=1) // channels).astype("<i2").tobytes())

    def _interims(self) -> list[Message]:
        assert self.utterance is not None
        utterance, position = self.utterance, self.vad.position
        words = utterance.text.split()
        out = []
        while utterance.interims < int((position - utterance.start) / INTERIM_EVERY_S):
            utterance.interims += 1
            shown = " ".join(words[:utterance.interims])
            out.append(self._results(shown, utterance.start, position, is_final=False, speech_final=False,
                                     from_finalize=False))
        return out

    def _final(self, end: float, *, speech_final: bool, from_finalize: bool) -> list[Message]:
        """The current utterance's final result; none if there is none or a Finalize sent it."""
        utterance = self.utterance
        if utterance is None or utterance.finalized:
            return []
        return [self._results(utterance.text, utterance.start, end, is_final=True, speech_final=speech_final,
                              from_finalize=from_finalize)]

    def _utterance_end_due(self) -> bool:
        wait_ms = self.options.utterance_end_ms
        return (wait_ms is not None and self.last_word_end is not None and not self.vad.speaking
                and (self.vad.position - self.last_word_end) * 1000 >= wait_ms)

    def _results(self, transcript: str, start: float, end: float, *, is_final: bool, speech_final: bool,
                 from_finalize: bool) -> Message:
        words = transcript.split()
        step = (end - start) / len(words) if words else 0.0
        return {"type": "Results", "channel_index": [0, 1], "duration": end - start, "start": start,
                "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
                "channel": {"alternatives": [{
                    "transcript": transcript, "confidence": CONFIDENCE if words else 0.0,
                    "words": [{"word": re.sub(r"[^\w']", "", w).lower(), "start": start + i * step,
                               "end": start + (i + 1) * step, "confidence": CONFIDENCE, "punctuated_word": w}
                              for i, w in enumerate(words)]}]},
                "metadata": {"request_id": self.request_id, "model_info": self._model_info(),
                             "model_uuid": MODEL_UUID}}

    def _model_info(self) -> dict[str, str]:
        return {"name": self.options.model, "version": "sandbox", "arch": self.options.model}
