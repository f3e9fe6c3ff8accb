"""A Pipecat dial-in bot, written the way Pipecat's own dial-in examples are: the body is
a ``DailyDialinRequest``, and the transport forwards the waiting phone call with
``pinlessCallUpdate`` itself when Daily says the room's SIP endpoint is ready.

On callfleet, ``daily_api_key``/``daily_api_url`` are the session's own key for the
supervisor's Daily proxy, never the account's; the call is forwarded once whether the bot
or the supervisor asks first. Profile:

    [profiles.pipecat_dialin]
    kind = "pipecat"
    bot = "examples/pipecat_dialin.py:bot"

    [dialin]
    profile = "pipecat_dialin"
"""

from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import DailyDialinRequest, RunnerArguments
from pipecat.transports.daily.transport import DailyDialinSettings, DailyParams, DailyTransport
from pipecat.workers.runner import WorkerRunner

SAMPLE_RATE = 16000


class Echo(FrameProcessor):
    """What the caller says is played back (the output transport plays output audio only)."""

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                        num_channels=frame.num_channels)
        await self.push_frame(frame, direction)


async def bot(runner_args: RunnerArguments):
    request = DailyDialinRequest.model_validate(runner_args.body)
    logger.info(f"Incoming call from {request.dialin_settings.From} to {request.dialin_settings.To}")
    transport = DailyTransport(
        runner_args.room_url,
        runner_args.token,
        "Phone bot",
        DailyParams(
            api_key=request.daily_api_key,
            api_url=request.daily_api_url,
            dialin_settings=DailyDialinSettings(
                call_id=request.dialin_settings.call_id,
                call_domain=request.dialin_settings.call_domain,
            ),
            audio_in_enabled=True,
            audio_out_enabled=True,
        ),
    )
    pipeline = Pipeline([transport.input(), Echo(), transport.output()])  # the caller hears themself
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
    )

    @transport.event_handler("on_dialin_connected")
    async def on_dialin_connected(transport, data):
        logger.info(f"Dial-in connected: {data}")

    @transport.event_handler("on_participant_left")
    async def on_participant_left(transport, participant, reason):
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)
    await runner.run()
