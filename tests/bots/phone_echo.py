"""Test bots for phone calls, written the way Pipecat's telephony examples are: one ``bot``
that ``create_transport`` hands a Daily room or a phone WebSocket (Twilio, Telnyx, Plivo,
Exotel), echoing what it hears. Each writes what happened to it, one JSON line per event,
to ``$CALLFLEET_TEST_BOT_RECORD``.

* ``bot``: echoes; records ``start`` (its transport type, the call's data, its body) and
  ``disconnected`` (the caller hung up: it cancels its pipeline, as Pipecat's examples do).
  Its Twilio serializer hangs the call up through ``TWILIO_ACCOUNT_SID``/``TWILIO_AUTH_TOKEN``.
* ``bot_deaf``: reads the call's first message, then never reads again.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.daily.transport import DailyParams
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from pipecat.workers.runner import WorkerRunner

RECORD_ENV = "CALLFLEET_TEST_BOT_RECORD"
PHONE_RATE = 8000


def record(event: str, **data: Any) -> None:
    path = os.environ.get(RECORD_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, "pid": os.getpid(), **data}, default=str) + "\n")


class Echo(FrameProcessor):
    """What the bot hears becomes what it says."""

    async def process_frame(self, frame: Any, direction: Any) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                        num_channels=frame.num_channels)
        await self.push_frame(frame, direction)


def _phone_params() -> FastAPIWebsocketParams:
    return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True)


TRANSPORTS = {
    "daily": lambda: DailyParams(audio_in_enabled=True, audio_out_enabled=True),
    "twilio": _phone_params,
    "telnyx": _phone_params,
    "plivo": _phone_params,
    "exotel": _phone_params,
}


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, TRANSPORTS)
    call = runner_args.call_data
    record("start", session_id=runner_args.session_id, args=type(runner_args).__name__,
           transport_type=getattr(runner_args, "transport_type", None), body=runner_args.body,
           call_data=None if call is None else call.model_dump(by_alias=True))
    worker = PipelineWorker(Pipeline([transport.input(), Echo(), transport.output()]),
                            params=PipelineParams(audio_in_sample_rate=PHONE_RATE, audio_out_sample_rate=PHONE_RATE))

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: Any, client: Any) -> None:
        record("disconnected", session_id=runner_args.session_id)
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    try:
        await runner.run()
    finally:
        record("ended", session_id=runner_args.session_id)


async def bot_deaf(runner_args: Any) -> None:
    await runner_args.websocket.receive_text()
    record("start", session_id=runner_args.session_id)
    await asyncio.sleep(3600)
