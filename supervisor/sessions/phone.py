"""A phone call's WebSocket, as its session holds it: the one-time URL it answers on, the
provider's stream it terminates, and the relay between that stream and the session's
worker.

Its life: the session's start mints the URL's token (``<session id>.<secret>``, usable
once, for ``ws_url_ttl_s``). The provider connects (``claim``, then ``serve`` for the
socket's whole life, in the HTTP handler's task); the first messages name the provider and
the call (``supervisor.sessions.phone_handshake``), or the socket is closed with a reason.
Then the session sends its worker the bot's ``RunBot`` and ``start_relay``: the handshake
messages and everything after go to the worker in order, one at a time (a slow worker
slows this call's reading, nobody else's), and what the bot sends comes back through
``from_bot`` into a bounded queue a writer drains to the phone. A phone that does not take
the bot's messages, a bot that does not read them (its worker closes the socket), a message
over ``max_message_bytes`` or a worker that stops answering closes the call with a reason.
However it closes, ``on_closed(by, code, reason)`` tells the session once; nothing here
blocks the loop or waits on another call.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from protocol.messages import SocketBytes, SocketClose, SocketText
from supervisor.config import TelephonySection
from supervisor.sessions import phone_handshake
from supervisor.sessions.phone_handshake import CallInfo, HandshakeRefused
from supervisor.sessions.requests import PhoneStart

log = structlog.get_logger("supervisor.phone")

FLUSH_S = 1.0  # on the session's end, for the bot's last messages to reach the phone


class CloseCode(enum.IntEnum):
    """WebSocket close codes the supervisor sends the phone's socket."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the supervisor drains or stops
    POLICY = 1008  # a queue overflowed: someone did not keep up
    TOO_BIG = 1009
    SERVER_ERROR = 1011  # the bot's worker was lost or stopped answering
    TRY_AGAIN_LATER = 1013  # no worker for the call (every one busy)
    FORBIDDEN = 4003  # Pipecat's runner's code for a refused token or Origin
    NO_START = 4008  # the stream never started


class ClosedBy(enum.Enum):
    PHONE = "phone"  # the provider hung up: stop, a close, or the connection lost
    BOT = "bot"  # the bot closed its socket, or its worker did for it
    SUPERVISOR = "supervisor"  # the session ended, or the relay refused something


# The upgrade request as the bot sees it: path, query string, headers (lower-case), client.
Handshake = tuple[str, str, list[tuple[str, str]], tuple[str, int] | None]


class ClaimRefused(Exception):
    """A WebSocket URL that cannot be used: ``status`` 401 (not its token or profile) or
    410 (used, expired, or its session ended)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _media(text: str) -> bool:
    return '"media"' in text  # every provider's audio message has a "media" member


def _sendable(code: int | None) -> int:
    """A code that may go in a close frame (1005 and 1006 only say none came)."""
    if code is None or code in (1005, 1006, 1015) or not 1000 <= code < 5000:
        return int(CloseCode.NORMAL)
    return code


class _Hangup:
    """Queued behind what the bot said: the session ends the call with this code and reason."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason


class PhoneLine:
    """One session's phone WebSocket: used by its actor (``start_relay``, ``close``), the
    HTTP handler that holds the socket (``claim``, ``serve``) and the worker router
    (``from_bot``), all on the loop."""

    def __init__(self, session_id: str, request: PhoneStart, settings: TelephonySection,
                 on_closed: Callable[[ClosedBy, int, str], None]) -> None:
        self.request = request
        self.settings = settings
        self._secret = secrets.token_urlsafe(24)
        self.token = f"{session_id}.{self._secret}"  # any node finds the session from it; only its secret opens it
        self.expires_at = time.monotonic() + settings.ws_url_ttl_s
        self.used = False
        self.socket_id = 0  # the RunBot's id, on every relayed message
        self.ws: web.WebSocketResponse | None = None
        self.handshake: Handshake = ("/ws", "", [], None)
        self.call: CallInfo | None = None
        self.started: asyncio.Future[CallInfo] = asyncio.get_running_loop().create_future()
        self._handshake: list[str] = []
        self._send: Callable[[SocketText | SocketBytes | SocketClose], Awaitable[None]] | None = None
        self._relaying = asyncio.Event()
        self._to_phone: asyncio.Queue[SocketText | SocketBytes | SocketClose | _Hangup] = asyncio.Queue()
        self._on_closed = on_closed
        self.closed_by: ClosedBy | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._done = asyncio.Event()  # the socket is closed and serve() is over
        self.media_in = 0  # the phone's audio messages relayed to the bot
        self.media_out = 0  # the bot's audio messages relayed to the phone
        self.dropped_out = 0

    # -- the URL -----------------------------------------------------------------------------

    def claim(self, secret: str, profile: str) -> None:
        """Take the URL for a connection now: its secret, for its own profile, once, before it
        expires. Raises ``ClaimRefused`` saying why."""
        if not hmac.compare_digest(secret.encode(), self._secret.encode()) or profile != self.request.profile:
            raise ClaimRefused(401, "invalid WebSocket token")
        if self.used:
            raise ClaimRefused(410, "this WebSocket URL was already used: each is good for one call")
        if time.monotonic() > self.expires_at:
            raise ClaimRefused(410, f"this WebSocket URL expired ({self.settings.ws_url_ttl_s} s after its session "
                                    f"started)")
        if self.closed_by is not None:
            raise ClaimRefused(410, "this WebSocket URL's session has ended")
        self.used = True

    # -- the phone's socket (the HTTP handler's task) --------------------------------------------

    async def serve(self, ws: web.WebSocketResponse, handshake: Handshake) -> None:
        """Hold the phone's socket for its whole life: its handshake, then the relay both ways
        until it closes, whoever closes it. ``handshake`` is the HTTP request as the bot may
        see it (its credentials taken out)."""
        self.ws = ws
        self.handshake = handshake
        writer = asyncio.ensure_future(self._write())
        try:
            if await self._handshake_read():
                await self._read()
        finally:
            await self._finish_serving(writer)

    async def _handshake_read(self) -> bool:
        """Read the provider's first messages; whether the call started (else it is closed)."""
        assert self.ws is not None
        deadline = time.monotonic() + self.settings.handshake_timeout_s
        try:
            for _ in range(phone_handshake.HANDSHAKE_MESSAGES):
                data = await self._next(deadline - time.monotonic())
                if data is None:
                    return False  # closed meanwhile (hung up, or the session ended)
                self._handshake.append(data if isinstance(data, str) else "")
                call = phone_handshake.detect(phone_handshake.message(data))
                if call is not None:
                    self._check(call)
                    self.call = call
                    self.started.set_result(call)
                    return True
            raise HandshakeRefused(4000, "unknown telephony provider: the stream's first messages are not Twilio's, "
                                         "Telnyx's, Plivo's or Exotel's start")
        except TimeoutError:
            await self._close(ClosedBy.SUPERVISOR, CloseCode.NO_START,
                              f"no start message within {self.settings.handshake_timeout_s:g} s")
        except HandshakeRefused as exc:
            await self._close(ClosedBy.SUPERVISOR, exc.code, exc.reason)
        return False

    def _check(self, call: CallInfo) -> None:
        want = self.request
        if want.provider and call.provider.value != want.provider:
            raise HandshakeRefused(CloseCode.FORBIDDEN, f"this URL is for a {want.provider} call, not {call.provider}")
        if want.call_id and call.call_id != want.call_id:
            raise HandshakeRefused(CloseCode.FORBIDDEN, "this URL is for another call")

    async def _next(self, timeout_s: float | None) -> str | bytes | None:
        """The next message from the phone (None when the socket closed: the close is noted).
        Raises ``TimeoutError`` past ``timeout_s``."""
        assert self.ws is not None
        msg = await asyncio.wait_for(self.ws.receive(), None if timeout_s is None else max(0.0, timeout_s))
        if msg.type == aiohttp.WSMsgType.TEXT:
            return str(msg.data)
        if msg.type == aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type == aiohttp.WSMsgType.ERROR and isinstance(msg.data, aiohttp.WebSocketError) \
                and msg.data.code == CloseCode.TOO_BIG:
            await self._close(ClosedBy.SUPERVISOR, CloseCode.TOO_BIG,
                              f"a message over telephony.max_message_bytes ({self.settings.max_message_bytes})")
            return None
        code = self.ws.close_code or 1005
        self._closed(ClosedBy.PHONE, code, "the phone hung up" if msg.type != aiohttp.WSMsgType.ERROR
                     else f"the phone's connection failed: {msg.data}")
        return None

    async def _read(self) -> None:
        """Relay the phone's messages to the bot, in order, once the session starts the relay."""
        await self._relaying.wait()
        while self.closed_by is None:
            data = await self._next(None)
            if data is None:
                return
            if isinstance(data, str):
                if _media(data):
                    self.media_in += 1
                if not await self._to_bot(SocketText(socket=self.socket_id, text=data)):
                    return
                if phone_handshake.is_stop(data):  # the call hung up; the provider closes next
                    self._closed(ClosedBy.PHONE, CloseCode.NORMAL, "the phone hung up")
                    return
            elif not await self._to_bot(SocketBytes(socket=self.socket_id, data=data)):
                return

    async def _to_bot(self, msg: SocketText | SocketBytes | SocketClose) -> bool:
        """Relay one message to the worker; False (the call closed) if it stops answering."""
        assert self._send is not None
        try:
            await self._send(msg)
        except Exception as exc:  # PeerUnreachable: the worker is gone or stuck
            log.warning("the bot's worker stopped taking the call's messages", error=str(exc))
            await self._close(ClosedBy.SUPERVISOR, CloseCode.SERVER_ERROR,
                              "the bot's worker stopped taking the call's messages")
            return False
        return True

    async def _finish_serving(self, writer: asyncio.Future[None]) -> None:
        if self.closed_by is None:  # the handler was cancelled: the provider's connection went away
            self._closed(ClosedBy.PHONE, 1006, "the phone's connection was lost")
        if not self.started.done():
            self.started.set_exception(HandshakeRefused(self.close_code or 1006, self.close_reason))
            self.started.exception()  # retrieved: the session may be gone already
        if self._send is not None and self.closed_by is not ClosedBy.BOT:
            # The bot hears its call end: Starlette's websocket.disconnect, with the code.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send(SocketClose(socket=self.socket_id, code=self.close_code or 1005,
                                                              reason=self.close_reason)), 1.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(writer), FLUSH_S)
        writer.cancel()
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close(code=_sendable(self.close_code), message=self.close_reason.encode()[:120])
        self._done.set()

    # -- the session's side ------------------------------------------------------------------------

    def start_relay(self, socket_id: int, send: Callable[[SocketText | SocketBytes | SocketClose], Awaitable[None]],
                    ) -> None:
        """The worker has the bot's RunBot (id ``socket_id``): relay the call to it with
        ``send``, the handshake's messages first."""
        self.socket_id = socket_id
        first, self._handshake = self._handshake, []

        async def relay() -> None:
            for text in first:
                if text and not await self._to_bot(SocketText(socket=socket_id, text=text)):
                    return
            self._relaying.set()

        self._send = send
        task = asyncio.ensure_future(relay())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def from_bot(self, msg: SocketText | SocketBytes | SocketClose) -> None:
        """What the bot sent on the call (the router, synchronously): queued for the phone,
        or the call closed when the phone has not taken ``max_queued_messages`` already."""
        if msg.socket != self.socket_id or self.closed_by is not None:
            return
        if self._to_phone.qsize() >= self.settings.max_queued_messages and not isinstance(msg, SocketClose):
            self.dropped_out += 1
            reason = f"the phone did not take the bot's audio: {self._to_phone.qsize()} messages waiting"
            self._spawn_close(ClosedBy.SUPERVISOR, CloseCode.POLICY, reason)
            return
        if isinstance(msg, SocketText) and _media(msg.text):
            self.media_out += 1
        self._to_phone.put_nowait(msg)

    async def _write(self) -> None:
        """Drain the bot's messages to the phone, in order, until the bot closes the socket."""
        assert self.ws is not None
        while True:
            msg = await self._to_phone.get()
            try:
                if isinstance(msg, SocketText):
                    await self.ws.send_str(msg.text)
                elif isinstance(msg, SocketBytes):
                    await self.ws.send_bytes(msg.data)
                elif isinstance(msg, _Hangup):
                    await self._close(ClosedBy.SUPERVISOR, msg.code, msg.reason)
                    return
                else:
                    await self._close(ClosedBy.BOT, msg.code, msg.reason or "the bot closed the call")
                    return
            except (ConnectionResetError, RuntimeError):  # the phone is gone: the reader sees it too
                return

    async def close(self, code: int, reason: str) -> None:
        """The session is over: what the bot said reaches the phone (for ``FLUSH_S`` at most),
        then the socket closes with ``code`` and ``reason``. Waits until it is closed."""
        if self.ws is None:
            self._closed(ClosedBy.SUPERVISOR, code, reason)  # an unused URL is dead from now on
            return
        if self.closed_by is None:
            self._to_phone.put_nowait(_Hangup(code, reason))  # after what the bot said
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._done.wait(), FLUSH_S)
        await self._close(ClosedBy.SUPERVISOR, code, reason)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._done.wait(), FLUSH_S)

    # -- closing -----------------------------------------------------------------------------------

    def _closed(self, by: ClosedBy, code: int, reason: str) -> None:
        """Note how the call closed (the first time only) and tell the session."""
        if self.closed_by is not None:
            return
        self.closed_by, self.close_code, self.close_reason = by, code, reason[:120]
        self._relaying.set()  # a reader waiting for the relay sees the close
        if by is not ClosedBy.PHONE or self.call is not None:
            log.info("phone call closed", by=by.value, code=code, reason=reason)
        self._on_closed(by, code, reason)

    async def _close(self, by: ClosedBy, code: int, reason: str) -> None:
        self._closed(by, code, reason)
        ws = self.ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close(code=_sendable(code), message=reason.encode()[:120])

    def _spawn_close(self, by: ClosedBy, code: int, reason: str) -> None:
        self._closed(by, code, reason)  # at once: nothing more is queued for the phone
        task = asyncio.ensure_future(self._close(by, code, reason))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # -- what the session shows -----------------------------------------------------------------------

    def caller(self) -> dict[str, Any]:
        """The caller as a call participant (Daily's shape): the session's one human."""
        call = self.call
        assert call is not None
        name = call.from_number or self.request.from_number or "caller"
        return {"id": f"{call.provider.value}:{call.call_id or call.stream_id}", "info": {"userName": name,
                "isLocal": False}, "phone": call.view()}

    def view(self) -> dict[str, Any]:
        """What the session's record keeps of the call."""
        view: dict[str, Any] = {"transport": "websocket", **(self.call.view() if self.call else {})}
        if self.closed_by is not None:
            view.update(closed_by=self.closed_by.value, close_code=self.close_code, close_reason=self.close_reason)
        return view
