"""What every Daily Bots profile shares: the transport's parameters, the conversation (an
``LLMContext`` holding ``initial_messages``, the request's ``tools`` and its aggregator
pair), RTVI (with the client's side of function calls, ``worker.daily_bots.functions``), who
speaks first, and running the pipeline until the call ends.

A profile module (``voice``, ``vision``, ``realtime``) assembles its processors from these
and from the builders of ``worker.daily_bots.services``; its ``bot(runner_args)`` is what
callfleet's ``kind = "pipecat"`` hosting calls.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.processors.frameworks.rtvi import RTVIObserverParams, RTVIProcessor
from pipecat.transports.daily.transport import DailyParams, DailyTranscriptionSettings
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from callfleet.providers import PROVIDERS, ServiceType, installed
from worker.daily_bots.functions import Functions
from worker.daily_bots.participants import HandoffMute, watch
from worker.daily_bots.request import BotRequest

BOT_NAME = "Daily Bot"
AUDIO_IN_RATE = 16000  # what STT services and Silero VAD take
DEFAULT_TTS_RATE = 24000  # Daily Bots' default for every TTS provider


def preload_services(kinds: Sequence[ServiceType]) -> list[str]:
    """Import the Pipecat service modules of every installed provider of these types.

    Profile modules call it at import, which callfleet does in the forkserver: a worker then
    builds its pipeline without importing SDKs on its loop (seconds, long enough to miss
    pings). A module that fails to import is left for the build to report; returns those."""
    failed = []
    for provider in PROVIDERS.values():
        if provider.kind not in kinds or provider.module is None:
            continue
        if provider.distribution and not installed(provider.distribution):
            continue
        try:
            importlib.import_module(provider.module)
        except Exception:  # an extra's own import error; the session naming it gets the error
            failed.append(provider.name)
    return failed


class TurnTaking(enum.Enum):
    """How the bot decides the user finished speaking."""

    SPEECH_TIMEOUT = "speech_timeout"  # Silero VAD, then a short silence (voice and vision profiles)
    SMART_TURN = "smart_turn"  # Silero VAD, then Pipecat's Smart Turn v3 model, bundled and local


def tts_rate(request: BotRequest) -> int:
    """The TTS output rate: the request's ``sample_rate`` (config over service_options).

    Raises ``ValueError`` naming the option when it is not a positive integer."""
    tts = request.service(ServiceType.TTS)
    rate = (tts.options.get("sample_rate") if tts else None) or DEFAULT_TTS_RATE
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"tts.sample_rate: expected a positive integer, got {rate!r}")
    return rate


def transcription_settings(request: BotRequest) -> DailyTranscriptionSettings:
    """Daily's own transcription (``"stt": "daily"``) configured from the STT options.

    Raises ``ValueError`` naming a bad option."""
    from worker.daily_bots.services import daily_transcription

    stt = request.service(ServiceType.STT)
    return DailyTranscriptionSettings(**daily_transcription(stt.options if stt else {}))


def daily_params(request: BotRequest, *, audio_out_rate: int, video_in: bool = False,
                 daily_stt: bool = False) -> DailyParams:
    """The DailyTransport's parameters: audio in at 16 kHz, out at the TTS rate, the room's
    transcription when the STT is ``"daily"``, the user's camera for the vision profiles."""
    params = DailyParams(audio_in_enabled=True, audio_in_sample_rate=AUDIO_IN_RATE, audio_out_enabled=True,
                         audio_out_sample_rate=audio_out_rate, transcription_enabled=daily_stt,
                         video_in_enabled=video_in)
    if daily_stt:
        params.transcription_settings = transcription_settings(request)
    if request.transport.get("enable_noise_cancellation"):
        params.audio_in_filter = noise_filter()
    if video_in:
        from pipecat.transports.base_transport import VideoInSourceParams

        # One frame a second is plenty for a model asked about what it sees once per turn.
        params.video_in_sources = {"camera": VideoInSourceParams(framerate=1)}
    return params


def noise_filter() -> Any:
    """``service_options.daily.enable_noise_cancellation``: Pipecat's RNNoise filter on the
    callers' audio (before VAD and STT). Raises ``ValueError`` when pipecat-ai[rnnoise] is
    missing (the filter would pass audio through untouched; the supervisor refuses first)."""
    if not installed("pyrnnoise"):
        raise ValueError("service_options.daily.enable_noise_cancellation: install pipecat-ai[rnnoise]")
    from pipecat.audio.filters.rnnoise_filter import RNNoiseFilter

    return RNNoiseFilter()


def turn_strategies(turn: TurnTaking) -> UserTurnStrategies:
    """The user turn strategies of a profile; neither downloads anything at run time."""
    if turn is TurnTaking.SMART_TURN:
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
        from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

        return UserTurnStrategies(stop=[TurnAnalyzerUserTurnStopStrategy(turn_analyzer=LocalSmartTurnAnalyzerV3())])
    from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy

    return UserTurnStrategies(stop=[SpeechTimeoutUserTurnStopStrategy()])


def conversation(request: BotRequest, *, turn: TurnTaking | None,
                 functions: Functions | None = None) -> tuple[LLMContext, LLMContextAggregatorPair]:
    """The LLM context seeded with ``initial_messages`` and advertising ``functions``' tools,
    and its user/assistant aggregators.

    ``turn`` None: the LLM service takes turns itself (speech-to-speech)."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.utils.types import NOT_GIVEN

    schema = functions.schema if functions is not None else None
    context = LLMContext(messages=[dict(m) for m in request.initial_messages],  # type: ignore[misc]
                         tools=schema if schema is not None else NOT_GIVEN)
    if turn is None:
        return context, LLMContextAggregatorPair(context)
    vad = SileroVADAnalyzer(params=VADParams(**request.vad))  # the RTVI client's vad params; Pipecat's defaults
    user = LLMUserAggregatorParams(vad_analyzer=vad, user_turn_strategies=turn_strategies(turn))
    return context, LLMContextAggregatorPair(context, user_params=user)


@dataclass
class BotPipeline:
    """A profile's built pipeline, with what the bot wires its events to."""

    processors: list[FrameProcessor]
    pipeline: Pipeline
    worker: PipelineWorker
    rtvi: RTVIProcessor
    context: LLMContext
    request: BotRequest
    services: dict[ServiceType, Any] = field(default_factory=dict)
    functions: Functions | None = None
    handoff: HandoffMute | None = None  # service_options.daily.mute_on_third_participant_join


def assemble(request: BotRequest, transport: Any, middle: Sequence[FrameProcessor | None], *,
             context: LLMContext, pair: LLMContextAggregatorPair, audio_out_rate: int,
             services: dict[ServiceType, Any], idle_timeout_secs: float | None = None,
             functions: Functions | None = None) -> BotPipeline:
    """``transport.input() → RTVI → [client functions] → middle (user aggregator … TTS) →
    transport.output() → assistant aggregator``, in a PipelineWorker whose RTVI observer
    reports to the client (the calls of ``functions`` the client runs, with their arguments).
    ``functions`` must already be registered with the LLM service."""
    rtvi = RTVIProcessor()
    observer_params = RTVIObserverParams()
    if functions is not None:
        observer_params.function_call_report_level = functions.report_levels()
    handoff = HandoffMute() if request.transport.get("mute_on_third_participant_join") else None
    processors = [transport.input(), *([handoff.inbound] if handoff else []), rtvi,
                  *(functions.processors() if functions is not None else []),
                  *(p for p in middle if p is not None), *([handoff.outbound] if handoff else []),
                  transport.output(), pair.assistant()]
    pipeline = Pipeline(processors)
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=AUDIO_IN_RATE, audio_out_sample_rate=audio_out_rate,
                              enable_metrics=True, enable_usage_metrics=True),  # the session's turn figures
        observers=[rtvi.create_rtvi_observer(params=observer_params)],
        idle_timeout_secs=idle_timeout_secs,
    )
    return BotPipeline(processors=processors, pipeline=pipeline, worker=worker, rtvi=rtvi, context=context,
                       request=request, services=services, functions=functions, handoff=handoff)


def greeter(bot: BotPipeline) -> Callable[[str], Awaitable[None]]:
    """The bot's one greeting, an LLM run over ``initial_messages`` (none without them): on
    the RTVI client's ``client-ready`` with ``run_on_config``; otherwise whoever wires the
    transport calls it when the caller arrives."""
    greeted = False

    async def greet(why: str) -> None:
        nonlocal greeted
        if greeted or not bot.request.initial_messages:
            return
        greeted = True
        logger.info(f"greeting ({why})")
        await bot.worker.queue_frames([LLMRunFrame()])

    @bot.rtvi.event_handler("on_client_ready")
    async def on_client_ready(rtvi: RTVIProcessor) -> None:
        if bot.request.run_on_config:
            await greet("client-ready")

    return greet


def wire_greeting(bot: BotPipeline, transport: Any) -> None:
    """Who speaks first: with ``run_on_config`` the bot answers the RTVI client's
    ``client-ready`` with an LLM run over ``initial_messages``; without it, it greets when
    the first participant joins. The call ends when the last participant leaves (one leaving
    while others remain does not end it), and a handoff mute mutes on a third participant
    (``worker.daily_bots.participants``)."""
    greet = greeter(bot)

    @transport.event_handler("on_first_participant_joined")
    async def on_first_participant_joined(transport: Any, participant: Any) -> None:
        if not bot.request.run_on_config:
            await greet("first participant joined")

    watch(transport, bot.worker.cancel, bot.handoff)


async def run(bot: BotPipeline, runner_args: Any) -> None:
    """Run the pipeline until the call ends or the session cancels the bot's task."""
    runner = WorkerRunner(handle_sigint=getattr(runner_args, "handle_sigint", False))
    await runner.add_workers(bot.worker)
    await runner.run()
