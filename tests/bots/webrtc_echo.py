"""A test bot written the way Pipecat's examples are: one ``bot`` that ``create_transport``
hands a Daily room or a browser's SmallWebRTC peer. It says back what it hears, and Silero's
VAD counts the speech it hears. It writes what happened to it, one JSON line per event, to
``$CALLFLEET_TEST_BOT_RECORD``:

* ``start``: its runner arguments' type, its body and session id;
* ``connected``: the browser's peer is up (``on_client_connected``);
* ``heard``: after each stretch of speech, how many so far, and how many audio frames;
* ``disconnected``: the browser went away; it cancels its pipeline, as Pipecat's examples do.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame, VADUserStoppedSpeakingFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.daily.transport import DailyParams
from pipecat.workers.runner import WorkerRunner

RECORD_ENV = "CALLFLEET_TEST_BOT_RECORD"
SAMPLE_RATE = 16000


def record(event: str, **data: Any) -> None:
    path = os.environ.get(RECORD_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, "pid": os.getpid(), **data}, default=str) + "\n")


class EchoAndCount(FrameProcessor):
    """What the bot hears becomes what it says; each stretch of speech the VAD ends is counted."""

    def __init__(self, session_id: str | None) -> None:
        super().__init__()
        self.session_id = session_id
        self.speech = 0
        self.frames = 0

    async def process_frame(self, frame: Any, direction: Any) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self.speech += 1
            record("heard", session_id=self.session_id, speech=self.speech, frames=self.frames)
        if isinstance(frame, InputAudioRawFrame):
            self.frames += 1
            frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                        num_channels=frame.num_channels)
        await self.push_frame(frame, direction)


TRANSPORTS = {
    "daily": lambda: DailyParams(audio_in_enabled=True, audio_out_enabled=True),
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True),
}


async def bot(runner_args: RunnerArguments) -> None:
    """Pipecat Cloud's entry point: one call per invocation."""
    record("start", session_id=runner_args.session_id, args=type(runner_args).__name__, body=runner_args.body)
    transport = await create_transport(runner_args, TRANSPORTS)
    echo = EchoAndCount(runner_args.session_id)
    pipeline = Pipeline([transport.input(), VADProcessor(vad_analyzer=SileroVADAnalyzer()), echo, transport.output()])
    worker = PipelineWorker(pipeline, params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE,
                                                            audio_out_sample_rate=SAMPLE_RATE))

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: Any, client: Any) -> None:
        record("connected", session_id=runner_args.session_id)

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: Any, client: Any) -> None:
        record("disconnected", session_id=runner_args.session_id, speech=echo.speech, frames=echo.frames)
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
