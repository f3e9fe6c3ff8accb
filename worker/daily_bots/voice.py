"""Daily Bots' voice profiles as Pipecat bots: ``voice_2024_10``, ``voice_2024_08`` and
``natural_conversation_2024_11``.

    transport.input() → RTVI → [client functions] → STT → user aggregator → LLM → TTS → transport.output()
        → assistant aggregator

``"stt": "daily"`` has no STT processor: the transport's own transcription (Daily's, the
sandbox's offline) turns the user's speech into the transcripts the user aggregator takes.
The voice profiles end a user turn after Silero VAD and a short silence; the natural
conversation profile asks Pipecat's Smart Turn v3 model (bundled, run locally).
"""

from __future__ import annotations

import asyncio
from typing import Any

from callfleet.providers import ServiceType
from worker.daily_bots import functions, keys, services
from worker.daily_bots.browser import browser_transport, from_browser, wire_browser
from worker.daily_bots.pipeline import (
    AUDIO_IN_RATE,
    BOT_NAME,
    BotPipeline,
    TurnTaking,
    assemble,
    conversation,
    daily_params,
    preload_services,
    run,
    tts_rate,
    wire_greeting,
)
from worker.daily_bots.request import BotRequest, RequestError, parse_request

NATURAL_PROFILES = frozenset({"natural_conversation_2024_11"})

preload_services((ServiceType.STT, ServiceType.LLM, ServiceType.TTS))


def turn_taking(profile: str) -> TurnTaking:
    return TurnTaking.SMART_TURN if profile in NATURAL_PROFILES else TurnTaking.SPEECH_TIMEOUT


def uses_daily_stt(request: BotRequest) -> bool:
    stt = request.service(ServiceType.STT)
    return stt is not None and stt.provider == "daily"


def build(request: BotRequest, transport: Any, *, idle_timeout_secs: float | None = None,
          middle_extra: Any = None) -> BotPipeline:
    """The STT → LLM → TTS pipeline the request names, over ``transport``, with the
    request's ``tools`` run by the session profile's handlers or the RTVI client.

    ``middle_extra`` (the vision profiles' camera processor) goes between the user
    aggregator and the LLM. Raises ``RequestError`` for a profile missing a service and
    ``ValueError`` (from the builders) naming a bad option or a handler that cannot load."""
    stt_req, llm_req, tts_req = (request.service(k) for k in (ServiceType.STT, ServiceType.LLM, ServiceType.TTS))
    if stt_req is None or llm_req is None or tts_req is None:
        raise RequestError(f"{request.profile}: needs an stt, an llm and a tts service")
    rate = tts_rate(request)
    stt = services.build_stt(stt_req.provider, stt_req.options, stt_req.api_key, sample_rate=AUDIO_IN_RATE)
    llm = services.build_llm(llm_req.provider, llm_req.options, llm_req.api_key)
    tts = services.build_tts(tts_req.provider, tts_req.options, tts_req.api_key, sample_rate=rate,
                             settings=tts_req.settings)
    calls = functions.prepare(request.tools)
    calls.register(llm)
    context, pair = conversation(request, turn=turn_taking(request.profile), functions=calls)
    middle = [stt, pair.user(), middle_extra, llm, tts]
    return assemble(request, transport, middle, context=context, pair=pair, audio_out_rate=rate,
                    services={ServiceType.STT: stt, ServiceType.LLM: llm, ServiceType.TTS: tts},
                    idle_timeout_secs=idle_timeout_secs, functions=calls)


async def bot(runner_args: Any) -> None:
    """Pipecat Cloud's entry point for a voice profile: one call per invocation."""
    from pipecat.transports.daily.transport import DailyTransport

    request = parse_request(runner_args.body, keys.current())
    if from_browser(runner_args):  # a browser over SmallWebRTC (transport "webrtc"), no room
        transport = browser_transport(runner_args, request, audio_out_rate=tts_rate(request))
    else:
        transport = DailyTransport(runner_args.room_url, runner_args.token, BOT_NAME,
                                   daily_params(request, audio_out_rate=tts_rate(request),
                                                daily_stt=uses_daily_stt(request)))
    # Off the loop: services and VAD/turn models load for a moment, and the worker answers pings meanwhile.
    built = await asyncio.to_thread(build, request, transport, idle_timeout_secs=runner_args.pipeline_idle_timeout_secs)
    (wire_browser if from_browser(runner_args) else wire_greeting)(built, transport)
    await run(built, runner_args)
