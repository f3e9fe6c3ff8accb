"""Exponential back-off: how long to wait before the next retry.

One policy object for every retry loop in the tree (Daily REST calls, the room pool's
refill, worker boot failures, a crashed sandbox child)::

    policy = Backoff(base_s=0.5, max_s=30.0, jitter=Jitter.EQUAL)
    await asyncio.sleep(policy.delay(attempt))            # attempt 0 = first retry
    await asyncio.sleep(policy.delay(attempt, at_least=retry_after))  # honour Retry-After

Without jitter the delays are deterministic: ``base_s * factor ** attempt``, capped at
``max_s``.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field


class Jitter(enum.Enum):
    """How much of the exponential delay is randomised (AWS's "Exponential Backoff and Jitter")."""

    NONE = "none"  # exactly the capped exponential delay
    FULL = "full"  # uniform in [0, delay]: spreads a fleet the most
    EQUAL = "equal"  # uniform in [delay / 2, delay]: never retries sooner than half the delay


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off capped at ``max_s``, with optional jitter.

    Raises ValueError when built with a negative ``base_s``, ``max_s < base_s`` or
    ``factor < 1``.
    """

    base_s: float
    max_s: float
    factor: float = 2.0
    jitter: Jitter = Jitter.NONE
    # Injected so tests can pin the jitter; None uses the random module's shared generator.
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s < 0:
            raise ValueError(f"base_s must be >= 0, got {self.base_s}")
        if self.max_s < self.base_s:
            raise ValueError(f"max_s ({self.max_s}) must be >= base_s ({self.base_s})")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay before retry number ``attempt`` (0 = the first retry).

        Raises ValueError for a negative attempt.
        """
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        try:
            return min(self.max_s, self.base_s * self.factor**attempt)
        except OverflowError:  # a very long outage: the cap has long been reached
            return self.max_s if self.base_s else 0.0

    def delay(self, attempt: int, *, at_least: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 = the first retry).

        ``at_least`` (a server's Retry-After) wins when it is longer than the back-off.
        Raises ValueError for a negative attempt.
        """
        ceiling = self.ceiling(attempt)
        uniform = self.rng.uniform if self.rng is not None else random.uniform
        if self.jitter is Jitter.FULL:
            delay = uniform(0.0, ceiling)
        elif self.jitter is Jitter.EQUAL:
            delay = uniform(ceiling / 2, ceiling)
        else:
            delay = ceiling
        if at_least is not None:
            delay = max(delay, at_least)
        return delay
