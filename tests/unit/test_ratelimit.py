"""callfleet.ratelimit.TokenBucket, and the sandbox's keyed buckets built on it.

Every test drives a fake clock by hand: no sleeps, no timing assertions."""

from __future__ import annotations

import pytest

from callfleet.ratelimit import TokenBucket
from sandbox.limits import CLASSES, TokenBuckets


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Stands in for asyncio.sleep: time passes, nothing waits."""
        self.slept.append(seconds)
        self.now += seconds


def test_a_new_bucket_allows_a_burst_of_its_capacity_then_refuses() -> None:
    bucket = TokenBucket(rate=2.0, capacity=5, clock=FakeClock())
    assert [bucket.try_take() for _ in range(6)] == [True] * 5 + [False]


def test_a_refused_take_spends_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, capacity=3, clock=clock)
    assert bucket.try_take(3)
    clock.now += 0.5
    assert not bucket.try_take()
    assert bucket.tokens == pytest.approx(0.5)


def test_tokens_come_back_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4.0, capacity=10, clock=clock)
    assert bucket.try_take(10)
    clock.now += 0.5
    assert bucket.try_take(2) and not bucket.try_take()


def test_an_idle_bucket_saves_up_no_more_than_its_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, capacity=3, clock=clock)
    clock.now += 3600
    assert bucket.tokens == 3
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]


def test_wait_time_says_when_a_take_will_succeed() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, capacity=2, clock=clock)
    assert bucket.wait_time() == 0.0
    assert bucket.try_take(2)
    assert bucket.wait_time() == pytest.approx(0.5)
    assert bucket.wait_time(2) == pytest.approx(1.0)
    clock.now += bucket.wait_time()
    assert bucket.try_take()


def test_a_request_larger_than_the_capacity_goes_through_when_full_and_leaves_debt() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, capacity=100, clock=clock)  # e.g. bytes of audio slack
    assert bucket.try_take(250)
    assert bucket.tokens == pytest.approx(-150)
    assert not bucket.try_take(1)
    assert bucket.wait_time(250) == pytest.approx(0.25)  # pay the debt, then be full again
    clock.now += 0.25
    assert bucket.try_take(250)


def test_a_clock_stepping_back_does_not_drain_the_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, capacity=2, clock=clock)
    clock.now -= 100
    assert bucket.tokens == 2


async def test_take_waits_exactly_as_long_as_the_rate_requires() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5.0, capacity=1, clock=clock)
    for _ in range(4):
        await bucket.take(sleep=clock.sleep)
    assert clock.slept == pytest.approx([0.2, 0.2, 0.2])
    assert clock.now == pytest.approx(1000.6)


def test_a_bucket_that_never_refills_is_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0, capacity=1)
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(rate=1, capacity=0)
    with pytest.raises(ValueError, match="negative"):
        TokenBucket(rate=1, capacity=1).try_take(-1)


# -- the sandbox's per-key buckets (Daily's rate-limit classes) --------------------------


def test_the_sandbox_answers_429_after_a_keys_burst_and_says_how_long_to_wait() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(clock=clock)
    capacity, rate = CLASSES["media"]
    assert [buckets.take("k", "media") for _ in range(int(capacity))] == [0.0] * int(capacity)
    assert buckets.take("k", "media") == pytest.approx(1 / rate)
    clock.now += 1 / rate
    assert buckets.take("k", "media") == 0.0


def test_the_sandbox_limits_each_key_and_class_on_its_own() -> None:
    buckets = TokenBuckets(clock=FakeClock())
    capacity, _ = CLASSES["media"]
    for _ in range(int(capacity)):
        buckets.take("a", "media")
    assert buckets.take("a", "media") > 0
    assert buckets.take("b", "media") == 0.0
    assert buckets.take("a", "default") == 0.0


def test_the_sandbox_limits_nothing_when_rate_limits_are_off() -> None:
    buckets = TokenBuckets(clock=FakeClock())
    buckets.enabled = False
    assert all(buckets.take("k", "media") == 0.0 for _ in range(100))
