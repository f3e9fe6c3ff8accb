"""A Pipecat Cloud-style bot for the session-logs tests: it echoes in its own
``DailyTransport`` and logs with loguru, as a user's bot does.

On start it logs, through loguru, a line naming its session, and a line holding the secret
its profile gave it (``$LOGGING_BOT_SECRET``), which must never reach any log, then, when its
body asks (``{"lines": N}``), N lines ``line 0`` ... ``line N-1``; ``{"forge": SESSION_ID}``
makes it log ``forged line`` naming another session, as a bot trying to write into someone
else's log would. Pipecat's own
transport logs its join ("Joining ...") and, once the session is stopped, its leave
("Leaving ...", "Left ...").
"""

from __future__ import annotations

import os
from typing import Any

import structlog
from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.transports.daily.transport import DailyParams, DailyTransport
from pipecat.workers.runner import WorkerRunner

SECRET_ENV = "LOGGING_BOT_SECRET"
SAMPLE_RATE = 16000


class Echo(FrameProcessor):
    async def process_frame(self, frame: Any, direction: Any) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                        num_channels=frame.num_channels)
        await self.push_frame(frame, direction)


async def bot(runner_args: RunnerArguments) -> None:
    logger.info(f"logging bot started for session {runner_args.session_id}")
    logger.info(f"my key is {os.environ.get(SECRET_ENV, '')}")
    body = runner_args.body or {}
    for n in range(int(body.get("lines", 0))):
        logger.info(f"line {n}")
    if body.get("forge"):
        structlog.get_logger("bot").info("forged line", session_id=body["forge"])
    transport = DailyTransport(runner_args.room_url, runner_args.token, "Logging bot",
                               DailyParams(audio_in_enabled=True, audio_out_enabled=True))
    worker = PipelineWorker(Pipeline([transport.input(), Echo(), transport.output()]),
                            params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE))

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
