"""How the pool reads its workers' memory: RSS every time (a constant-time read), PSS (a
walk of every mapping) only when RSS is over the limit -- PSS never exceeds RSS -- or on
the periodic full read."""

from __future__ import annotations

import os

from supervisor.pool.memory import sample


def test_pss_is_read_only_when_rss_is_over_the_limit_or_on_a_full_read() -> None:
    me = {"w1": os.getpid()}
    [(pss, rss)] = sample(me, limit_mb=100_000, full=False).values()
    assert pss is None and rss > 0  # far below the limit: RSS alone proves it
    [(pss, rss)] = sample(me, limit_mb=1, full=False).values()
    assert pss is not None and 0 < pss <= rss  # over the limit in RSS: PSS decides
    [(pss, rss)] = sample(me, limit_mb=100_000, full=True).values()
    assert pss is not None and pss <= rss


def test_a_worker_that_is_gone_is_left_out() -> None:
    gone = 2**22 + 12345  # above pid_max's default: no such process
    assert sample({"w1": gone, "w2": None}, limit_mb=1, full=True) == {}
