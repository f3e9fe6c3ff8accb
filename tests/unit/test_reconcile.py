"""The pool's reconcile step, over desired and observed state, without processes."""

from __future__ import annotations

from supervisor.pool.reconcile import (
    BootHistory,
    Desired,
    Kill,
    Retire,
    RetireAfterSession,
    Spawn,
    WorkerState,
    WorkerView,
    reconcile,
)

NOW = 1000.0
D = Desired(min_idle=2, max_workers=4, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10)


def w(wid: str, state: WorkerState = WorkerState.IDLE, *, started: float = 900.0, heard: float = NOW,
      booted: bool = True, pss: float | None = 50.0, retire: bool = False) -> WorkerView:
    return WorkerView(wid, state, started, heard, booted, pss, retire)


def test_an_empty_pool_spawns_min_idle() -> None:
    assert reconcile(D, [], BootHistory(), NOW) == [Spawn(2)]


def test_booting_workers_count_toward_min_idle_so_nothing_is_overspawned() -> None:
    workers = [w("a", WorkerState.BOOTING, booted=False, started=NOW - 1), w("b")]
    assert reconcile(D, workers, BootHistory(), NOW) == []


def test_a_burst_fills_up_to_max_workers_and_no_further() -> None:
    busy = [w(f"b{i}", WorkerState.BUSY) for i in range(3)]
    assert reconcile(D, busy, BootHistory(), NOW) == [Spawn(1)]  # min_idle 2, but only 1 slot left
    full = busy + [w("r", WorkerState.RESERVED, booted=False, started=NOW - 1)]
    assert reconcile(D, full, BootHistory(), NOW) == []


def test_boot_failures_back_off_exponentially_and_probe_with_one() -> None:
    boot = BootHistory(failures=3, last_failure_at=NOW - 1.0)  # next try at +2 s
    assert reconcile(D, [], boot, NOW) == []
    assert reconcile(D, [], boot, NOW + 1.5) == [Spawn(1)]
    worse = BootHistory(failures=20, last_failure_at=NOW)
    assert worse.next_spawn_at() == NOW + 30.0  # capped


def test_a_worker_that_never_says_hello_is_killed() -> None:
    workers = [w("slow", WorkerState.BOOTING, booted=False, started=NOW - 11)]
    actions = reconcile(D, workers, BootHistory(), NOW)
    assert actions[0] == Kill("slow", "no Hello within 10s")
    assert Spawn(2) in actions


def test_a_worker_that_misses_pings_is_killed_even_when_busy() -> None:
    actions = reconcile(D, [w("quiet", WorkerState.BUSY, heard=NOW - 6), w("a"), w("b")], BootHistory(), NOW)
    assert actions == [Kill("quiet", "missed pings for 6.0s")]


def test_memory_over_the_limit_retires_idle_at_once_and_busy_after_the_session() -> None:
    workers = [w("fat-idle", pss=250), w("fat-busy", WorkerState.BUSY, pss=250), w("huge", WorkerState.BUSY, pss=400), w("ok")]
    actions = reconcile(D, workers, BootHistory(), NOW)
    assert Retire("fat-idle", "PSS 250 MB over the 200 MB limit") in actions
    assert RetireAfterSession("fat-busy", "PSS 250 MB over the 200 MB limit") in actions
    assert Kill("huge", "PSS 400 MB over the 200 MB limit (far over)") in actions
    already = [w("fat-busy", WorkerState.BUSY, pss=250, retire=True), w("a"), w("b")]
    assert reconcile(D, already, BootHistory(), NOW) == []


def test_reload_shrinking_retires_idle_oldest_first_and_never_busy() -> None:
    smaller = Desired(min_idle=1, max_workers=2, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10)
    workers = [w("old", started=100), w("new", started=800), w("busy1", WorkerState.BUSY), w("busy2", WorkerState.BUSY)]
    actions = reconcile(smaller, workers, BootHistory(), NOW)
    assert actions == [Retire("old", "pool shrinking"), Retire("new", "pool shrinking")]


def test_reload_growing_spawns_the_difference() -> None:
    bigger = Desired(min_idle=4, max_workers=8, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10)
    assert reconcile(bigger, [w("a"), w("b"), w("c", WorkerState.BUSY)], BootHistory(), NOW) == [Spawn(2)]


def test_surplus_idle_after_sessions_end_is_retired() -> None:
    assert reconcile(D, [w("a", started=1), w("b", started=2), w("c", started=3)], BootHistory(), NOW) == [
        Retire("a", "more idle than min_idle")
    ]


def test_draining_retires_every_idle_worker_and_spawns_nothing() -> None:
    draining = Desired(min_idle=2, max_workers=4, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10, draining=True)
    actions = reconcile(draining, [w("a"), w("b", WorkerState.BUSY)], BootHistory(), NOW)
    assert actions == [Retire("a", "draining")]


def test_retiring_and_dead_workers_do_not_count_toward_the_pool() -> None:
    workers = [w("bye", WorkerState.RETIRING), w("x", WorkerState.DEAD), w("a"), w("b")]
    assert reconcile(D, workers, BootHistory(), NOW) == []


def test_a_retiring_worker_that_goes_silent_is_killed() -> None:
    workers = [w("stuck", WorkerState.RETIRING, heard=NOW - 100), w("a"), w("b")]
    assert reconcile(D, workers, BootHistory(), NOW) == [Kill("stuck", "missed pings for 100.0s")]
