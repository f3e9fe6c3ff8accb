"""Daily Bots' ``openai_realtime_beta_2024_10`` as a Pipecat bot: speech to speech with
Pipecat's OpenAI Realtime service.

    transport.input() → RTVI → user aggregator → OpenAI Realtime → transport.output() → assistant aggregator

The service hears the user's audio, takes turns itself (server-side VAD) and speaks at
24 kHz; the aggregator pair (in Pipecat's realtime mode) keeps the context holding
``initial_messages`` and advertises the request's ``tools``, run as the voice profiles run
them (``worker.daily_bots.functions``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from callfleet.providers import ServiceType
from worker.daily_bots import functions, keys, services
from worker.daily_bots.browser import browser_transport, from_browser, wire_browser
from worker.daily_bots.pipeline import (
    BOT_NAME,
    BotPipeline,
    assemble,
    conversation,
    daily_params,
    preload_services,
    run,
    wire_greeting,
)
from worker.daily_bots.request import BotRequest, RequestError, parse_request

REALTIME_RATE = 24000  # OpenAI Realtime's PCM16 output rate

preload_services((ServiceType.S2S,))


def build(request: BotRequest, transport: Any, *, idle_timeout_secs: float | None = None) -> BotPipeline:
    """The speech-to-speech pipeline; raises ``RequestError`` without an s2s service and
    ``ValueError`` (from the builder) naming a bad option."""
    s2s_req = request.service(ServiceType.S2S)
    if s2s_req is None:
        raise RequestError(f"{request.profile}: needs a speech-to-speech service (services.llm)")
    s2s = services.build_s2s(s2s_req.provider, s2s_req.options, s2s_req.api_key)
    calls = functions.prepare(request.tools)
    calls.register(s2s)
    context, pair = conversation(request, turn=None, functions=calls)
    return assemble(request, transport, [pair.user(), s2s], context=context, pair=pair, audio_out_rate=REALTIME_RATE,
                    services={ServiceType.S2S: s2s}, idle_timeout_secs=idle_timeout_secs, functions=calls)


async def bot(runner_args: Any) -> None:
    """Pipecat Cloud's entry point for the realtime profile: one call per invocation."""
    from pipecat.transports.daily.transport import DailyTransport

    request = parse_request(runner_args.body, keys.current())
    if from_browser(runner_args):  # a browser over SmallWebRTC (transport "webrtc"), no room
        transport = browser_transport(runner_args, request, audio_out_rate=REALTIME_RATE)
    else:
        transport = DailyTransport(runner_args.room_url, runner_args.token, BOT_NAME,
                                   daily_params(request, audio_out_rate=REALTIME_RATE))
    built = await asyncio.to_thread(build, request, transport, idle_timeout_secs=runner_args.pipeline_idle_timeout_secs)
    (wire_browser if from_browser(runner_args) else wire_greeting)(built, transport)
    await run(built, runner_args)
