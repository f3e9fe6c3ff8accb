"""The pool's one decision step: desired state and observed workers in, actions out.

Pure and synchronous (gunicorn's ``manage_workers``): the runner observes processes and
carries the actions out; this only decides. It keeps ``min_idle`` workers warm, never lets
the pool exceed ``max_workers``, kills workers that miss their handshake or pings, retires
workers over their memory limit (after their session; at once if far over), shrinks
without touching busy workers, and spaces out spawns after boot failures so a broken
environment is not a crash loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from callfleet.backoff import Backoff


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


@dataclass(frozen=True)
class WorkerView:
    id: str
    state: WorkerState
    started_at: float
    last_heard: float
    booted: bool  # said Hello (a RESERVED worker may still be booting)
    pss_mb: float | None = None
    retire_after_session: bool = False


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


def reconcile(desired: Desired, workers: list[WorkerView], boot: BootHistory, now: float) -> list[Action]:
    """The actions that bring ``workers`` towards ``desired`` at ``now`` (monotonic)."""
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
    idle = [w for w in live if w.state == WorkerState.IDLE]
    spare = idle + [w for w in live if w.state == WorkerState.BOOTING]  # booting ones become idle

    if desired.draining:
        actions.extend(Retire(w.id, "draining") for w in idle)
        return actions

    # Shrink: beyond max_workers, or more idle than wanted. Oldest idle go first.
    surplus = max(len(live) - desired.max_workers, len(idle) - desired.min_idle, 0)
    for w in sorted(idle, key=lambda w: w.started_at)[:surplus]:
        actions.append(Retire(w.id, "pool shrinking" if len(live) > desired.max_workers else "more idle than min_idle"))
    if surplus:
        return actions

    # Grow to min_idle warm, within max_workers -- retiring processes still count, so the
    # number of processes never exceeds it -- unless boot failures say wait.
    retiring = sum(1 for w in workers if w.state == WorkerState.RETIRING and w.id not in gone)
    want = min(desired.min_idle - len(spare), desired.max_workers - len(live) - retiring)
    if want > 0 and now >= boot.next_spawn_at():
        actions.append(Spawn(want if boot.failures == 0 else 1))  # one probe after failures
    return actions
