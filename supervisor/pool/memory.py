"""Every worker's memory, read off the loop.

RSS (a constant-time read) every ``PSS_INTERVAL_S``; PSS, which costs a walk of every
mapping, only when RSS is over the limit -- PSS never exceeds RSS, so below it the limit
cannot be crossed -- or every ``PSS_REFRESH_S`` for views. ``reconcile`` judges PSS
against the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from callfleet.procfs import memory_mb, rss_mb
from supervisor.pool.workers import WorkerHandle

PSS_INTERVAL_S = 5.0
PSS_REFRESH_S = 60.0  # a full PSS read of every worker, for ctl workers


async def sample_forever(workers: Mapping[str, WorkerHandle], limit_mb: Callable[[], float]) -> None:
    """Keep every welcomed worker's ``rss_mb`` and ``pss_mb`` current."""
    refreshed = 0.0
    while True:
        pids = {h.id: h.pid for h in workers.values() if h.pid and h.booted}
        if pids:
            now = time.monotonic()
            full = now - refreshed >= PSS_REFRESH_S
            if full:
                refreshed = now
            sampled = await asyncio.to_thread(sample, pids, limit_mb(), full)
            for wid, (pss, rss) in sampled.items():
                handle = workers.get(wid)
                if handle is not None:
                    handle.rss_mb = rss
                    # Below the limit in RSS, a stale PSS above it must not retire the worker.
                    handle.pss_mb = pss if pss is not None else (
                        None if handle.pss_mb is None else min(handle.pss_mb, rss))
        await asyncio.sleep(PSS_INTERVAL_S)


def sample(pids: Mapping[str, int | None], limit_mb: float, full: bool) -> dict[str, tuple[float | None, float]]:
    """wid -> (PSS or None when not read, RSS); a worker that is gone is left out."""
    out: dict[str, tuple[float | None, float]] = {}
    for wid, pid in pids.items():
        rss = rss_mb(pid) if pid else None
        if rss is None:
            continue
        pss: float | None = None
        if full or rss > limit_mb:
            mem = memory_mb(pid) if pid else None
            # Unreadable: a supervisor of another user without CAP_SYS_PTRACE (the container
            # image's) may not walk a worker's mappings. RSS, never below PSS, stands in.
            pss = mem[0] if mem is not None else rss
        out[wid] = (pss, rss)
    return out
