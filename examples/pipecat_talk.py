"""A Pipecat bot to talk to from a browser: it says back what it hears.

Written the way Pipecat's examples are, with ``create_transport``: one ``bot()`` serves a
browser over SmallWebRTC (``/talk?profile=pipecat_talk``, or ``POST /start`` with
``"transport": "webrtc"``) and a Daily room (``POST /start``). Run it on callfleet with

    [profiles.pipecat_talk]
    kind = "pipecat"
    bot = "examples/pipecat_talk.py:bot"

or unchanged under Pipecat's development runner (``python -m pipecat.runner.run``).
"""

from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.daily.transport import DailyParams
from pipecat.workers.runner import WorkerRunner

SAMPLE_RATE = 16000

# What each transport gets; SmallWebRTC itself is imported only when a browser connects.
TRANSPORTS = {
    "daily": lambda: DailyParams(audio_in_enabled=True, audio_out_enabled=True),
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True),
}


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
    transport = await create_transport(runner_args, TRANSPORTS)
    worker = PipelineWorker(
        Pipeline([transport.input(), Echo(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
    )

    @transport.event_handler("on_client_disconnected")  # the browser, or the room's caller, went away
    async def on_client_disconnected(transport, client):
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)
    await runner.run()
