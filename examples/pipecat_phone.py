"""A Pipecat voice bot for a Daily room or a phone call, written the way Pipecat's
telephony examples are: ``create_transport`` picks the transport from the runner's
arguments and the call's first messages (Daily, or Twilio's Media Streams).

    transport.input() → Deepgram STT → user aggregator → OpenAI LLM → OpenAI TTS → transport.output()
        → assistant aggregator

It greets when the caller connects (or joins the room) and ends when they hang up (or
leave). Its services are configured from the environment: ``DEEPGRAM_API_KEY``,
``OPENAI_API_KEY``, and, to reach a Deepgram- or OpenAI-compatible server instead of the
providers (callfleet's sandbox stand-ins at ``http://HOST:PORT/ai``), ``DEEPGRAM_BASE_URL``
(``…/ai/deepgram``) and ``OPENAI_BASE_URL`` (``…/ai/openai/v1``). On a Twilio call,
Pipecat's ``TwilioFrameSerializer`` hangs up with ``TWILIO_ACCOUNT_SID`` and
``TWILIO_AUTH_TOKEN``.

Nothing here knows callfleet. Run it with Pipecat's development runner
(``python -m pipecat.runner.run``), on Pipecat Cloud, or in callfleet's workers with a
profile (``configs/profiles.toml``), its variables given as the profile's ``secrets``:

    [profiles.pipecat_phone]
    kind = "pipecat"
    bot = "examples/pipecat_phone.py:bot"
    secrets = ["DEEPGRAM_API_KEY", "DEEPGRAM_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
               "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]

then a Daily room from ``POST /start``, a phone call from ``POST /start`` with
``"transport": "websocket"`` or from Twilio's webhook with ``[telephony] twilio_profile``.
"""

import os

from loguru import logger
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.base_transport import BaseTransport
from pipecat.transports.daily.transport import DailyParams
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from pipecat.workers.runner import WorkerRunner

SYSTEM_PROMPT = ("You are a friendly assistant on a phone call. Your output is spoken aloud: "
                 "keep it short and plain, no lists or symbols.")

# create_transport builds the transport of the runner's arguments with these parameters;
# for a phone call it adds the provider's serializer (Twilio's) itself.
transport_params = {
    "daily": lambda: DailyParams(audio_in_enabled=True, audio_out_enabled=True),
    "twilio": lambda: FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True),
}


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments):
    # Imported here, not at the top: a host that checks this module imports (callfleet's
    # supervisor at start-up) then needs only pipecat-ai[daily,websocket]; the services'
    # extras (pipecat-ai[deepgram,openai,silero]) are needed when a call runs.
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.services.deepgram.stt import DeepgramSTTService
    from pipecat.services.openai.llm import OpenAILLMService
    from pipecat.services.openai.tts import OpenAITTSService

    stt = DeepgramSTTService(api_key=os.getenv("DEEPGRAM_API_KEY"), base_url=os.getenv("DEEPGRAM_BASE_URL", ""))
    llm = OpenAILLMService(api_key=os.getenv("OPENAI_API_KEY"), base_url=os.getenv("OPENAI_BASE_URL"))
    tts = OpenAITTSService(api_key=os.getenv("OPENAI_API_KEY"), base_url=os.getenv("OPENAI_BASE_URL"))

    context = LLMContext([{"role": "system", "content": SYSTEM_PROMPT}])
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer()))

    pipeline = Pipeline([
        transport.input(),
        stt,
        aggregators.user(),
        llm,
        tts,
        transport.output(),
        aggregators.assistant(),
    ])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(enable_metrics=True),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
    )

    # A phone call: its stream connected; a Daily room: a participant joined (Daily's alias).
    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport, client):
        logger.info("Caller connected: greeting")
        context.add_message({"role": "user", "content": "Say hello and introduce yourself."})
        await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, client):
        logger.info("Caller hung up (or left)")
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)
    await runner.run()


async def bot(runner_args: RunnerArguments):
    """Pipecat Cloud's entry point: one call (or room) per invocation."""
    transport = await create_transport(runner_args, transport_params)
    await run_bot(transport, runner_args)
