"""Daily Bots' vision profiles as Pipecat bots: ``vision_2024_10`` and ``vision_2024_08``.

The voice pipeline, plus the user's camera: the transport subscribes to each user's camera
at one frame a second, and ``CameraContext`` (between the user aggregator and the LLM) adds
the latest frame to the context of each user turn, so a vision-capable LLM (Claude 3.5,
GPT-4o, Llama 3.2 Vision, Gemini) sees what the user shows while they speak.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.frames.frames import Frame, LLMContextFrame, UserImageRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from worker.daily_bots import keys, voice
from worker.daily_bots.pipeline import BOT_NAME, BotPipeline, daily_params, run, tts_rate, wire_greeting
from worker.daily_bots.request import BotRequest, parse_request


class CameraContext(FrameProcessor):
    """Keeps the user's latest camera frame and puts it in the context of the next turn.

    Camera frames stop here: they reach the LLM only through the context, once per turn."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latest: UserImageRawFrame | None = None
        self._fresh = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, UserImageRawFrame) and direction is FrameDirection.DOWNSTREAM:
            self.latest, self._fresh = frame, True
            return
        if isinstance(frame, LLMContextFrame) and self._fresh and self.latest is not None:
            image = self.latest
            self._fresh = False  # one frame per turn: a still camera must not grow the context every turn
            await frame.context.add_image_frame_message(format=image.format or "RGB", size=image.size,
                                                        image=image.image, text="The user's camera, now.")
        await self.push_frame(frame, direction)


def build(request: BotRequest, transport: Any, *, idle_timeout_secs: float | None = None) -> BotPipeline:
    """The voice pipeline with ``CameraContext`` before the LLM; raises as ``voice.build``."""
    return voice.build(request, transport, idle_timeout_secs=idle_timeout_secs, middle_extra=CameraContext())


async def bot(runner_args: Any) -> None:
    """Pipecat Cloud's entry point for a vision profile: one call per invocation."""
    from pipecat.transports.daily.transport import DailyTransport

    request = parse_request(runner_args.body, keys.current())
    transport = DailyTransport(runner_args.room_url, runner_args.token, BOT_NAME,
                               daily_params(request, audio_out_rate=tts_rate(request), video_in=True,
                                            daily_stt=voice.uses_daily_stt(request)))
    built = await asyncio.to_thread(build, request, transport, idle_timeout_secs=runner_args.pipeline_idle_timeout_secs)
    wire_greeting(built, transport)
    await run(built, runner_args)
