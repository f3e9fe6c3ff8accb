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
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from protocol.framing import ProtocolError, encode, split

# 20 ms frames: 250 queued frames is 5 s of audio, far past any use, yet enough that
# control messages queued behind a burst are never refused.
AUDIO_HWM = 250
CONTROL_SEND_TIMEOUT_S = 5.0


class PeerUnreachable(Exception):
    """A control message could not be delivered: the peer is gone or stuck."""


def bind_router(ctx: zmq.asyncio.Context, endpoint: str) -> zmq.asyncio.Socket:
    """Bind the supervisor's ROUTER at ``endpoint`` (``ipc://…`` or ``tcp://…``)."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    sock.setsockopt(zmq.SNDHWM, AUDIO_HWM)
    sock.setsockopt(zmq.RCVHWM, AUDIO_HWM * 8)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    return sock


def connect_dealer(ctx: zmq.asyncio.Context, endpoint: str, identity: str) -> zmq.asyncio.Socket:
    """Connect a worker's DEALER to ``endpoint`` with routing id ``identity``."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, identity.encode())
    sock.setsockopt(zmq.SNDHWM, AUDIO_HWM)
    sock.setsockopt(zmq.RCVHWM, AUDIO_HWM)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _route(to: bytes | None, parts: list[Any]) -> list[Any]:
    return parts if to is None else [to, *parts]


async def send_control(
    sock: zmq.asyncio.Socket,
    msg: msgspec.Struct,
    *,
    to: bytes | None = None,
    timeout_s: float = CONTROL_SEND_TIMEOUT_S,
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
            await sock.send_multipart(parts, flags=zmq.NOBLOCK)
            return
        except zmq.Again:
            pass
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                raise PeerUnreachable(f"peer {to!r} is not connected") from None
            raise
        if time.monotonic() >= deadline:
            raise PeerUnreachable(f"peer {to!r} queue stayed full for {timeout_s:.1f}s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def send_audio(
    sock: zmq.Socket[Any], header: bytes, pcm: Any, *, to: bytes | None = None
) -> bool:
    """Send ``[header, pcm]`` without blocking. Returns False when the frame was dropped.

    ``pcm`` may be bytes, a memoryview or a received ``zmq.Frame``; a frame is forwarded
    as is, without a copy.
    """
    try:
        sent = sock.send_multipart(_route(to, [header, pcm]), flags=zmq.NOBLOCK, copy=False)
        # An asyncio socket answers with a future that a non-blocking send settles at once.
        if isinstance(sent, asyncio.Future) and sent.done():
            sent.result()
        return True
    except zmq.Again:
        return False
    except zmq.ZMQError as exc:
        if exc.errno == zmq.EHOSTUNREACH:
            return False
        raise


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


async def recv(sock: zmq.asyncio.Socket, *, routed: bool) -> Received:
    """Receive one message. ``routed`` is True on a ROUTER (first part is the peer id).

    Raises ``BadFrame`` for a frame that is not a valid message; the socket stays usable.
    """
    parts = await sock.recv_multipart(copy=False)
    peer: bytes | None = None
    if routed:
        peer = parts[0].bytes
        parts = parts[1:]
    try:
        message, pcm = split(parts)
    except ProtocolError as exc:
        raise BadFrame(peer, exc) from None
    return Received(peer, message, pcm)


class BadFrameLog:
    """Counts undecodable frames and says when a peer's next one deserves a log line.

    A flood of garbage from one peer is logged once per ``interval_s`` (SPEC §7: once per
    peer per minute) while every frame is counted.
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
