"""A session's turn figures, from the ``TurnFigures`` batches its worker sends: percentiles of
voice-to-voice and of each service's TTFB, the last few turns, and what it used.

The detail's ``turns`` and ``usage`` keys (also in the ``session.ended`` webhook) are built
here; ``RecordKeeper`` keeps them in the record's ``extra``, so a finished session keeps them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Any

from protocol.messages import Turn, TurnFigures

RECENT_TURNS = 5
SAMPLES_KEPT = 1000  # per series: percentiles over a session's last thousand measurements
BASE_USAGE = ("llm_prompt_tokens", "llm_completion_tokens", "tts_characters")  # always shown, 0 when unused


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _spread(values: Iterable[float]) -> dict[str, float | None]:
    kept = list(values)
    return {"p50": _rounded(percentile(kept, 50)), "p90": _rounded(percentile(kept, 90)),
            "p99": _rounded(percentile(kept, 99))}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class SessionFigures:
    """One session's figures, added to as batches arrive (on the supervisor's loop)."""

    def __init__(self) -> None:
        self.count = 0
        self.voice_to_voice: deque[float] = deque(maxlen=SAMPLES_KEPT)
        self.ttfb: dict[str, deque[float]] = {}
        self.processing: dict[str, deque[float]] = {}
        self.recent: deque[Turn] = deque(maxlen=RECENT_TURNS)
        self.usage: dict[str, float] = {}

    def add(self, figures: TurnFigures) -> None:
        for turn in figures.turns:
            self.count += 1
            self.voice_to_voice.append(turn.voice_to_voice_s)
            self.recent.append(turn)
        for service, seconds in figures.ttfb_s:
            self.ttfb.setdefault(service, deque(maxlen=SAMPLES_KEPT)).append(seconds)
        for service, seconds in figures.processing_s:
            self.processing.setdefault(service, deque(maxlen=SAMPLES_KEPT)).append(seconds)
        for kind, amount in figures.usage.items():
            self.usage[kind] = self.usage.get(kind, 0) + amount

    def turns_view(self) -> dict[str, Any]:
        """The detail's ``turns``."""
        v2v: dict[str, float | None] | None = None
        if self.voice_to_voice:
            v2v = {**_spread(self.voice_to_voice), "last": _rounded(self.voice_to_voice[-1])}
        return {
            "count": self.count,
            "voice_to_voice_s": v2v,
            "ttfb_s": {service: _spread(values) for service, values in sorted(self.ttfb.items())},
            "processing_s": {service: _spread(values) for service, values in sorted(self.processing.items())},
            "recent": [{"at": t.at, "voice_to_voice_s": _rounded(t.voice_to_voice_s),
                        "ttfb_s": {k: _rounded(v) for k, v in sorted(t.ttfb_s.items())}} for t in self.recent],
        }

    def usage_view(self) -> dict[str, float]:
        """The detail's ``usage``: whole numbers for tokens and characters."""
        usage = {kind: 0.0 for kind in BASE_USAGE} | self.usage
        return {kind: int(v) if float(v).is_integer() else round(v, 3) for kind, v in sorted(usage.items())}


def empty_turns() -> dict[str, Any]:
    """``turns`` of a session whose bot measured nothing (not a Pipecat pipeline, or a record
    written before turn figures existed)."""
    return SessionFigures().turns_view()


def empty_usage() -> dict[str, float]:
    return SessionFigures().usage_view()
