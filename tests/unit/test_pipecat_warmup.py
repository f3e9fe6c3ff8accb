"""A Pipecat worker's warm-up: one throwaway pipeline, run to its end before the worker says
Hello, leaving nothing behind; a warm-up that fails costs one warning, never the boot."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import structlog
from loguru import logger

pytest.importorskip("pipecat")

from pipecat.pipeline.worker import PipelineWorker  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from worker.pipecat_warmup import warm_up  # noqa: E402


def pipecat_logs_reach(sink: list[str]) -> bool:
    """Whether a line logged from a ``pipecat.*`` module reaches loguru's sinks."""
    handler = logger.add(sink.append, format="{message}")
    try:
        exec("logger.info('from pipecat')", {"__name__": "pipecat.probe", "logger": logger})
    finally:
        logger.remove(handler)
    return "from pipecat\n" in sink


async def test_the_warm_up_runs_a_pipeline_of_audio_to_its_end_and_leaves_nothing_running(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[PipelineWorker] = []
    init = PipelineWorker.__init__

    def spy(self: PipelineWorker, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(PipelineWorker, "__init__", spy)
    threads = threading.active_count()
    heard: list[str] = []
    handler = logger.add(heard.append, format="{name}")
    try:
        await warm_up()
    finally:
        logger.remove(handler)
    assert len(built) == 1 and built[0].has_finished()
    assert not [m for m in heard if m.startswith("pipecat")]  # the throwaway pipeline logged nothing
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert threading.active_count() == threads
    assert pipecat_logs_reach([])  # Pipecat's lines flow again for the sessions to come


async def test_a_warm_up_that_fails_is_one_warning_and_the_worker_boots_on(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: WorkerRunner) -> None:
        raise RuntimeError("no pipeline today")

    monkeypatch.setattr(WorkerRunner, "run", broken)
    with structlog.testing.capture_logs() as lines:
        await warm_up()  # returns: the boot goes on
    assert [(line["log_level"], line["event"], line["error"]) for line in lines] == [
        ("warning", "pipecat warm-up failed; the first session starts cold", "RuntimeError: no pipeline today")]
    assert pipecat_logs_reach([])
