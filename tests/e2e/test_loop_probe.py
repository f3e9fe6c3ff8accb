"""The supervisor's loop lag probe, how the daemon reports it, and how the bench reads it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bench.main import LoopStallReader
from supervisor.loop_probe import LoopProbe
from tests.conftest import SandboxProcess
from tests.supervisor_harness import SupervisorProcess


async def test_a_callback_that_blocks_the_loop_shows_as_a_stall() -> None:
    probe = LoopProbe()
    probe.start()
    try:
        await asyncio.sleep(0.02)
        time.sleep(0.1)  # a sync call on the loop: the tick due inside it can only run after it
        await asyncio.sleep(0.02)
    finally:
        probe.stop()
    assert probe.max_ms >= 80  # a lower bound: the block is 100 ms, the next tick was due within 10 ms of its start
    assert probe.ticks >= 2


async def test_a_loop_that_waits_without_working_is_late_but_not_busy() -> None:
    probe = LoopProbe()
    probe.start()
    try:
        await asyncio.sleep(0.02)
        burnt_by = time.thread_time() + 0.1
        while time.thread_time() < burnt_by:  # the loop's own work: 100 ms of its thread's CPU
            pass
        await asyncio.sleep(0.02)
        busy_after_work = probe.busy_max_ms
        time.sleep(0.2)  # blocked without CPU, as when the machine's cores are taken by others
        await asyncio.sleep(0.02)
    finally:
        probe.stop()
    assert busy_after_work >= 80
    assert probe.max_ms >= 180  # the sleep shows as lateness...
    assert probe.busy_max_ms < probe.max_ms  # ...but not as the loop's own work


def test_recent_keeps_the_worst_lateness_of_each_second_and_forgets_old_seconds() -> None:
    probe = LoopProbe(history_s=2)
    probe.record(10.1, 0.001)
    probe.record(10.5, 0.020)
    probe.record(11.2, 0.003)
    assert probe.recent_ms() == [[10.0, 20.0], [11.0, 3.0]]
    probe.record(12.0, 0.002)
    assert probe.recent_ms() == [[11.0, 3.0], [12.0, 2.0]]
    assert probe.max_ms == 20.0  # since start: older seconds still count
    probe.record(12.5, 0.004, busy_s=0.003)
    assert probe.recent_busy_ms() == [[11.0, 0.0], [12.0, 3.0]]
    assert probe.busy_max_ms == 3.0


def test_the_bench_counts_only_the_seconds_that_overlap_its_window() -> None:
    reader = LoopStallReader(Path("/nonexistent"))
    reader.by_second = {9.0: 500.0, 10.0: 1.0, 11.0: 2.0, 12.0: 700.0}  # start-up stall before, teardown after
    assert reader.window_max(10.3, 11.6) == 2.0


def test_the_bench_reports_no_stall_figure_for_a_supervisor_without_the_probe() -> None:
    reader = LoopStallReader(Path("/nonexistent"))
    reader.available = False
    assert reader.window_max(10.0, 20.0) is None


async def test_status_and_metrics_report_the_supervisor_loop_stall(tmp_path: Path,
                                                                  sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port)
    sup.start()
    try:
        result = sup.ctl("--json", "status")
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        recent = status["loop_stall_ms_recent"]
        assert recent, "the probe has ticked since start-up"
        assert recent[-1][0] <= time.monotonic()  # whole seconds of this machine's monotonic clock
        # The worst since start-up covers every recent second's worst.
        assert status["loop_stall_ms_max"] >= max(worst for _, worst in recent), status
        http_status, metrics, _ = await sup.http("GET", "/metrics")
        assert http_status == 200
        (line,) = [line for line in metrics.splitlines() if line.startswith("callfleet_loop_stall_seconds_max ")]
        # The same reading in seconds, taken later: never below what status reported (in ms to 3 places).
        assert round(float(line.split()[-1]) * 1000, 3) >= status["loop_stall_ms_max"], (line, status)
    finally:
        sup.stop()
