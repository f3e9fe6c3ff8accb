"""The cluster's Daily rate limit: one token bucket per rate class in Redis, taken through
an atomic Lua script (supervisor/cluster/ratelimit.py), against a real redis-server. The
clock is passed in, so nothing here sleeps or times anything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from callfleet.ratelimit import TokenBucket
from supervisor.cluster.link import Link
from supervisor.cluster.ratelimit import SharedBuckets
from tests.cluster.conftest import RedisServer

T0 = 1_000_000.0


@pytest.fixture
async def links(redis_server: RedisServer) -> AsyncIterator[list[Link]]:
    """Five separate clients (five connections), as five nodes would hold."""
    made = [Link(redis_server.url) for _ in range(5)]
    for link in made:
        await link.start()
        assert link.available
    try:
        yield made
    finally:
        for link in made:
            await link.stop()


async def test_a_new_bucket_is_full_and_then_says_how_long_to_wait(links: list[Link]) -> None:
    bucket = SharedBuckets(links[0])
    got = [await bucket.try_take("default", 2.0, 4.0, now=T0) for _ in range(5)]
    assert got[:4] == [0.0] * 4
    assert got[4] == pytest.approx(0.5)  # one token at 2 a second


async def test_tokens_refill_at_the_rate(links: list[Link]) -> None:
    bucket = SharedBuckets(links[0])
    for _ in range(4):
        assert await bucket.try_take("default", 2.0, 4.0, now=T0) == 0.0
    assert await bucket.try_take("default", 2.0, 4.0, now=T0 + 0.25) == pytest.approx(0.25)
    # A second later two tokens are back: two takes, then half a second to wait again.
    assert await bucket.try_take("default", 2.0, 4.0, now=T0 + 1.0) == 0.0
    assert await bucket.try_take("default", 2.0, 4.0, now=T0 + 1.0) == 0.0
    assert await bucket.try_take("default", 2.0, 4.0, now=T0 + 1.0) == pytest.approx(0.5)


async def test_capacity_caps_what_a_long_idle_bucket_saves(links: list[Link]) -> None:
    bucket = SharedBuckets(links[0])
    assert await bucket.try_take("slow", 1.0, 3.0, now=T0) == 0.0
    taken = [await bucket.try_take("slow", 1.0, 3.0, now=T0 + 3600) for _ in range(5)]
    assert taken == [0.0, 0.0, 0.0, pytest.approx(1.0), pytest.approx(1.0)]


async def test_rate_classes_are_separate_buckets(links: list[Link]) -> None:
    bucket = SharedBuckets(links[0])
    assert await bucket.try_take("default", 1.0, 1.0, now=T0) == 0.0
    assert await bucket.try_take("default", 1.0, 1.0, now=T0) > 0
    assert await bucket.try_take("media", 1.0, 1.0, now=T0) == 0.0


async def test_concurrent_takers_on_several_clients_never_get_more_than_the_bucket_holds(links: list[Link]) -> None:
    buckets = [SharedBuckets(link) for link in links]
    capacity, rate = 7.0, 2.0
    granted = 0
    for step in range(4):  # the clock moves half a second between rounds: one token refills
        now = T0 + 0.5 * step
        answers = await asyncio.gather(*(b.try_take("default", rate, capacity, now=now)
                                         for b in buckets for _ in range(10)))
        granted += sum(1 for wait in answers if wait == 0.0)
        assert granted == capacity + rate * 0.5 * step  # never more, and nothing lost to a race


async def test_while_redis_is_down_a_node_takes_from_its_own_bucket(redis_server: RedisServer,
                                                                    links: list[Link]) -> None:
    bucket = SharedBuckets(links[0])
    redis_server.stop()
    assert await bucket.try_take("default", 1.0, 2.0) is None
    local = TokenBucket(1.0, 2.0)
    await bucket.take("default", local)
    assert bucket.fallbacks == 1
    assert local.tokens < 2.0
