"""A wall clock a test moves by hand: the sandbox's, when it runs in the test's process."""

from __future__ import annotations

import time


class WallClock:
    """Unix time, plus however far the test has moved it: expiries pass when the test says,
    not after a wait. Until moved it reads the real time, so nothing else changes."""

    def __init__(self) -> None:
        self.ahead_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead_s

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.ahead_s += seconds
