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
    assert reconcile(D, [], {}, NOW) == [Spawn(2)]


def test_booting_workers_count_toward_min_idle_so_nothing_is_overspawned() -> None:
    workers = [w("a", WorkerState.BOOTING, booted=False, started=NOW - 1), w("b")]
    assert reconcile(D, workers, {}, NOW) == []


def test_a_burst_fills_up_to_max_workers_and_no_further() -> None:
    busy = [w(f"b{i}", WorkerState.BUSY) for i in range(3)]
    assert reconcile(D, busy, {}, NOW) == [Spawn(1)]  # min_idle 2, but only 1 slot left
    full = busy + [w("r", WorkerState.RESERVED, booted=False, started=NOW - 1)]
    assert reconcile(D, full, {}, NOW) == []


def test_boot_failures_back_off_exponentially_and_probe_with_one() -> None:
    boot = BootHistory(failures=3, last_failure_at=NOW - 1.0)  # next try at +2 s
    assert reconcile(D, [], {"builtin": boot}, NOW) == []
    assert reconcile(D, [], {"builtin": boot}, NOW + 1.5) == [Spawn(1)]
    worse = BootHistory(failures=20, last_failure_at=NOW)
    assert worse.next_spawn_at() == NOW + 30.0  # capped


def test_a_worker_that_never_says_hello_is_killed() -> None:
    workers = [w("slow", WorkerState.BOOTING, booted=False, started=NOW - 11)]
    actions = reconcile(D, workers, {}, NOW)
    assert actions[0] == Kill("slow", "no Hello within 10s")
    assert Spawn(2) in actions


def test_a_worker_that_misses_pings_is_killed_even_when_busy() -> None:
    actions = reconcile(D, [w("quiet", WorkerState.BUSY, heard=NOW - 6), w("a"), w("b")], {}, NOW)
    assert actions == [Kill("quiet", "missed pings for 6.0s")]


def test_memory_over_the_limit_retires_idle_at_once_and_busy_after_the_session() -> None:
    workers = [w("fat-idle", pss=250), w("fat-busy", WorkerState.BUSY, pss=250), w("huge", WorkerState.BUSY, pss=400), w("ok")]
    actions = reconcile(D, workers, {}, NOW)
    assert Retire("fat-idle", "PSS 250 MB over the 200 MB limit") in actions
    assert RetireAfterSession("fat-busy", "PSS 250 MB over the 200 MB limit") in actions
    assert Kill("huge", "PSS 400 MB over the 200 MB limit (far over)") in actions
    already = [w("fat-busy", WorkerState.BUSY, pss=250, retire=True), w("a"), w("b")]
    assert reconcile(D, already, {}, NOW) == []


def test_reload_shrinking_retires_idle_oldest_first_and_never_busy() -> None:
    smaller = Desired(min_idle=1, max_workers=2, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10)
    workers = [w("old", started=100), w("new", started=800), w("busy1", WorkerState.BUSY), w("busy2", WorkerState.BUSY)]
    actions = reconcile(smaller, workers, {}, NOW)
    assert actions == [Retire("old", "pool shrinking"), Retire("new", "pool shrinking")]


def test_reload_growing_spawns_the_difference() -> None:
    bigger = Desired(min_idle=4, max_workers=8, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10)
    assert reconcile(bigger, [w("a"), w("b"), w("c", WorkerState.BUSY)], {}, NOW) == [Spawn(2)]


def test_surplus_idle_after_sessions_end_is_retired() -> None:
    assert reconcile(D, [w("a", started=1), w("b", started=2), w("c", started=3)], {}, NOW) == [
        Retire("a", "more idle than min_idle")
    ]


def test_draining_retires_every_idle_worker_and_spawns_nothing() -> None:
    draining = Desired(min_idle=2, max_workers=4, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10, draining=True)
    actions = reconcile(draining, [w("a"), w("b", WorkerState.BUSY)], {}, NOW)
    assert actions == [Retire("a", "draining")]


def test_retiring_and_dead_workers_do_not_count_toward_the_pool() -> None:
    workers = [w("bye", WorkerState.RETIRING), w("x", WorkerState.DEAD), w("a"), w("b")]
    assert reconcile(D, workers, {}, NOW) == []


def test_a_retiring_worker_that_goes_silent_is_killed() -> None:
    workers = [w("stuck", WorkerState.RETIRING, heard=NOW - 100), w("a"), w("b")]
    assert reconcile(D, workers, {}, NOW) == [Kill("stuck", "missed pings for 100.0s")]


# -- lanes: a lean forkserver's workers for built-in bots, a Pipecat one's for Pipecat bots --

TWO = Desired(min_idle=2, max_workers=6, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10,
              lanes=("builtin", "pipecat"))


def lw(wid: str, lane: str, state: WorkerState = WorkerState.IDLE, *, started: float = 900.0) -> WorkerView:
    return WorkerView(wid, state, started, NOW, True, 50.0, False, lane)


def test_each_lane_the_profiles_need_is_kept_warm_on_its_own() -> None:
    assert reconcile(TWO, [], {}, NOW) == [Spawn(2, "builtin"), Spawn(2, "pipecat")]
    # Busy workers of one lane do not count toward the other's warm ones.
    busy = [lw("b1", "pipecat", WorkerState.BUSY), lw("b2", "pipecat", WorkerState.BUSY), lw("e1", "builtin")]
    assert reconcile(TWO, busy, {}, NOW) == [Spawn(1, "builtin"), Spawn(2, "pipecat")]


def test_a_lane_the_profiles_no_longer_need_keeps_no_idle_worker() -> None:
    builtin_only = Desired(min_idle=1, max_workers=4, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10)
    workers = [lw("p1", "pipecat", started=1), lw("p2", "pipecat", WorkerState.BUSY), lw("e1", "builtin")]
    assert reconcile(builtin_only, workers, {}, NOW) == [Retire("p1", "more idle than min_idle")]


def test_surplus_is_judged_per_lane() -> None:
    workers = [lw("e1", "builtin", started=1), lw("e2", "builtin", started=2), lw("e3", "builtin", started=3),
               lw("p1", "pipecat", started=4), lw("p2", "pipecat", started=5)]
    assert reconcile(TWO, workers, {}, NOW) == [Retire("e1", "more idle than min_idle")]


def test_when_max_workers_cannot_hold_every_lanes_min_idle_it_is_shared() -> None:
    tight = Desired(min_idle=2, max_workers=3, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10,
                    lanes=("builtin", "pipecat"))
    assert tight.idle_targets() == {"builtin": 2, "pipecat": 1}
    assert reconcile(tight, [], {}, NOW) == [Spawn(2, "builtin"), Spawn(1, "pipecat")]
    one = Desired(min_idle=1, max_workers=1, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10,
                  lanes=("builtin", "pipecat"))
    assert one.idle_targets() == {"builtin": 1, "pipecat": 0}
    assert reconcile(one, [lw("e1", "builtin")], {}, NOW) == []


def test_one_lanes_boot_failures_do_not_hold_back_the_other() -> None:
    failing = {"pipecat": BootHistory(failures=3, last_failure_at=NOW - 1.0)}
    assert reconcile(TWO, [], failing, NOW) == [Spawn(2, "builtin")]
    assert reconcile(TWO, [], failing, NOW + 1.5) == [Spawn(2, "builtin"), Spawn(1, "pipecat")]


def test_shrinking_below_the_busy_count_retires_idle_of_any_lane_oldest_first() -> None:
    small = Desired(min_idle=1, max_workers=2, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10,
                    lanes=("builtin", "pipecat"))
    workers = [lw("e1", "builtin", started=5), lw("p1", "pipecat", started=3), lw("b", "pipecat", WorkerState.BUSY),
               lw("b2", "builtin", WorkerState.BUSY)]
    assert reconcile(small, workers, {}, NOW) == [Retire("p1", "pool shrinking"), Retire("e1", "pool shrinking")]


def test_a_lane_short_of_its_warm_target_keeps_every_idle_worker_and_grows() -> None:
    big = Desired(min_idle=10, max_workers=12, memory_limit_mb=200, ping_timeout_s=5, start_timeout_s=10,
                  lanes=("pipecat",))
    for have in range(1, 10):
        idle = [lw(f"p{i}", "pipecat", started=i) for i in range(have)]
        assert reconcile(big, idle, {}, NOW) == [Spawn(10 - have, "pipecat")], have
