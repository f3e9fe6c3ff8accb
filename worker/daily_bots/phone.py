"""Daily Bots' ``twilio_ws_voice_2024_09``: the voice pipeline of ``voice_2024_10`` (its
services, ``config``, ``service_options`` and keys, ``worker.daily_bots.voice.build``) over
a Twilio Media Stream instead of a Daily room.

    FastAPIWebsocketTransport(TwilioFrameSerializer).input() → STT → user aggregator → LLM → TTS → output()

The call's socket is the one callfleet's worker hands a hosted bot
(``WebSocketRunnerArguments.websocket``, ``worker/phone_socket.py``); Pipecat's own
``parse_telephony_websocket`` reads its first messages (the stream's and call's SIDs), and
Pipecat's ``TwilioFrameSerializer`` converts μ-law 8 kHz to the pipeline's rates and back.

* **RTVI does not apply.** A phone has no app-message channel: the pipeline keeps its
  RTVI processor (the voice pipeline's shape), but the serializer drops RTVI messages, so
  ``run_on_config`` and client-side function calls have nobody to answer them. The bot
  greets from ``initial_messages`` when the call connects.
* **Hanging up.** The caller hanging up disconnects the socket: the bot cancels its
  pipeline and the session ends. A session that ends first cancels the bot, and the
  serializer hangs the call up through Twilio's REST API (``[telephony] twilio_api_url``,
  set by the worker as the serializer's ``base_url``) with the operator's
  ``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN``, handed to this session in memory like
  its provider keys (``worker.daily_bots.keys``). Without them it does not call the API;
  the supervisor closing the socket still ends the call.
* **The body.** ``/bots/start``'s Daily Bots fields; a call from Twilio's voice webhook
  (``POST /telephony/twilio``) brings only Twilio's form fields, and runs the profile's
  default providers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from loguru import logger
from pipecat.frames.frames import LLMRunFrame

from worker.daily_bots import keys
from worker.daily_bots.pipeline import run
from worker.daily_bots.request import RequestError, parse_request
from worker.daily_bots.voice import build, uses_daily_stt

PROFILE = "twilio_ws_voice_2024_09"
ACCOUNT_SID_ENV = "TWILIO_ACCOUNT_SID"
AUTH_TOKEN_ENV = "TWILIO_AUTH_TOKEN"


def request_body(body: Any) -> dict[str, Any]:
    """The Daily Bots fields of ``runner_args.body``: as given when it names a profile, else
    (a Twilio webhook's form fields) the profile's defaults."""
    if isinstance(body, Mapping) and body.get("bot_profile"):
        return dict(body)
    return {"bot_profile": PROFILE}


def serializer(call_data: Any, session_keys: Mapping[str, str]) -> Any:
    """Pipecat's ``TwilioFrameSerializer`` for the call, hanging it up through Twilio's API
    when the operator's account SID and auth token were handed over."""
    from pipecat.serializers.twilio import TwilioFrameSerializer

    account_sid = session_keys.get(ACCOUNT_SID_ENV) or None
    auth_token = session_keys.get(AUTH_TOKEN_ENV) or None
    hang_up = bool(account_sid and auth_token and call_data.call_id)
    if not hang_up:
        logger.warning(f"no {ACCOUNT_SID_ENV}/{AUTH_TOKEN_ENV}: the bot will not hang the call up through "
                       f"Twilio's API (closing the stream still ends it)")
    return TwilioFrameSerializer(stream_sid=call_data.stream_id, call_sid=call_data.call_id,
                                 account_sid=account_sid, auth_token=auth_token,
                                 params=TwilioFrameSerializer.InputParams(auto_hang_up=hang_up))


async def bot(runner_args: Any) -> None:
    """Pipecat Cloud's entry point for a phone call (``WebSocketRunnerArguments``)."""
    from pipecat.runner.utils import parse_telephony_websocket
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

    session_keys = keys.current()
    request = parse_request(request_body(runner_args.body), session_keys)
    if uses_daily_stt(request):
        raise RequestError(f"services.stt: \"daily\" transcribes a Daily room; {request.profile} runs over a phone call")
    websocket = getattr(runner_args, "websocket", None)
    if websocket is None:
        raise RequestError(f"{request.profile}: a phone profile takes a Twilio call's WebSocket, not a Daily room")
    transport_type, call_data = await parse_telephony_websocket(websocket)
    if transport_type != "twilio":
        raise RequestError(f"{request.profile}: expected a Twilio Media Stream, got a {transport_type} stream")
    runner_args.transport_type, runner_args.call_data = transport_type, call_data
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False,
                                      serializer=serializer(call_data, session_keys)))
    built = await asyncio.to_thread(build, request, transport,
                                    idle_timeout_secs=getattr(runner_args, "pipeline_idle_timeout_secs", None))
    greeted = False

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: Any, client: Any) -> None:
        nonlocal greeted
        if not greeted and request.initial_messages:
            greeted = True
            logger.info("greeting (call connected)")
            await built.worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: Any, client: Any) -> None:
        logger.info("the caller hung up")
        await built.worker.cancel()

    await run(built, runner_args)
