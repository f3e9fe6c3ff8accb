"""A user's own Pipecat voice bot, as Pipecat's quickstart writes one: Deepgram STT, an OpenAI
LLM, OpenAI TTS, Silero VAD, its own ``DailyTransport`` named "Turn Tester", metrics on.
Nothing here knows callfleet; its services' URLs come in the request's ``body``
(``{"ai": "http://127.0.0.1:PORT/ai"}``, the sandbox's stand-ins)."""

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.runner.types import RunnerArguments
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.transports.daily.transport import DailyParams, DailyTransport
from pipecat.workers.runner import WorkerRunner

BOT_NAME = "Turn Tester"


async def bot(runner_args: RunnerArguments):
    ai = runner_args.body["ai"]
    transport = DailyTransport(runner_args.room_url, runner_args.token, BOT_NAME,
                               DailyParams(audio_in_enabled=True, audio_out_enabled=True))
    stt = DeepgramSTTService(api_key="sandbox", base_url=f"{ai}/deepgram")
    llm = OpenAILLMService(api_key="sandbox", base_url=f"{ai}/openai/v1", model="llm-voice-bot")
    tts = OpenAITTSService(api_key="sandbox", base_url=f"{ai}/openai/v1", model="tts-voice-bot")
    context = LLMContext(messages=[{"role": "system", "content": "Be brief."}])
    pair = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer()))
    pipeline = Pipeline([transport.input(), stt, pair.user(), llm, tts, transport.output(), pair.assistant()])
    worker = PipelineWorker(pipeline, params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
                            idle_timeout_secs=runner_args.pipeline_idle_timeout_secs)

    @transport.event_handler("on_first_participant_joined")
    async def on_first_participant_joined(transport, participant):
        context.add_message({"role": "user", "content": "Say hello."})
        await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_participant_left")
    async def on_participant_left(transport, participant, reason):
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)
    await runner.run()
