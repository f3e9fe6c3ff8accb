"""The pool owns its desired state: ``set_desired`` changes what its reconcile loop converges
to, keeps what it is not given, and refuses a state that cannot be met."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.environment import DROP_PRIVILEGES_ENV, PRELOAD_BACKEND_ENV, PRELOAD_BOTS_ENV
from supervisor.config import parse
from supervisor.pool import Pool


@pytest.fixture
async def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pool]:
    for name in (PRELOAD_BACKEND_ENV, PRELOAD_BOTS_ENV, DROP_PRIVILEGES_ENV):
        monkeypatch.setenv(name, "")  # the pool writes the forkserver's settings here; put back after
    pool = Pool(parse("[pool]\nmin_idle = 1\nmax_workers = 4\n"), f"ipc://{tmp_path / 'workers.sock'}")
    yield pool
    pool.router.close()
    pool.ctx.term()


async def test_set_desired_changes_what_is_given_and_keeps_the_rest(pool: Pool) -> None:
    desired = pool.set_desired(max_workers=6)
    assert (desired.min_idle, desired.max_workers, desired.draining) == (1, 6, False)
    assert pool.desired == desired and pool.capacity() == 6
    pool.set_desired(draining=True)
    assert (pool.desired.min_idle, pool.desired.max_workers, pool.desired.draining) == (1, 6, True)
    assert pool.capacity() == 0  # a draining pool promises no worker


async def test_a_new_configs_limits_reach_the_reconcile_step(pool: Pool) -> None:
    new = parse("[pool]\nmin_idle = 0\nmax_workers = 2\nworker_memory_limit_mb = 123\nping_timeout_s = 7.0\n")
    desired = pool.set_desired(config=new, min_idle=new.pool.min_idle, max_workers=new.pool.max_workers)
    assert (desired.min_idle, desired.max_workers, desired.memory_limit_mb, desired.ping_timeout_s) == (0, 2, 123, 7.0)
    assert pool.config is new


async def test_min_idle_above_max_workers_is_refused_and_nothing_changes(pool: Pool) -> None:
    before = pool.desired
    with pytest.raises(ValueError, match=r"min_idle \(5\) cannot exceed max_workers \(4\)"):
        pool.set_desired(min_idle=5)
    with pytest.raises(ValueError, match="cannot exceed"):
        pool.set_desired(config=parse("[pool]\nworker_memory_limit_mb = 99\n"), max_workers=0)
    assert pool.desired == before and pool.config.pool.worker_memory_limit_mb != 99
