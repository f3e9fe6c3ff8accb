"""A phone call's side of its session: what the session does with the call's WebSocket
(``supervisor.sessions.phone``) that stands where a room would.

The call has no room: its start answers the line's one-time URL, its join waits for the
provider's stream to arrive there and start, and the bot's transport reads it through the
worker (``websocket`` describes the socket to the worker). Its one human is the caller: the
phone hanging up is the caller leaving, and ends the session when the request says the last
leave does (after a grace for bot() to return by itself). A phone's WebSocket cannot be
rejoined, so a worker lost mid-call ends the call. The session's actor owns this object;
what the line reports reaches the session as call events or a stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from protocol.messages import (
    CallStateUpdated,
    Event,
    ParticipantLeft,
    SocketBytes,
    SocketClose,
    SocketText,
    WebSocketCall,
)
from supervisor.config import Config
from supervisor.sessions.actor import End
from supervisor.sessions.call_events import HOSTED_LEFT_GRACE_S, CallEvents
from supervisor.sessions.participants import Participants
from supervisor.sessions.phone import CloseCode, ClosedBy, PhoneLine
from supervisor.sessions.phone_handshake import CallInfo, HandshakeRefused
from supervisor.sessions.requests import PhoneStart
from supervisor.sessions.state import EndReason
from supervisor.sessions.timers import Timers


class PhoneCall:
    """The phone call of one session (a ``PhoneStart``): its line, and what the line's
    events mean for the session. Used only by the session's actor, on the loop."""

    def __init__(self, session_id: str, request: PhoneStart, config: Callable[[], Config], participants: Participants,
                 timers: Timers, call: CallEvents, post: Callable[[Event], None], stop: Callable[..., None],
                 log: structlog.stdlib.BoundLogger) -> None:
        self.request = request
        self._config = config  # read at each use: a reload applies to live sessions
        self.participants = participants
        self.timers = timers
        self.call = call
        self._post = post  # an event into the session's mailbox, as if the worker sent it
        self._stop = stop
        self.log = log
        self.line = PhoneLine(session_id, request, config().telephony, self._closed)
        self.ending = False  # the session is on its way out: the line's close is its own doing
        self.hung_up = False  # the caller hung up: bot() returning is their leaving

    def on_socket(self, msg: SocketText | SocketBytes | SocketClose) -> None:
        """A message the bot sent its phone (through its worker)."""
        self.line.from_bot(msg)

    def _closed(self, by: ClosedBy, code: int, reason: str) -> None:
        """The phone's WebSocket closed (the line, on the loop): what that means for the
        session. Before its stream started, the join step sees it."""
        line = self.line
        if self.ending or line.call is None:
            return
        if by is ClosedBy.PHONE:
            self._post(ParticipantLeft(participant=line.caller(), reason="hung up"))
        elif by is ClosedBy.BOT and code in (CloseCode.NORMAL, CloseCode.GOING_AWAY):
            # The bot hung up on its way out of bot(): as a hosted bot leaving its room.
            self._post(CallStateUpdated(state="left"))
        else:
            self._stop(EndReason.CALL_ENDED, f"the call's WebSocket was closed ({code}): {reason}")

    async def stream_started(self) -> CallInfo:
        """Wait for the provider's stream to arrive on the URL and start. Raises ``End``
        (join failed) when no call came in time or its handshake was refused."""
        line = self.line
        done, _ = await asyncio.wait({line.started}, timeout=max(0.0, line.expires_at - time.monotonic()))
        if not done and not line.used:
            raise End(EndReason.JOIN_FAILED,
                      f"no call came to its WebSocket URL within {self._config().telephony.ws_url_ttl_s} s")
        try:
            return await asyncio.shield(line.started)  # the socket's handler settles it, bounded by its handshake
        except HandshakeRefused as exc:
            raise End(EndReason.JOIN_FAILED, f"the phone's stream did not start: {exc.reason}") from None

    def websocket(self, socket_id: int) -> WebSocketCall:
        """The call's socket as the worker's bot transport is handed it."""
        cfg = self._config()
        tel = cfg.telephony
        urls = {"twilio": cfg.twilio_api_url} if cfg.twilio_api_url else {}
        path, query, headers, client = self.line.handshake
        return WebSocketCall(socket=socket_id, path=path, query=query, headers=headers, client=client,
                             max_queued=tel.max_queued_messages, max_message_bytes=tel.max_message_bytes,
                             api_urls=urls)

    def answered(self, call: CallInfo, bot_name: str) -> dict[str, Any]:
        """The bot took the call: the join's data, as a room's join reports it (the bot
        local, the caller the one participant)."""
        caller = self.line.caller()
        self.participants.bot_joined(bot_name)
        self.log.info("phone call answered", **call.view())
        return {"participants": {"local": {"id": bot_name, "info": {"isLocal": True, "userName": bot_name}},
                                 caller["id"]: caller}}

    def caller_hung_up(self, event: ParticipantLeft) -> None:
        """The phone hung up. The bot hears its call end (its transport's
        ``on_client_disconnected``) and has a moment to return from bot() by itself, as it
        would on Pipecat Cloud; either way the session ends ``participant_left``."""
        self.participants.left(event.participant or {})
        if not self.request.end_on_last_leave:
            self.call.arm_idle()
            return
        self.hung_up = True
        self.timers.arm("hung_up", HOSTED_LEFT_GRACE_S, self._stop, EndReason.PARTICIPANT_LEFT, "the caller hung up")

    async def hang_up(self, reason: EndReason) -> None:
        """Close the phone's WebSocket as the session ends, with the code its end reason
        calls for."""
        code = CloseCode.GOING_AWAY if reason is EndReason.DRAINED else \
            CloseCode.SERVER_ERROR if reason.failure else CloseCode.NORMAL
        await self.line.close(code, f"the call ended: {reason.value}")
