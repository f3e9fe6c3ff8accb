"""A small OpenAI-compatible server on 127.0.0.1, started by the test that uses it.

It answers what Pipecat's OpenAI services call:

* ``POST /v1/chat/completions`` with ``"stream": true``: the reply as server-sent events
  (``data: {chunk}`` lines, one word each, then ``data: [DONE]``);
* ``POST /v1/audio/speech``: raw 16-bit mono PCM, a tone as long as the text deserves, at
  the body's ``sample_rate`` if it names one, else OpenAI's 24 kHz.

Given ``accept_key``, a request whose ``Authorization`` carries another key is answered
401 with OpenAI's error body, which quotes the key it was given (as providers do).

Every request is recorded (its messages or its input text, and when it arrived on this
machine's monotonic clock, which other processes share), so a test can check what the
bot sent and when; and every request's path and ``Authorization`` header, whatever it asked
for, so a test can check which key reached this server, if any.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from callfleet.audio import tone

SPEECH_RATE = 24000  # OpenAI's PCM output rate
SECONDS_PER_WORD = 0.15


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    at: float  # time.monotonic() when it arrived


@dataclass
class SpeechRequest:
    text: str
    model: str
    voice: str
    at: float


def text_of(message: dict[str, Any]) -> str:
    """A chat message's text, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def default_reply(messages: list[dict[str, Any]]) -> str:
    """A greeting for a conversation with no user turn yet, else a quote of the user's last turn."""
    users = [text_of(m) for m in messages if m.get("role") == "user"]
    if len(users) <= 1 and not any(m.get("role") == "assistant" for m in messages):
        return "Hello, I am Daily Bot."
    return f"You said {users[-1].strip().rstrip('.')}."


class FakeOpenAI:
    def __init__(self, reply: Callable[[list[dict[str, Any]]], str] = default_reply, tone_hz: float = 330.0,
                 accept_key: str | None = None) -> None:
        self.reply = reply
        self.tone_hz = tone_hz
        self.accept_key = accept_key
        self.refused: list[str] = []  # the keys answered 401
        self.chats: list[ChatRequest] = []
        self.speeches: list[SpeechRequest] = []
        self.replies: list[str] = []
        self.seen: list[tuple[str, str]] = []  # (path, Authorization) of every request, in order
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self, port: int = 0) -> str:
        """Listen on loopback (``port``, else a free one); returns the base URL (``http://127.0.0.1:P/v1``)."""
        app = web.Application(middlewares=[self._authorize])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_route("*", "/{tail:.*}", self._elsewhere)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.accept_key is None or given == self.accept_key:
            return await handler(request)  # type: ignore[no-any-return]
        self.refused.append(given)
        return web.json_response({"error": {
            "message": f"Incorrect API key provided: {given}. You can find your API key at "
                       "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}, status=401)

    def _note(self, request: web.Request) -> None:
        self.seen.append((request.path, request.headers.get("Authorization", "")))

    async def _elsewhere(self, request: web.Request) -> web.Response:
        self._note(request)
        return web.json_response({"error": {"message": f"Unknown path {request.path}"}}, status=404)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        at = time.monotonic()
        body = await request.json()
        messages = list(body.get("messages") or [])
        self.chats.append(ChatRequest(model=str(body.get("model", "")), messages=messages, body=body, at=at))
        text = self.reply(messages)
        self.replies.append(text)
        if not body.get("stream"):
            return web.json_response({"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                                      "model": body.get("model", "fake"),
                                      "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": text}}]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        words = text.split(" ")
        for i, word in enumerate(words):
            await self._event(resp, body, {"role": "assistant", "content": word if i == 0 else " " + word}, None)
        await self._event(resp, body, {}, "stop")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    @staticmethod
    async def _event(resp: web.StreamResponse, body: dict[str, Any], delta: dict[str, Any], finish: str | None) -> None:
        chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": body.get("model", "fake"), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

    async def _speech(self, request: web.Request) -> web.Response:
        self._note(request)
        at = time.monotonic()
        body = await request.json()
        text = str(body.get("input", ""))
        self.speeches.append(SpeechRequest(text=text, model=str(body.get("model", "")),
                                           voice=str(body.get("voice", "")), at=at))
        rate = int(body.get("sample_rate") or SPEECH_RATE)
        seconds = max(0.2, SECONDS_PER_WORD * len(text.split()))
        return web.Response(body=tone(self.tone_hz, seconds, rate), content_type="application/octet-stream")
