"""``POST …/openai/v1/audio/speech`` and ``…/audio/transcriptions``: the stand-in TTS and
Whisper-style STT in OpenAI's wire format.

Speech is raw 16-bit mono PCM (``response_format`` ``pcm``, what Pipecat's
OpenAITTSService asks for) at OpenAI's 24 kHz, or at the body's ``sample_rate`` where a
client sends one; ``speed`` is honoured. A transcription is the next text of the transcript
script when the uploaded WAV holds speech by the stand-in's level detector, and empty when
it is silence (a file that is not a PCM WAV is taken to hold speech: it cannot be measured).
"""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np
from aiohttp import web

from sandbox.ai.errors import json_object, openai_error
from sandbox.ai.state import AI
from sandbox.ai.synthesis import SynthesisError, synthesize
from sandbox.ai.vad import has_speech

OPENAI_RATE = 24000
TRANSCRIPTION_FORMATS = ("json", "text", "verbose_json")


async def speech(request: web.Request) -> web.StreamResponse:
    body = await json_object(request)
    request.app[AI].log.record(request, body if isinstance(body, dict) else None)
    if isinstance(body, web.Response):
        return body
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        return openai_error(400, "input must be a non-empty string", "input")
    if body.get("response_format", "pcm") != "pcm":
        return openai_error(400, "the sandbox's stand-in speaks only response_format 'pcm'", "response_format")
    try:
        rate = int(body.get("sample_rate") or OPENAI_RATE)
        speed = float(body.get("speed") or 1.0)
    except (TypeError, ValueError):
        return openai_error(400, "sample_rate and speed must be numbers")
    if not 8000 <= rate <= 48000 or not 0.25 <= speed <= 4.0:
        return openai_error(400, "sample_rate must be 8000-48000 and speed 0.25-4.0")
    try:
        pcm = await synthesize(text, rate, speed)
    except SynthesisError as exc:
        return openai_error(500, str(exc))
    return web.Response(body=pcm, content_type="audio/pcm")


async def transcriptions(request: web.Request) -> web.Response:
    ai = request.app[AI]
    if not request.content_type.startswith("multipart/"):
        ai.log.record(request, None)
        return openai_error(400, "transcriptions take multipart/form-data with a file")
    form = await request.post()
    upload = form.get("file")
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    if isinstance(upload, web.FileField):
        audio = upload.file.read()
        fields["file"] = {"filename": upload.filename, "content_type": upload.content_type, "bytes": len(audio)}
    ai.log.record(request, fields)
    if not isinstance(upload, web.FileField):
        return openai_error(400, "file is required", "file")
    response_format = fields.get("response_format", "json")
    if response_format not in TRANSCRIPTION_FORMATS:
        return openai_error(400, f"response_format must be one of {', '.join(TRANSCRIPTION_FORMATS)}",
                            "response_format")
    spoken, seconds = _measure(audio)
    text = ai.script.take() if spoken else ""
    if response_format == "text":
        return web.Response(text=text)
    if response_format == "verbose_json":
        return web.json_response({"task": "transcribe", "language": fields.get("language") or "english",
                                  "duration": seconds, "text": text,
                                  "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": text,
                                                "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
                                                "compression_ratio": 1.0, "no_speech_prob": 0.0}] if text else []})
    return web.json_response({"text": text})


def _measure(audio: bytes) -> tuple[bool, float]:
    """(holds speech, seconds) of an upload; a file that is not a 16-bit PCM WAV counts as speech."""
    try:
        with wave.open(io.BytesIO(audio), "rb") as w:
            if w.getsampwidth() != 2:
                return True, 0.0
            rate, channels = w.getframerate(), w.getnchannels()
            pcm = w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        return True, 0.0
    mono = pcm if channels == 1 else _first_channel(pcm, channels)
    return has_speech(mono, rate), len(mono) / 2 / rate


def _first_channel(pcm: bytes, channels: int) -> bytes:
    return np.frombuffer(pcm, dtype="<i2").reshape(-1, channels)[:, 0].tobytes()
