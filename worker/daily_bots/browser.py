"""A Daily Bots pipeline talking to a browser over Pipecat's SmallWebRTC instead of a room.

The session was started with ``"transport": "webrtc"``: the bot gets
``SmallWebRTCRunnerArguments`` and its pipeline runs over a ``SmallWebRTCTransport`` on the
browser's peer, with the parameters a room would get (audio in at 16 kHz, out at the TTS
rate, RNNoise when ``enable_noise_cancellation`` asks). RTVI rides the peer's data channel.
The bot greets when the browser connects (or on ``client-ready`` with ``run_on_config``),
and the call ends when the browser goes away. There is no room: ``"stt": "daily"`` (its
transcription) and the vision profiles' camera are refused by the supervisor first.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from worker.daily_bots.pipeline import AUDIO_IN_RATE, BotPipeline, greeter, noise_filter
from worker.daily_bots.request import BotRequest


def from_browser(runner_args: Any) -> bool:
    """Whether the session is a browser's (Pipecat's SmallWebRTC), without importing it."""
    return type(runner_args).__name__ == "SmallWebRTCRunnerArguments"


def browser_transport(runner_args: Any, request: BotRequest, *, audio_out_rate: int) -> Any:
    """The SmallWebRTC transport on the browser's peer (imported here: only a WebRTC session pays for it)."""
    from pipecat.transports.base_transport import TransportParams
    from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

    params = TransportParams(audio_in_enabled=True, audio_in_sample_rate=AUDIO_IN_RATE, audio_out_enabled=True,
                             audio_out_sample_rate=audio_out_rate)
    if request.transport.get("enable_noise_cancellation"):
        params.audio_in_filter = noise_filter()
    return SmallWebRTCTransport(webrtc_connection=runner_args.webrtc_connection, params=params)


def wire_browser(bot: BotPipeline, transport: Any) -> None:
    """Who speaks first and when the call ends, for a browser: as ``wire_greeting`` does for
    a room, with the browser connecting as its first participant and leaving as its last."""
    greet = greeter(bot)

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: Any, client: Any) -> None:
        if not bot.request.run_on_config:
            await greet("the browser connected")

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: Any, client: Any) -> None:
        logger.info("the browser left: ending the call")
        await bot.worker.cancel()
