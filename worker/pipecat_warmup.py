"""One throwaway Pipecat pipeline, run by a Pipecat worker as it boots, before it says Hello.

A worker forked from the preloaded forkserver has Pipecat imported but has never run it.
Its first pipeline pays for what a long-lived process such as Pipecat's runner pays once:
copy-on-write faults on the forkserver's pages the code touches (about 1,400 of them),
bytecode specialisation, first-use caches. Measured on a fork of the preloaded forkserver,
a two-processor pipeline run to its EndFrame took 13–25 ms the first time and 7–11 ms the
second, and a hosted Pipecat echo session joined about three times faster on a worker's
second session than on its first (README, "The price of isolation"). Running one pipeline
here moves that cost from the caller's start to the worker's boot, which no caller waits
for (the pool keeps ``min_idle`` workers booted ahead of them).

The pipeline has no transport, opens nothing and logs nothing; it must never keep a worker
from booting, so a failure or a timeout is one warning line and the boot goes on.
"""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger("worker.warmup")

TIMEOUT_S = 5.0
FRAMES = 25  # half a second of 20 ms frames: enough for the interpreter to specialise the hot path


async def warm_up() -> None:
    """Run one pipeline of audio frames to its end; never raises."""
    from loguru import logger

    logger.disable("pipecat")  # the throwaway pipeline's lines are nobody's session's
    try:
        await asyncio.wait_for(_run_once(), TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a warm-up that fails only costs the first session's speed
        log.warning("pipecat warm-up failed; the first session starts cold", error=f"{type(exc).__name__}: {exc}")
    finally:
        logger.enable("pipecat")


async def _run_once() -> None:
    from pipecat.frames.frames import EndFrame, InputAudioRawFrame, OutputAudioRawFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.transports.daily.transport import DailyParams
    from pipecat.workers.runner import WorkerRunner

    class Loopback(FrameProcessor):
        async def process_frame(self, frame: object, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)  # type: ignore[arg-type]
            if isinstance(frame, InputAudioRawFrame):
                frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                            num_channels=frame.num_channels)
            await self.push_frame(frame, direction)  # type: ignore[arg-type]

    DailyParams(audio_in_enabled=True, audio_out_enabled=True)  # the transports' settings model
    worker = PipelineWorker(Pipeline([Loopback(), Loopback()]),
                            params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000))
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    silence = b"\0" * 640
    await worker.queue_frames([*(InputAudioRawFrame(audio=silence, sample_rate=16000, num_channels=1)
                                 for _ in range(FRAMES)), EndFrame()])
    await runner.run()
