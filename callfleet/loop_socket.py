"""A ZeroMQ socket driven by the asyncio loop's reader callback instead of a future per message.

Shared by the two parts that move audio over ZeroMQ at 50 frames a second per call: the
supervisor-worker wire (``protocol.transport.Channel`` builds on it) and the sandbox's rooms
(its room server and each participant's connection), which are Daily's stand-in and so must
not depend on the internal wire protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import zmq


class LoopSocket:
    """A ZeroMQ socket read by the event loop's reader callback, a drain at a time.

    pyzmq's asyncio socket costs a future and a trip round the loop for every message; at
    50 frames a second per session that was most of the supervisor's CPU. Here the loop
    wakes on the socket's FD and *every* message that is ready is handed, as its list of
    ``zmq.Frame`` parts, to ``on_parts`` synchronously. Without ``on_parts``,
    ``recv_parts()`` takes one message at a time.

    ZMQ_FD is edge-triggered: it fires when the socket's state may have changed, and any
    send or recv can consume that edge. So a drain goes on until EAGAIN, and whoever sends
    outside a drain calls ``sent()``, which checks ``EVENTS`` and schedules a drain if
    something became readable meanwhile (what pyzmq's own asyncio socket does).
    """

    MAX_BATCH = 256  # messages per drain before the loop's other callbacks get a turn

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._fd = sock.fileno()
        self._on_parts: Callable[[list[Any]], None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._draining = False
        self._scheduled = False
        self._closed = False
        self._loop.add_reader(self._fd, self._readable)

    def on_parts(self, handler: Callable[[list[Any]], None]) -> None:
        """From now on every message goes to ``handler``, as it is drained."""
        self._on_parts = handler
        self._schedule()  # whatever arrived before the handler was set

    async def recv_parts(self) -> list[Any]:
        """Receive one message (only while no handler is set)."""
        if self._on_parts is not None:
            raise RuntimeError("recv() on a socket that a handler drains")
        while True:
            try:
                return self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self._waiter = self._loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None

    def try_send(self, parts: list[Any], *, copy: bool = True) -> bool:
        """Send without blocking. False when the peer's queue is full or, on a
        ``ROUTER_MANDATORY`` socket, the peer is not connected: the message is dropped."""
        try:
            self.sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=copy)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                return False
            raise
        finally:
            self.sent()

    def sent(self) -> None:
        """Call after a send made outside a drain: the send may have consumed the FD's edge
        for a message that arrived meanwhile."""
        if not self._draining and not self._closed and int(self.sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            self._schedule()

    def close(self, linger_ms: int = 0) -> None:
        """Stop reading and close the socket; sends still queued get ``linger_ms`` to leave."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        self.sock.close(linger_ms)

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed

    def _readable(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        if self._on_parts is None:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
            return
        self._drain(self._on_parts)

    def _drain(self, handler: Callable[[list[Any]], None]) -> None:
        recv_multipart = self.sock.recv_multipart
        self._draining = True
        try:
            for _ in range(self.MAX_BATCH):
                try:
                    parts = recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    return
                try:
                    handler(parts)
                except Exception as exc:  # one bad handler call must not stall the socket
                    self._loop.call_exception_handler({"message": "socket handler failed", "exception": exc})
                if self._closed:  # the handler closed us
                    return
            self._schedule()  # more may be waiting, and the FD will not fire for it again
        except zmq.ZMQError:
            if not self.sock.closed:
                raise
        finally:
            self._draining = False

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._readable)
