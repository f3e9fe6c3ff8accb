"""A token bucket: ``rate`` tokens a second, at most ``capacity`` saved up.

One implementation for every limiter in the tree: the Daily REST client's per-class
limits (async ``take``), the sandbox's per-key 429s (``try_take`` + ``wait_time``) and
the worker's real-time audio slack (tokens are bytes). The clock is injected so tests
drive it by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# A billionth of a token short is float rounding after sleeping wait_time(), not a shortage.
_EPSILON = 1e-9


class TokenBucket:
    """Starts full. Not thread-safe: one thread (or one event loop) per bucket.

    A request larger than ``capacity`` could never be met by waiting, so it is admitted
    once the bucket is full and leaves it in debt, which later refills pay off.
    Raises ValueError when ``rate`` or ``capacity`` is not positive.
    """

    def __init__(self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = float(capacity)
        self._stamp = clock()
        self._lock = asyncio.Lock()  # binds to a loop only when first contended

    @property
    def tokens(self) -> float:
        """Tokens available now (negative while in debt)."""
        self._refill()
        return self._tokens

    def try_take(self, n: float = 1) -> bool:
        """Spend ``n`` tokens if they are there now; False (spending nothing) if not.
        Raises ValueError for a negative ``n``."""
        self._refill()
        if self._tokens + _EPSILON < self._needed(n):
            return False
        self._tokens -= n
        return True

    def wait_time(self, n: float = 1) -> float:
        """Seconds until ``try_take(n)`` would succeed; 0.0 if it would now. Raises
        ValueError for a negative ``n``."""
        self._refill()
        short = self._needed(n) - self._tokens
        return 0.0 if short <= _EPSILON else short / self.rate

    async def take(self, n: float = 1, *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        """Wait until ``n`` tokens can be spent, then spend them. Waiters are served in
        arrival order, so a burst cannot starve an early caller. Raises ValueError for a
        negative ``n``."""
        async with self._lock:
            while not self.try_take(n):
                await sleep(self.wait_time(n))

    def _needed(self, n: float) -> float:
        if n < 0:
            raise ValueError(f"cannot take a negative number of tokens: {n}")
        return min(n, self.capacity)

    def _refill(self) -> None:
        now = self._clock()
        # max(): a clock that steps back must not drain the bucket.
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._stamp) * self.rate)
        self._stamp = now
