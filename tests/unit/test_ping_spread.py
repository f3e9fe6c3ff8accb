"""The supervisor's liveness pings are spread over the interval: every welcomed worker is
pinged once per interval at its own fixed phase, never every worker in the same instant.

A recording router stands in for the ZeroMQ one (``tell`` is all the ping loop uses); the
pings are told apart by their ``seq``, one per instant the loop sends at, so nothing here
depends on how fast the machine runs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from typing import Any

from protocol.messages import Ping
from supervisor.pool import liveness
from supervisor.pool.liveness import PING_SLOTS, ping_forever, ping_slot
from supervisor.pool.reconcile import WorkerState
from supervisor.pool.workers import WorkerHandle


class RecordingRouter:
    def __init__(self) -> None:
        self.pings: dict[str, list[int]] = defaultdict(list)  # worker id -> the seqs it got

    def tell(self, handle: WorkerHandle, msg: Any) -> bool:
        assert isinstance(msg, Ping)
        self.pings[handle.id].append(msg.seq)
        return True


async def _ping_for(workers: dict[str, WorkerHandle], rounds: int) -> RecordingRouter:
    router = RecordingRouter()
    task = asyncio.create_task(ping_forever(workers, router, lambda: 0.016))  # type: ignore[arg-type]
    while not router.pings or max(max(s) for s in router.pings.values()) < rounds * PING_SLOTS:
        await asyncio.sleep(0.005)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return router


def _worker(wid: str, *, booted: bool = True, state: WorkerState = WorkerState.IDLE) -> WorkerHandle:
    return WorkerHandle(wid, None, state=state, booted=booted)


async def test_each_worker_is_pinged_once_per_interval_at_its_own_phase() -> None:
    workers = {f"w{i}-ab12": _worker(f"w{i}-ab12") for i in range(40)}
    router = await _ping_for(workers, rounds=3)
    for wid, seqs in router.pings.items():
        assert len(seqs) >= 2 and all(b - a == PING_SLOTS for a, b in itertools.pairwise(seqs)), (wid, seqs)
        assert (seqs[0] - 1) % PING_SLOTS == ping_slot(wid)
    assert set(router.pings) == set(workers)


async def test_the_pings_of_one_interval_go_out_at_several_instants() -> None:
    workers = {f"w{i}-cd34": _worker(f"w{i}-cd34") for i in range(40)}
    router = await _ping_for(workers, rounds=1)
    instants = {seqs[0] for seqs in router.pings.values()}
    assert len(instants) > PING_SLOTS // 2  # 40 workers over 16 instants, not one burst


async def test_workers_not_welcomed_or_dead_are_not_pinged() -> None:
    workers = {"w1-ef56": _worker("w1-ef56"), "w2-ef56": _worker("w2-ef56", booted=False),
               "w3-ef56": _worker("w3-ef56", state=WorkerState.DEAD)}
    router = await _ping_for(workers, rounds=2)
    assert set(router.pings) == {"w1-ef56"}


def test_a_workers_phase_is_fixed_and_within_the_interval() -> None:
    assert ping_slot("w7-0a0b") == ping_slot("w7-0a0b")
    assert {ping_slot(f"w{i}-0a0b") for i in range(200)} == set(range(liveness.PING_SLOTS))
