"""Daily's REST rate limit shared by every node: one Redis token bucket per rate class.

Daily counts requests per account, so in cluster mode DailyREST takes its tokens from
``cf:bucket:{class}`` through one atomic Lua script (refill at ``rate``, at most
``capacity`` saved, the clock is Redis's own ``TIME`` so nodes' clocks do not matter).
While Redis is down each node falls back to its own local bucket: the account may then
see up to one bucket's rate per node until Redis returns.
"""

from __future__ import annotations

import asyncio
import collections

from redis.asyncio import Redis

from callfleet.ratelimit import TokenBucket
from supervisor.cluster.link import Link

# KEYS[1]: the bucket. ARGV: rate (tokens/s), capacity, tokens wanted, and optionally "now"
# in seconds (tests drive the clock; otherwise Redis's TIME). Returns the seconds to wait
# before the tokens could be had, "0" when they were taken. A bucket never seen is full.
TAKE = """
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
local need = math.min(n, capacity)
local wait = 0
if tokens + 1e-9 >= need then
  tokens = tokens - n
else
  wait = (need - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return string.format('%.17g', wait)
"""


def bucket_key(rate_class: str) -> str:
    return f"cf:bucket:{rate_class}"


class SharedBuckets:
    """``take(rate_class, local)`` for DailyREST: the cluster's bucket, or ``local`` (with
    the same rate and capacity) while Redis is down."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._script = link.client.register_script(TAKE)
        # One taker per class per node asks Redis at a time; the rest queue here in order.
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self.fallbacks = 0  # takes served by the local bucket, for tests and metrics

    async def try_take(self, rate_class: str, rate: float, capacity: float, n: float = 1,
                       now: float | None = None) -> float | None:
        """Take ``n`` tokens if the shared bucket has them: 0.0; else the seconds to wait
        (nothing taken); None when Redis is down."""
        args: list[float] = [rate, capacity, n] if now is None else [rate, capacity, n, now]

        async def take(r: Redis) -> float:
            return float(await self._script(keys=[bucket_key(rate_class)], args=args, client=r))

        return await self.link.run(take, None)

    async def take(self, rate_class: str, local: TokenBucket) -> None:
        """Wait until the cluster may make one more request of ``rate_class``."""
        async with self._locks[rate_class]:
            while True:
                wait = await self.try_take(rate_class, local.rate, local.capacity)
                if wait is None:
                    self.fallbacks += 1
                    await local.take()
                    return
                if wait <= 0:
                    return
                await asyncio.sleep(wait)
