"""A plain Pipecat Cloud-style bot: it hears each participant and says it back.

Nothing here knows callfleet. Run it on Pipecat Cloud, with Pipecat's development runner
(``python -m pipecat.runner.run``), or in callfleet's prewarmed workers with a profile:

    [profiles.pipecat_echo]
    kind = "pipecat"
    bot = "examples/pipecat_echo.py:bot"
"""

from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.transports.daily.transport import DailyParams, DailyTransport
from pipecat.workers.runner import WorkerRunner

SAMPLE_RATE = 16000


class Echo(FrameProcessor):
    """What the bot hears becomes what it says (the output transport plays output audio only)."""

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                        num_channels=frame.num_channels)
        await self.push_frame(frame, direction)


async def bot(runner_args: RunnerArguments):
    """Pipecat Cloud's entry point: one call per invocation."""
    transport = DailyTransport(
        runner_args.room_url,
        runner_args.token,
        "Echo bot",
        DailyParams(audio_in_enabled=True, audio_out_enabled=True),
    )
    pipeline = Pipeline([transport.input(), Echo(), transport.output()])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
    )

    @transport.event_handler("on_first_participant_joined")
    async def on_first_participant_joined(transport, participant):
        logger.info(f"Echoing {participant['id']} (session {runner_args.session_id}, body {runner_args.body})")

    @transport.event_handler("on_participant_left")
    async def on_participant_left(transport, participant, reason):
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)
    await runner.run()
