"""Daily's rate-limit classes as token buckets, and run-time fault injection."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from callfleet.ratelimit import TokenBucket

# (capacity, refill per second) per Daily's documented classes.
CLASSES = {
    "default": (100.0, 20.0),  # 20 req/s, 100 per 5 s
    "slow": (50.0, 50.0 / 30.0),  # DELETE /rooms/:name, GET /recordings: 50 per 30 s
    "media": (5.0, 1.0),  # starting recordings, streams, PSTN/SIP: 5 per 5 s
}


def rate_class(method: str, path: str) -> str:
    if method == "DELETE" and path.startswith("/v1/rooms/") and path.count("/") == 3:
        return "slow"
    if method == "GET" and path.rstrip("/") == "/v1/recordings":
        return "slow"
    if method == "POST" and path.startswith("/v1/dialin/"):
        return "media"
    return "default"


class TokenBuckets:
    """Daily's rate-limit classes, one bucket per (API key, class)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._clock = clock
        self.enabled = True

    def take(self, key: str, cls: str) -> float:
        """Take one token; returns 0 when allowed, else seconds until one is available.
        Raises KeyError for an unknown class."""
        if not self.enabled:
            return 0.0
        bucket = self._buckets.get((key, cls))
        if bucket is None:
            capacity, rate = CLASSES[cls]
            bucket = self._buckets[(key, cls)] = TokenBucket(rate, capacity, clock=self._clock)
        return 0.0 if bucket.try_take() else bucket.wait_time()


@dataclass
class Faults:
    """What goes wrong, switchable at run time through ``/v1/sandbox/faults``.

    The same endpoint also takes a one-shot ``{"disconnect": ROOM | "*"}`` that cuts the
    room-server connections of every participant there (see ``Membership.disconnect``).
    """

    latency_ms: float = 0.0  # added to every REST response
    error_rate: float = 0.0  # share of REST requests answered 500 server-error
    rate_limit_burst: int = 0  # the next N REST requests answered 429
    retry_after_s: int = 1  # Retry-After sent with those 429s
    stall_rate: float = 0.0  # share of REST requests that stall for stall_s
    stall_s: float = 0.0
    rate_limits: bool = True  # Daily's token buckets on/off
    seed: int | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items()}


FAULT_FIELDS = {
    "latency_ms": (int, float),
    "error_rate": (int, float),
    "rate_limit_burst": (int,),
    "retry_after_s": (int,),
    "stall_rate": (int, float),
    "stall_s": (int, float),
    "rate_limits": (bool,),
    "seed": (int, type(None)),
}


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
