"""Daily's rate-limit classes as token buckets, and run-time fault injection."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass

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
    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, stamp)
        self.enabled = True

    def take(self, key: str, cls: str, now: float | None = None) -> float:
        """Take one token; returns 0 when allowed, else seconds until one is available."""
        if not self.enabled:
            return 0.0
        capacity, rate = CLASSES[cls]
        now = time.monotonic() if now is None else now
        tokens, stamp = self._buckets.get((key, cls), (capacity, now))
        tokens = min(capacity, tokens + (now - stamp) * rate)
        if tokens >= 1:
            self._buckets[(key, cls)] = (tokens - 1, now)
            return 0.0
        self._buckets[(key, cls)] = (tokens, now)
        return (1 - tokens) / rate


@dataclass
class Faults:
    """What goes wrong, switchable at run time through ``/v1/sandbox/faults``.

    The same endpoint also takes a one-shot ``{"disconnect": ROOM | "*"}`` that cuts the
    room-server connections of every participant there (see ``RoomServer.disconnect``).
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
