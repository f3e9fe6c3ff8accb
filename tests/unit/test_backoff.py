"""callfleet.backoff: the one retry policy every back-off loop in the tree uses."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callfleet.backoff import Backoff, Jitter


def test_delays_double_from_the_base_until_the_cap() -> None:
    policy = Backoff(base_s=0.5, max_s=30.0)
    assert [policy.delay(a) for a in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_the_factor_sets_the_growth() -> None:
    assert [Backoff(1.0, 100.0, factor=3.0).delay(a) for a in range(4)] == [1.0, 3.0, 9.0, 27.0]


def test_a_very_long_outage_stays_at_the_cap_instead_of_overflowing() -> None:
    assert Backoff(0.25, 8.0).delay(100_000) == 8.0


def test_retry_after_wins_when_it_is_longer_than_the_backoff() -> None:
    policy = Backoff(0.25, 8.0, jitter=Jitter.EQUAL)
    assert policy.delay(0, at_least=3.0) == 3.0
    assert Backoff(0.25, 8.0).delay(5, at_least=1.0) == 8.0  # the back-off is longer: it wins


def test_without_jitter_the_same_attempt_always_waits_the_same() -> None:
    policy = Backoff(0.5, 30.0)
    assert {policy.delay(3) for _ in range(20)} == {4.0}


@given(attempt=st.integers(0, 64), seed=st.integers())
def test_equal_jitter_waits_between_half_and_all_of_the_delay(attempt: int, seed: int) -> None:
    policy = Backoff(0.25, 8.0, jitter=Jitter.EQUAL, rng=random.Random(seed))
    ceiling = min(8.0, 0.25 * 2**attempt)
    assert ceiling / 2 <= policy.delay(attempt) <= ceiling


@given(attempt=st.integers(0, 64), seed=st.integers())
def test_full_jitter_waits_anywhere_up_to_the_delay(attempt: int, seed: int) -> None:
    policy = Backoff(0.25, 8.0, jitter=Jitter.FULL, rng=random.Random(seed))
    assert 0.0 <= policy.delay(attempt) <= min(8.0, 0.25 * 2**attempt)


def test_jitter_spreads_retries_so_a_fleet_does_not_retry_in_step() -> None:
    policy = Backoff(1.0, 60.0, jitter=Jitter.FULL, rng=random.Random(7))
    assert len({policy.delay(4) for _ in range(50)}) > 40


def test_a_seeded_rng_makes_jitter_repeatable() -> None:
    first = [Backoff(1.0, 60.0, jitter=Jitter.EQUAL, rng=random.Random(3)).delay(2) for _ in range(3)]
    assert len(set(first)) == 1


def test_a_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff(1.0, 2.0).delay(-1)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"base_s": -1.0, "max_s": 1.0}, "base_s"),
    ({"base_s": 2.0, "max_s": 1.0}, "max_s"),
    ({"base_s": 1.0, "max_s": 2.0, "factor": 0.5}, "factor"),
])
def test_a_policy_that_would_not_back_off_is_refused(kwargs: dict[str, float], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        Backoff(**kwargs)  # type: ignore[arg-type]
