"""Daily Bots' vision profiles as Pipecat bots: ``vision_2024_10`` and ``vision_2024_08``.

The voice pipeline, plus the user's camera: the transport subscribes to each user's camera
at one frame a second, and ``CameraContext`` (between the user aggregator and the LLM) adds
the latest frame to the context of each user turn, so a vision-capable LLM (Claude 3.5,
GPT-4o, Llama 3.2 Vision, Gemini) sees what the user shows while they speak.

The context keeps the last ``MAX_IMAGES`` (4) of those frames and drops older ones, so a
long call's requests stay the same size (a frame is tens of kilobytes per request) and
never reach a provider's limit (Anthropic refuses a request with more than 100 images).
Daily Bots' tables have no option for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.frames.frames import Frame, LLMContextFrame, UserImageRawFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from worker.daily_bots import keys, voice
from worker.daily_bots.pipeline import BOT_NAME, BotPipeline, daily_params, run, tts_rate, wire_greeting
from worker.daily_bots.request import BotRequest, parse_request

MAX_IMAGES = 4  # camera frames the context keeps: the latest turns'
CAPTION = "The user's camera, now."


class CameraContext(FrameProcessor):
    """Keeps the user's latest camera frame and puts it in the context of the next turn;
    the context keeps its last ``max_images`` images.

    Camera frames stop here: they reach the LLM only through the context, once per turn."""

    def __init__(self, max_images: int = MAX_IMAGES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latest: UserImageRawFrame | None = None
        self._fresh = False
        self.max_images = max_images

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, UserImageRawFrame) and direction is FrameDirection.DOWNSTREAM:
            self.latest, self._fresh = frame, True
            return
        if isinstance(frame, LLMContextFrame) and self._fresh and self.latest is not None:
            image = self.latest
            self._fresh = False  # one frame per turn: a still camera must not grow the context every turn
            message = await LLMContext.create_image_message(format=image.format or "RGB", size=image.size,
                                                            image=image.image, text=CAPTION)
            frame.context.add_message(message)
            self._trim(frame.context)
        await self.push_frame(frame, direction)

    def _trim(self, context: LLMContext) -> None:
        """Keep the context's last ``max_images`` images: an older image leaves the context,
        and so does a message left with nothing but this processor's caption (by content,
        not identity: whatever rewrites the context, its images stay bounded)."""
        messages: list[Any] = list(context.get_messages())
        with_images = [i for i, m in enumerate(messages) if _images(m)]
        if len(with_images) <= self.max_images:
            return
        stale = set(with_images[:-self.max_images])
        kept = []
        for i, message in enumerate(messages):
            if i not in stale:
                kept.append(message)
                continue
            images = _images(message)
            rest = [part for part in message["content"] if not any(part is i for i in images)]
            if any(not (part.get("type") == "text" and part.get("text") == CAPTION) for part in rest):
                kept.append({**message, "content": rest})  # what else it said stays
        context.set_messages(kept)


def _images(message: Any) -> list[Any]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [part for part in content if isinstance(part, dict) and part.get("type") == "image_url"]


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
