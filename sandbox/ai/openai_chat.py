"""``POST …/openai/v1/chat/completions``: the stand-in LLM in OpenAI's wire format.

Streaming answers are server-sent events the way OpenAI sends them: a first chunk with the
assistant's role, the words one per chunk (or a function call's name, then its arguments in
fragments), a chunk with the ``finish_reason``, with ``stream_options.include_usage`` a
last chunk with no choices and the ``usage`` (every other chunk then carries
``"usage": null``), and ``data: [DONE]``. Tokens are counted as OpenAI's rule of thumb
has it, one per four characters.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.ai.errors import json_object, openai_error
from sandbox.ai.replies import Reply, RequestError, ToolCall, reply_to, text_of
from sandbox.ai.state import AI

FINGERPRINT = "fp_sandbox"
ARGUMENT_FRAGMENT = 8  # characters of a call's arguments per chunk, about two tokens as OpenAI streams them


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await json_object(request)
    request.app[AI].log.record(request, body if isinstance(body, dict) else None)
    if isinstance(body, web.Response):
        return body
    try:
        reply = reply_to(body)
    except RequestError as exc:
        return openai_error(400, str(exc))
    completion = Completion(id=f"chatcmpl-{uuid.uuid4().hex[:24]}", created=int(time.time()),
                            model=str(body.get("model") or "sandbox"), reply=reply,
                            usage=usage(body, reply))
    if not body.get("stream"):
        return web.json_response(completion.whole())
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    for chunk in completion.chunks(include_usage):
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def tokens(text: str) -> int:
    return (len(text) + 3) // 4


def usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    prompt = sum(tokens(text_of(m)) for m in body["messages"]) + tokens(json.dumps(body.get("tools") or []))
    said = reply.text or "".join(c.name + c.arguments for c in reply.tool_calls)
    completion = tokens(said)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@dataclass(frozen=True)
class Completion:
    """One reply, as a whole ``chat.completion`` or as ``chat.completion.chunk`` events."""

    id: str
    created: int
    model: str
    reply: Reply
    usage: dict[str, int]

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.reply.tool_calls else "stop"

    def whole(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.reply.text, "refusal": None,
                                   "annotations": []}
        if self.reply.tool_calls:
            message["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments}}
                                     for c in self.reply.tool_calls]
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "system_fingerprint": FINGERPRINT,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}],
                "usage": self.usage}

    def chunks(self, include_usage: bool) -> list[dict[str, Any]]:
        deltas = self._tool_call_deltas() if self.reply.tool_calls else self._text_deltas()
        chunks = [self._chunk([{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}], include_usage)
                  for d in deltas]
        chunks.append(self._chunk([{"index": 0, "delta": {}, "logprobs": None,
                                    "finish_reason": self.finish_reason}], include_usage))
        if include_usage:
            chunks.append({**self._chunk([], include_usage), "usage": self.usage})
        return chunks

    def _chunk(self, choices: list[dict[str, Any]], include_usage: bool) -> dict[str, Any]:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "system_fingerprint": FINGERPRINT, "choices": choices}
        if include_usage:
            chunk["usage"] = None
        return chunk

    def _text_deltas(self) -> list[dict[str, Any]]:
        words = (self.reply.text or "").split(" ")
        return [{"role": "assistant", "content": "", "refusal": None},
                *({"content": word if i == 0 else " " + word} for i, word in enumerate(words))]

    def _tool_call_deltas(self) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        for index, call in enumerate(self.reply.tool_calls):
            deltas.append(_opening(call, index, first=index == 0))
            deltas.extend({"tool_calls": [{"index": index, "function": {"arguments": call.arguments[i:i + ARGUMENT_FRAGMENT]}}]}
                          for i in range(0, len(call.arguments), ARGUMENT_FRAGMENT))
        return deltas


def _opening(call: ToolCall, index: int, *, first: bool) -> dict[str, Any]:
    """The chunk that names a call: its id, type and name, with empty arguments so far."""
    delta: dict[str, Any] = {"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                             "function": {"name": call.name, "arguments": ""}}]}
    if first:  # the reply's first chunk also carries the role
        delta = {"role": "assistant", "content": None, **delta, "refusal": None}
    return delta
