"""ZeroMQ sockets for the supervisor's ROUTER and each worker's DEALER.

Control and audio share one socket. Back-pressure rules:

* audio is sent without blocking; when the peer's queue is at its high-water mark the frame
  is dropped and counted -- late audio is worse than lost audio;
* control is never dropped: a send that meets a full queue waits (bounded) and retries.

The ROUTER is ``ROUTER_MANDATORY`` so a send to a peer that is gone raises instead of
vanishing, and ``ROUTER_HANDOVER`` so a restarted worker with the same id takes over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from callfleet.loop_socket import LoopSocket
from protocol.framing import ProtocolError, encode, split

# 20 ms frames: 250 queued frames is 5 s of audio, far past any use, yet enough that
# control messages queued behind a burst are never refused.
AUDIO_HWM = 250
CONTROL_SEND_TIMEOUT_S = 5.0


class PeerUnreachable(Exception):
    """A control message could not be delivered: the peer is gone or stuck."""


def bind_router(ctx: zmq.Context[Any], endpoint: str) -> zmq.Socket[Any]:
    """Bind the supervisor's ROUTER at ``endpoint`` (``ipc://…`` or ``tcp://…``)."""
    sock: zmq.Socket[Any] = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    sock.setsockopt(zmq.SNDHWM, AUDIO_HWM)
    sock.setsockopt(zmq.RCVHWM, AUDIO_HWM * 8)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    return sock


def connect_dealer(ctx: zmq.Context[Any], endpoint: str, identity: str) -> zmq.Socket[Any]:
    """Connect a worker's DEALER to ``endpoint`` with routing id ``identity``."""
    sock: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, identity.encode())
    sock.setsockopt(zmq.SNDHWM, AUDIO_HWM)
    sock.setsockopt(zmq.RCVHWM, AUDIO_HWM)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _route(to: bytes | None, parts: list[Any]) -> list[Any]:
    return parts if to is None else [to, *parts]


class Received(msgspec.Struct):
    """One message taken off a socket: control (``pcm is None``) or audio."""

    peer: bytes | None
    message: Any
    pcm: Any = None


class BadFrame(ProtocolError):
    """A ``ProtocolError`` that knows which peer sent the frame."""

    def __init__(self, peer: bytes | None, cause: ProtocolError) -> None:
        super().__init__(str(cause))
        self.peer = peer


class Channel(LoopSocket):
    """The supervisor's ROUTER or a worker's DEALER: messages decoded as they are drained.

    ``handle(handler, on_bad)`` hands each decoded message to ``handler`` and each frame
    that does not decode to ``on_bad`` (the drain goes on); ``recv()`` takes one at a time
    until a handler is set (the worker's handshake, tests).
    """

    def __init__(self, sock: zmq.Socket[Any], *, routed: bool) -> None:
        super().__init__(sock)
        self.routed = routed

    def handle(self, handler: Callable[[Received], None], on_bad: Callable[[BadFrame], None]) -> None:
        def dispatch(parts: list[Any]) -> None:
            try:
                got = self._decode(parts)
            except BadFrame as exc:
                on_bad(exc)
                return
            handler(got)

        self.on_parts(dispatch)

    async def recv(self) -> Received:
        """Receive one message. Raises ``BadFrame`` for a frame that is not a valid
        message; the channel stays usable."""
        return self._decode(await self.recv_parts())

    def _decode(self, parts: list[Any]) -> Received:
        peer: bytes | None = None
        if self.routed:
            peer = parts[0].bytes
            parts = parts[1:]
        try:
            message, pcm = split(parts)
        except ProtocolError as exc:
            raise BadFrame(peer, exc) from None
        return Received(peer, message, pcm)

    def send_audio(self, header: bytes, pcm: Any, *, to: bytes | None = None) -> bool:
        """Send ``[header, pcm]`` without blocking. Returns False when the frame was dropped.

        ``pcm`` may be bytes, a memoryview or a received ``zmq.Frame``; a frame is forwarded
        as is, without a copy.
        """
        return self.try_send(_route(to, [header, pcm]), copy=False)

    def try_send_control(self, msg: msgspec.Struct, *, to: bytes | None = None) -> bool:
        """Send one control message without blocking; False when it was dropped (the peer's
        queue is full or, on a ROUTER, the peer is not connected)."""
        return self.try_send(_route(to, [encode(msg)]))

    async def send_control(
        self, msg: msgspec.Struct, *, to: bytes | None = None, timeout_s: float = CONTROL_SEND_TIMEOUT_S
    ) -> None:
        """Send one control message; waits while the peer's queue is full.

        Raises ``PeerUnreachable`` when the peer is unknown to the ROUTER or stays full past
        ``timeout_s``.
        """
        parts = _route(to, [encode(msg)])
        deadline = time.monotonic() + timeout_s
        delay = 0.001
        while True:
            try:
                self.sock.send_multipart(parts, flags=zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EHOSTUNREACH:
                    raise PeerUnreachable(f"peer {to!r} is not connected") from None
                raise
            finally:
                self.sent()
            if time.monotonic() >= deadline:
                raise PeerUnreachable(f"peer {to!r} queue stayed full for {timeout_s:.1f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


class BadFrameLog:
    """Counts undecodable frames and says when a peer's next one deserves a log line.

    A flood of garbage from one peer is logged once per ``interval_s`` (by default once per
    peer per minute, so the log stays readable) while every frame is counted.
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self.total = 0
        self.by_peer: dict[bytes | None, int] = {}
        self._last_logged: dict[bytes | None, float] = {}

    def record(self, peer: bytes | None, now: float | None = None) -> bool:
        """Count one bad frame from ``peer``; True if it should be logged now."""
        now = time.monotonic() if now is None else now
        self.total += 1
        self.by_peer[peer] = self.by_peer.get(peer, 0) + 1
        last = self._last_logged.get(peer)
        if last is not None and now - last < self.interval_s:
            return False
        self._last_logged[peer] = now
        return True
