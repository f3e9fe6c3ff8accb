"""``GET …/deepgram/v1/listen``: Deepgram's live transcription WebSocket, served by the stand-in.

The query is Deepgram's (``encoding=linear16``, ``sample_rate``, ``channels``,
``interim_results``, ``vad_events``, ``utterance_end_ms``, ``model``; others, ``endpointing``
among them, are accepted and ignored). ``Authorization: Token …`` or ``Bearer …`` is accepted
whatever the key, and not required. Binary messages are audio; text messages are
``KeepAlive``, ``Finalize`` and ``CloseStream``. A query the stand-in cannot serve is
refused before the upgrade with HTTP 400 and Deepgram's error body, as Deepgram refuses it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from aiohttp import WSMsgType, web

from sandbox.ai.deepgram_stream import ListenOptions, ListenStream
from sandbox.ai.state import AI


class OptionError(ValueError):
    """A query parameter the stand-in cannot serve; the message names it."""


async def listen(request: web.Request) -> web.StreamResponse:
    ai = request.app[AI]
    ai.log.record(request, dict(request.query))
    request_id = str(uuid.uuid4())
    try:
        options = listen_options(request.query)
    except OptionError as exc:
        return web.json_response({"err_code": "Bad Request", "err_msg": str(exc), "request_id": request_id},
                                 status=400, headers={"dg-request-id": request_id})
    ws = web.WebSocketResponse()
    if not ws.can_prepare(request).ok:
        return web.json_response({"err_code": "Bad Request", "err_msg": "expected a WebSocket upgrade",
                                  "request_id": request_id}, status=400)
    ws.headers["dg-request-id"] = request_id
    await ws.prepare(request)
    stream = ListenStream(options, ai.script, request_id)
    async for message in ws:
        if message.type == WSMsgType.BINARY:
            replies = stream.audio(message.data)
        elif message.type == WSMsgType.TEXT:
            control = _control(message.data)
            if control == "CloseStream":
                for reply in stream.close():
                    await ws.send_str(json.dumps(reply))
                break
            # KeepAlive only keeps the socket open; anything unknown is ignored as Deepgram's SDKs expect.
            replies = stream.finalize() if control == "Finalize" else []
        else:
            break
        for reply in replies:
            await ws.send_str(json.dumps(reply))
    await ws.close()
    return ws


def _control(text: str) -> str | None:
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return None
    return message.get("type") if isinstance(message, dict) else None


def listen_options(query: Mapping[str, str]) -> ListenOptions:
    """The options of a listen socket's query.

    Raises ``OptionError`` for an encoding other than linear16, a missing or unusable
    ``sample_rate`` or ``channels``, ``multichannel=true``, or a malformed number."""
    encoding = query.get("encoding", "linear16")
    if encoding != "linear16":
        raise OptionError(f"the sandbox's stand-in transcribes only encoding=linear16, not {encoding!r}")
    if "sample_rate" not in query:
        raise OptionError("sample_rate is required with encoding=linear16")
    if query.get("multichannel") == "true":
        raise OptionError("the sandbox's stand-in transcribes one channel: multichannel=true is not supported")
    sample_rate = _integer(query, "sample_rate", 8000, 48000)
    utterance_end = _integer(query, "utterance_end_ms", 0, 60000) if "utterance_end_ms" in query else None
    return ListenOptions(sample_rate=sample_rate, channels=_integer(query, "channels", 1, 8, default=1),
                         model=query.get("model", "nova-3"),
                         interim_results=query.get("interim_results") == "true",
                         vad_events=query.get("vad_events") == "true",
                         utterance_end_ms=utterance_end)


def _integer(query: Mapping[str, str], name: str, lo: int, hi: int, default: int | None = None) -> int:
    raw = query.get(name)
    if raw is None and default is not None:
        return default
    try:
        value = int(raw or "")
    except ValueError:
        raise OptionError(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise OptionError(f"{name} must be between {lo} and {hi}")
    return value
