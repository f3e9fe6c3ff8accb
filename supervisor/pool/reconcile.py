"""The pool's one decision step: desired state and observed workers in, actions out.

Pure and synchronous (gunicorn's ``manage_workers``): the runner observes processes and
carries the actions out; this only decides. It keeps each lane's ``min_idle`` workers warm
(``supervisor.pool.lanes``), never lets the pool exceed ``max_workers``, kills workers that
miss their handshake or pings, retires workers over their memory limit (after their session; at once if far over), shrinks
without touching busy workers, and spaces out spawns after boot failures so a broken
environment is not a crash loop.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from callfleet.backoff import Backoff
from supervisor.pool.lanes import BUILTIN, idle_targets


class WorkerState(enum.Enum):
    BOOTING = "booting"  # started, no Hello yet
    IDLE = "idle"  # welcomed, free
    RESERVED = "reserved"  # promised to a session (booting or idle when promised)
    BUSY = "busy"  # hosting a session
    RETIRING = "retiring"  # Shutdown sent, waiting for it to exit
    DEAD = "dead"


ALIVE = {WorkerState.BOOTING, WorkerState.IDLE, WorkerState.RESERVED, WorkerState.BUSY, WorkerState.RETIRING}

FAR_OVER_MEMORY = 1.5  # killed outright beyond this multiple of the limit


@dataclass(frozen=True)
class Desired:
    min_idle: int
    max_workers: int
    memory_limit_mb: float
    ping_timeout_s: float
    start_timeout_s: float
    draining: bool = False
    lanes: tuple[str, ...] = (BUILTIN,)  # the lanes the profiles need

    def idle_targets(self) -> dict[str, int]:
        """How many idle workers each lane keeps warm."""
        return idle_targets(self.min_idle, self.max_workers, self.lanes)


@dataclass(frozen=True)
class WorkerView:
    id: str
    state: WorkerState
    started_at: float
    last_heard: float
    booted: bool  # said Hello (a RESERVED worker may still be booting)
    pss_mb: float | None = None
    retire_after_session: bool = False
    lane: str = BUILTIN


@dataclass(frozen=True)
class BootHistory:
    """Consecutive boot failures and when the last one happened."""

    failures: int = 0
    last_failure_at: float = 0.0

    def next_spawn_at(self, base_s: float = 0.5, max_s: float = 30.0) -> float:
        """When the next spawn may start: at once with no failures, else after a back-off
        that doubles per failure (deterministic: the reconcile step stays pure)."""
        if self.failures == 0:
            return 0.0
        return self.last_failure_at + Backoff(base_s, max_s).delay(self.failures - 1)


@dataclass(frozen=True)
class Spawn:
    count: int
    lane: str = BUILTIN


@dataclass(frozen=True)
class Kill:
    worker_id: str
    reason: str


@dataclass(frozen=True)
class Retire:
    """Graceful: Shutdown now (the worker is idle)."""

    worker_id: str
    reason: str


@dataclass(frozen=True)
class RetireAfterSession:
    worker_id: str
    reason: str


Action = Spawn | Kill | Retire | RetireAfterSession


def reconcile(desired: Desired, workers: list[WorkerView], boot: Mapping[str, BootHistory],
              now: float) -> list[Action]:
    """The actions that bring ``workers`` towards ``desired`` at ``now`` (monotonic);
    ``boot`` holds each lane's boot failures (a lane missing from it has had none)."""
    actions: list[Action] = []
    gone: set[str] = set()

    for w in workers:
        if w.state not in ALIVE:
            continue
        if not w.booted and now - w.started_at > desired.start_timeout_s:
            actions.append(Kill(w.id, f"no Hello within {desired.start_timeout_s:g}s"))
            gone.add(w.id)
        elif w.booted and now - w.last_heard > desired.ping_timeout_s:
            actions.append(Kill(w.id, f"missed pings for {now - w.last_heard:.1f}s"))
            gone.add(w.id)
        elif w.pss_mb is not None and w.pss_mb > desired.memory_limit_mb:
            over = f"PSS {w.pss_mb:.0f} MB over the {desired.memory_limit_mb:g} MB limit"
            if w.pss_mb > desired.memory_limit_mb * FAR_OVER_MEMORY:
                actions.append(Kill(w.id, over + " (far over)"))
                gone.add(w.id)
            elif w.state == WorkerState.IDLE:
                actions.append(Retire(w.id, over))
                gone.add(w.id)
            elif w.state in (WorkerState.BUSY, WorkerState.RESERVED) and not w.retire_after_session:
                actions.append(RetireAfterSession(w.id, over))

    live = [w for w in workers if w.state in ALIVE and w.state != WorkerState.RETIRING and w.id not in gone]
    idle = sorted((w for w in live if w.state == WorkerState.IDLE), key=lambda w: w.started_at)

    if desired.draining:
        actions.extend(Retire(w.id, "draining") for w in idle)
        return actions

    # Shrink: more idle in a lane than it keeps warm (a lane no profile needs keeps none),
    # or beyond max_workers. Oldest idle go first.
    targets = desired.idle_targets()
    shrink: list[WorkerView] = []
    for lane in {w.lane for w in idle}:
        in_lane = [w for w in idle if w.lane == lane]
        shrink += in_lane[:max(len(in_lane) - targets.get(lane, 0), 0)]
    beyond_max = len(live) - desired.max_workers - len(shrink)
    chosen = {w.id for w in shrink}
    shrink += [w for w in idle if w.id not in chosen][:max(beyond_max, 0)]
    if shrink:
        why = "pool shrinking" if len(live) > desired.max_workers else "more idle than min_idle"
        actions.extend(Retire(w.id, why) for w in sorted(shrink, key=lambda w: w.started_at))
        return actions

    # Grow each lane to its warm target, within max_workers -- retiring processes still
    # count, so the number of processes never exceeds it -- unless its boot failures say wait.
    retiring = sum(1 for w in workers if w.state == WorkerState.RETIRING and w.id not in gone)
    room = desired.max_workers - len(live) - retiring
    for lane, target in targets.items():
        spare = sum(1 for w in live if w.lane == lane and w.state in (WorkerState.IDLE, WorkerState.BOOTING))
        want = min(target - spare, room)
        history = boot.get(lane, BootHistory())
        if want > 0 and now >= history.next_spawn_at():
            want = want if history.failures == 0 else 1  # one probe after failures
            actions.append(Spawn(want, lane))
            room -= want
    return actions
