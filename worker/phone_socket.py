"""A phone call's WebSocket as the hosted bot sees it: a Starlette ``WebSocket`` -- what
Pipecat's ``FastAPIWebsocketTransport`` and ``parse_telephony_websocket`` are written
against -- over the supervisor's relay.

The supervisor terminates the provider's WebSocket (Twilio, Telnyx, Plivo, Exotel) and
relays every message, in order, over the worker's one channel (``SocketText``,
``SocketBytes``, ``SocketClose``). Here they become the ASGI events a Starlette
``WebSocket`` reads (``websocket.receive``, ``websocket.disconnect``), and what the bot
sends goes back the same way. The bot gets a real ``starlette.websockets.WebSocket``,
already accepted, as FastAPI would hand it over: its methods, its ``client_state`` and
``application_state`` and its ``WebSocketDisconnect`` behave as they do under FastAPI.

What the phone sent waits here until the bot reads it, in a bounded queue: a bot that
falls ``max_queued`` messages behind has its call closed with a reason, so a stuck bot
costs its own call, never the worker's memory. Sending after the call closed raises
``OSError`` to Starlette, as an ASGI server does for a peer that is gone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

import msgspec

from protocol.messages import SocketBytes, SocketClose, SocketText, WebSocketCall

OVERFLOW_CODE = 1008  # policy violation: the bot broke the relay's contract by not reading
BOT_ENDED_CODE = 1000


class SocketUnavailable(Exception):
    """The worker cannot give the bot a WebSocket (Starlette is not installed)."""


def _is_media(text: str) -> bool:
    # Every provider's audio message has a "media" member (Twilio, Telnyx, Exotel: event
    # "media"; Plivo's playAudio); marks, clears and starts do not.
    return '"media"' in text


class RelayedSocket:
    """One phone call's WebSocket in this worker, from the RunBot that opens it to its close.

    ``feed`` takes what the supervisor relays (on the loop, as the channel drains);
    ``websocket`` is the Starlette WebSocket the bot reads and writes. ``emit`` sends a
    message to the supervisor, in order with everything else the worker says."""

    def __init__(self, call: WebSocketCall, emit: Callable[[msgspec.Struct], None]) -> None:
        try:
            from starlette.websockets import WebSocket
        except ImportError:
            raise SocketUnavailable("a phone call's bot needs FastAPI's WebSocket: install pipecat-ai[websocket] "
                                    "beside pipecat-ai[daily]") from None
        self.call = call
        self.id = call.socket
        self._emit = emit
        self._inbox: deque[dict[str, Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._connected = False  # Starlette's own first receive (websocket.connect) is answered
        self.closed_in = False  # the phone's side is over: a disconnect is queued for the bot
        self.closed_out = False  # the bot's side is over: SocketClose went to the supervisor
        self.first_read: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.media_in = 0
        self.media_out = 0
        self.websocket = WebSocket(self._scope(), self._receive, self._send)

    def _scope(self) -> dict[str, Any]:
        c = self.call
        host = next((v for k, v in c.headers if k == "host"), "callfleet")
        return {"type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                "scheme": "ws", "path": c.path, "raw_path": c.path.encode(), "root_path": "",
                "query_string": c.query.encode(), "server": (host.partition(":")[0], None),
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in c.headers],
                "client": list(c.client) if c.client else None, "subprotocols": [], "state": {}, "extensions": {}}

    async def accept(self) -> None:
        """Accept it the way a FastAPI endpoint does before handing it on (the supervisor
        accepted the provider's socket already)."""
        await self.websocket.accept()

    # -- from the supervisor ---------------------------------------------------------------

    def feed(self, msg: SocketText | SocketBytes | SocketClose) -> None:
        """One relayed message of this call (the worker's loop, synchronously)."""
        if self.closed_in:
            return
        if isinstance(msg, SocketClose):
            self._disconnect(msg.code, msg.reason)
            return
        if isinstance(msg, SocketText):
            if _is_media(msg.text):
                self.media_in += 1
            self._inbox.append({"type": "websocket.receive", "text": msg.text})
        else:
            self._inbox.append({"type": "websocket.receive", "bytes": msg.data})
        if len(self._inbox) > self.call.max_queued:
            reason = f"the bot did not read its call: {len(self._inbox)} messages waiting"
            self._inbox.clear()
            self._disconnect(OVERFLOW_CODE, reason)
            self._close_out(OVERFLOW_CODE, reason)
            return
        self._wake()

    def _disconnect(self, code: int, reason: str) -> None:
        self.closed_in = True
        self._inbox.append({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the ASGI side Starlette's WebSocket drives ------------------------------------------

    async def _receive(self) -> dict[str, Any]:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        if not self.first_read.done():
            self.first_read.set_result(None)  # the bot's transport is reading its call: it has "joined"
        while not self._inbox:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._inbox.popleft()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            return
        if kind == "websocket.close":
            self._close_out(int(message.get("code") or 1000), str(message.get("reason") or ""))
            if not self.closed_in:  # what the bot still reads is the end of its call
                self._disconnect(int(message.get("code") or 1000), "closed by the bot")
            return
        if self.closed_in or self.closed_out:
            raise OSError("the phone call's WebSocket is closed")  # Starlette: WebSocketDisconnect(1006)
        text = message.get("text")
        if text is not None:
            if _is_media(text):
                self.media_out += 1
            self._emit(SocketText(socket=self.id, text=text))
        else:
            self._emit(SocketBytes(socket=self.id, data=bytes(message.get("bytes") or b"")))

    def _close_out(self, code: int, reason: str) -> None:
        if not self.closed_out:
            self.closed_out = True
            self._emit(SocketClose(socket=self.id, code=code, reason=reason[:120]))

    def finish(self, reason: str = "the bot ended") -> None:
        """The bot's task is over: the call's socket closes if the bot left it open."""
        self._close_out(BOT_ENDED_CODE, reason)
        if not self.closed_in:
            self._disconnect(BOT_ENDED_CODE, reason)
