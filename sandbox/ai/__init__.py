"""Stand-in AI services for the sandbox: canned, deterministic replies in real providers'
wire formats, so a voice bot runs offline with Pipecat's own service classes.

``setup(app, prefix="/ai")`` adds, under ``prefix``:

- ``/openai/v1/chat/completions``: an OpenAI-compatible LLM (streamed or whole, function
  calls included) whose replies follow ``sandbox.ai.replies``: a greeting, "You said: …",
  a call of a tool the user names, "The result is: …" after it.
- ``/openai/v1/audio/speech``: OpenAI's TTS, 16-bit PCM at 24 kHz, spoken by espeak-ng
  when it is installed (Debian package ``espeak-ng``), else a speech-shaped signal.
- ``/openai/v1/audio/transcriptions``: OpenAI's (Whisper-style) STT.
- ``/deepgram/v1/listen``: Deepgram's live STT WebSocket.
- ``/script``: the transcript script, what the next utterances heard are transcribed as
  (``GET``, ``POST {"transcripts": [...], "append"?: bool}``; in Python
  ``StandIns.script.push(text)``). Unscripted speech is heard as "hello"; silence as nothing.
- ``/requests``: every request answered, with its body and ``Authorization``.

Pointing Pipecat (or a Daily Bots ``/bots/start`` body) at them, with the sandbox on
``http://127.0.0.1:PORT``; any non-empty key is accepted (``"sandbox"`` reads best), and
none is checked::

    OpenAILLMService(api_key="sandbox", base_url="http://127.0.0.1:PORT/ai/openai/v1")
    OpenAITTSService(api_key="sandbox", base_url="http://127.0.0.1:PORT/ai/openai/v1")
    OpenAISTTService(api_key="sandbox", base_url="http://127.0.0.1:PORT/ai/openai/v1")
    DeepgramSTTService(api_key="sandbox", base_url="http://127.0.0.1:PORT/ai/deepgram")

Deepgram's SDK derives its socket from that ``base_url`` (``ws://…/ai/deepgram/v1/listen``;
``ws://127.0.0.1:PORT/ai/deepgram`` works the same). In a Daily Bots body::

    "services": {"stt": "deepgram", "llm": "openai", "tts": "openai_tts"},
    "service_options": {
        "deepgram": {"base_url": "http://127.0.0.1:PORT/ai/deepgram", "api_key": "sandbox"},
        "openai": {"base_url": "http://127.0.0.1:PORT/ai/openai/v1", "api_key": "sandbox"},
        "openai_tts": {"base_url": "http://127.0.0.1:PORT/ai/openai/v1", "api_key": "sandbox"}}

(``custom_llm`` takes the same ``base_url`` as ``openai``.) The OpenAI client refuses to
start without a key, hence a dummy one even though the stand-ins ignore it.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.ai.deepgram import listen
from sandbox.ai.log_routes import get_requests
from sandbox.ai.openai_audio import speech, transcriptions
from sandbox.ai.openai_chat import chat_completions
from sandbox.ai.script_routes import get_script, set_script
from sandbox.ai.state import AI, StandIns

__all__ = ["AI", "StandIns", "setup"]


def setup(app: web.Application, prefix: str = "/ai") -> StandIns:
    """Add the stand-ins' routes under ``prefix`` to ``app`` (not yet started) and return their
    state, also kept as ``app[AI]``.

    Raises ``RuntimeError`` if ``app`` is already frozen (started)."""
    stand_ins = StandIns()
    app[AI] = stand_ins
    openai = f"{prefix}/openai/v1"
    app.router.add_post(f"{openai}/chat/completions", chat_completions)
    app.router.add_post(f"{openai}/audio/speech", speech)
    app.router.add_post(f"{openai}/audio/transcriptions", transcriptions)
    app.router.add_get(f"{prefix}/deepgram/v1/listen", listen)
    app.router.add_get(f"{prefix}/script", get_script)
    app.router.add_post(f"{prefix}/script", set_script)
    app.router.add_get(f"{prefix}/requests", get_requests)
    return stand_ins
