"""A hosted bot's turn figures: what Pipecat measures in its pipeline, batched to the supervisor.

``TurnFigureObserver`` is a Pipecat observer (``worker.pipeline_hooks`` adds one to every
pipeline a session's bot builds). It reads each frame once, on its first push:

* ``MetricsFrame``s: TTFB and processing time per service (only when the pipeline runs
  with ``enable_metrics=True``), LLM tokens and TTS characters (``enable_usage_metrics=True``);
* voice-to-voice per turn, from Pipecat's own ``UserBotLatencyObserver`` (user stopped
  speaking -> bot started speaking), which needs no metrics switched on.

What it reads goes into a ``FigureBook``; ``FigureShipper`` sends what the book gathered as
one ``TurnFigures`` every few seconds and once more when the bot ends -- never per frame,
and never from the audio path (observers run in their own tasks).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import msgspec
from pipecat.frames.frames import MetricsFrame, VADUserStartedSpeakingFrame
from pipecat.metrics.metrics import (
    LLMUsageMetricsData,
    ProcessingMetricsData,
    STTUsageMetricsData,
    TTFBMetricsData,
    TTSUsageMetricsData,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.observers.user_bot_latency_observer import UserBotLatencyObserver
from pipecat.processors.frame_processor import FrameDirection

from protocol.messages import Turn, TurnFigures

SHIP_INTERVAL_S = 2.0
MAX_PENDING = 2000  # samples of each kind kept between batches; beyond that the oldest go
_INSTANCE = re.compile(r"#\d+$")


def service_name(processor: str) -> str:
    """``OpenAILLMService#0`` -> ``OpenAILLMService``: one name per service class, so a
    Prometheus label does not grow with every pipeline built."""
    return _INSTANCE.sub("", processor)


class FigureBook:
    """What one session's pipelines measured since the last batch (loop thread only)."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.ttfb: list[tuple[str, float]] = []
        self.processing: list[tuple[str, float]] = []
        self.usage: dict[str, float] = {}
        self._turn_ttfb: dict[str, float] = {}  # this turn's, until the bot answers it

    def user_started(self) -> None:
        self._turn_ttfb = {}

    def ttfb_measured(self, service: str, seconds: float) -> None:
        _bounded_append(self.ttfb, (service, seconds))
        self._turn_ttfb[service] = seconds

    def processing_measured(self, service: str, seconds: float) -> None:
        _bounded_append(self.processing, (service, seconds))

    def used(self, kind: str, amount: float) -> None:
        if amount:
            self.usage[kind] = self.usage.get(kind, 0) + amount

    def turn_answered(self, voice_to_voice_s: float) -> None:
        _bounded_append(self.turns, Turn(at=time.time(), voice_to_voice_s=voice_to_voice_s,
                                         ttfb_s=dict(self._turn_ttfb)))
        self._turn_ttfb = {}

    def take(self) -> TurnFigures | None:
        """Everything gathered since the last call, as one message (None: nothing new)."""
        if not (self.turns or self.ttfb or self.processing or self.usage):
            return None
        figures = TurnFigures(turns=self.turns, ttfb_s=self.ttfb, processing_s=self.processing, usage=self.usage)
        self.turns, self.ttfb, self.processing, self.usage = [], [], [], {}
        return figures


def _bounded_append(items: list[Any], item: Any) -> None:
    items.append(item)
    if len(items) > MAX_PENDING:
        del items[0]


class TurnFigureObserver(BaseObserver):
    """Reads a pipeline's metrics and turns into a ``FigureBook``."""

    def __init__(self, book: FigureBook) -> None:
        super().__init__(observe_every_push=False)
        self.book = book
        self._latency = UserBotLatencyObserver()
        self._latency.add_event_handler("on_latency_measured", self._latency_measured)

    async def setup(self, task_manager: Any) -> None:
        await super().setup(task_manager)
        await self._latency.setup(task_manager)

    async def cleanup(self) -> None:
        await self._latency.cleanup()
        await super().cleanup()

    async def on_pipeline_started(self) -> None:
        await self._latency.on_pipeline_started()

    async def _latency_measured(self, _observer: Any, latency_s: float) -> None:
        self.book.turn_answered(latency_s)

    async def on_push_frame(self, data: FramePushed) -> None:
        await self._latency.on_push_frame(data)
        if data.direction != FrameDirection.DOWNSTREAM:
            return
        frame = data.frame
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self.book.user_started()
        elif isinstance(frame, MetricsFrame):
            for item in frame.data:
                self._metric(item)

    def _metric(self, item: Any) -> None:
        book, name = self.book, service_name(item.processor)
        if isinstance(item, TTFBMetricsData):
            book.ttfb_measured(name, item.value)
        elif isinstance(item, ProcessingMetricsData):
            book.processing_measured(name, item.value)
        elif isinstance(item, LLMUsageMetricsData):
            usage = item.value
            book.used("llm_prompt_tokens", usage.prompt_tokens)
            book.used("llm_completion_tokens", usage.completion_tokens)
            book.used("llm_cache_read_tokens", usage.cache_read_input_tokens or 0)
            book.used("llm_reasoning_tokens", usage.reasoning_tokens or 0)
        elif isinstance(item, TTSUsageMetricsData):
            book.used("tts_characters", item.value)
        elif isinstance(item, STTUsageMetricsData):
            book.used("stt_audio_seconds", item.value.audio_seconds)


class FigureShipper:
    """Sends a session's ``FigureBook`` to the supervisor every ``SHIP_INTERVAL_S``."""

    def __init__(self, book: FigureBook, emit: Callable[[msgspec.Struct], None]) -> None:
        self.book = book
        self.emit = emit
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SHIP_INTERVAL_S)
            self.ship()

    def ship(self) -> None:
        figures = self.book.take()
        if figures is not None:
            self.emit(figures)

    def close(self) -> None:
        """Stop the timer and send what is left (before the bot's end is reported)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.ship()


def ride(carrier: BaseObserver, rider: BaseObserver) -> None:
    """``rider`` sees what ``carrier`` sees, called on ``carrier``'s own task.

    A pipeline hands each frame's first push to every observer through a queue and a task
    of the observer's own (``pipecat.pipeline.worker_observer``): one more observer is one
    more queue put and task wake-up for every audio frame, about 9 % of a Pipecat echo
    worker's loop time in a py-spy profile. Riding the turn tracking observer that every
    pipeline has (both see first pushes only) costs a call per frame instead."""
    push, started, setup, cleanup = carrier.on_push_frame, carrier.on_pipeline_started, carrier.setup, carrier.cleanup

    async def on_push_frame(data: FramePushed) -> None:
        await push(data)
        await rider.on_push_frame(data)

    async def on_pipeline_started() -> None:
        await started()
        await rider.on_pipeline_started()

    async def carrier_setup(task_manager: Any) -> None:
        await setup(task_manager)
        await rider.setup(task_manager)

    async def carrier_cleanup() -> None:
        await rider.cleanup()
        await cleanup()

    carrier.on_push_frame = on_push_frame  # type: ignore[method-assign]
    carrier.on_pipeline_started = on_pipeline_started  # type: ignore[method-assign]
    carrier.setup = carrier_setup  # type: ignore[method-assign]
    carrier.cleanup = carrier_cleanup  # type: ignore[method-assign]
