"""One participant's connection to the sandbox's room server, on an asyncio loop.

``sandbox.client.CallClient`` runs these on its SDK thread; the synthetic caller pool runs
many of them on one loop. Before joining it looks the room up over HTTP the way Daily's
client fetches room information, so an unreachable host fails the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import zmq

from callfleet.loop_socket import LoopSocket
from sandbox.wire import HEARTBEAT_S, HEARTBEAT_TIMEOUT_S, AudioHead, Beat, Ev, Req, Resp, decoder, encoder

LOOKUP_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0
SERVER_SILENCE_S = HEARTBEAT_TIMEOUT_S * 2

_ctx: zmq.Context[Any] | None = None


def _context() -> zmq.Context[Any]:
    global _ctx
    if _ctx is None:
        _ctx = zmq.Context()
    return _ctx


class JoinError(Exception):
    """The join was refused or the room could not be reached; text as Daily reports it."""


class RequestError(Exception):
    """The room server refused a request."""


def split_room_url(room_url: str) -> tuple[str, str]:
    """(base URL, room name) of ``http://host:port/ROOM``; raises JoinError if malformed."""
    parts = urlsplit(room_url)
    name = parts.path.strip("/")
    if parts.scheme not in ("http", "https") or not parts.netloc or not name or "/" in name:
        raise JoinError(f"Invalid meeting URL: {room_url}")
    return f"{parts.scheme}://{parts.netloc}", name


def _lookup(base: str, name: str) -> str:
    url = f"{base}/_sandbox/rooms/{name}"
    try:
        with urllib.request.urlopen(url, timeout=LOOKUP_TIMEOUT_S) as resp:
            return str(json.loads(resp.read())["endpoint"])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise JoinError("The meeting you're trying to join does not exist.") from None
        raise JoinError(f"Failed to fetch room information: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        raise JoinError(f"Failed to fetch room information: GET failed: {exc}") from None


class RoomConnection:
    """A DEALER to the room server. ``on_event(callback, args)`` and ``on_audio(head, pcm)``
    are called on the loop that owns the connection."""

    def __init__(
        self,
        on_event: Callable[[str, list[Any]], None],
        on_audio: Callable[[AudioHead, bytes], None],
    ) -> None:
        self._on_event = on_event
        self._on_audio = on_audio
        self._sock: LoopSocket | None = None
        self._rids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_heard = time.monotonic()
        self._seq: dict[str, itertools.count[int]] = {}
        self.participant_id: str | None = None
        self.closed = False
        self.frames_sent = 0
        self.frames_dropped = 0

    async def join(self, room_url: str, token: str | None, *, user_name: str = "", mic: bool = True,
                   render_all: int | None = None) -> dict[str, Any]:
        """Look the room up, connect, join. Returns Daily's join data; raises JoinError.

        ``render_all`` (a sample rate) subscribes to every participant's microphone as part
        of the join, so no audio sent after the join can be missed."""
        base, name = split_room_url(room_url)
        endpoint = await asyncio.to_thread(_lookup, base, name)
        sock = _context().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 500)
        sock.setsockopt(zmq.RCVHWM, 2000)
        sock.connect(endpoint)
        self._sock = LoopSocket(sock)
        self._sock.on_parts(self._received)
        loop = asyncio.get_running_loop()
        try:
            data = await self.request("join", room=name, token=token, user_name=user_name, mic=mic,
                                      render_all=render_all)
        except RequestError as exc:
            self.close()
            raise JoinError(str(exc)) from None
        except TimeoutError:
            self.close()
            raise JoinError("Failed to join: the room server did not answer") from None
        self.participant_id = data["participants"]["local"]["id"]
        self._tasks = [loop.create_task(self._heartbeat())]
        return dict(data)

    async def request(self, op: str, timeout_s: float = REQUEST_TIMEOUT_S, **args: Any) -> Any:
        """Send one request and wait for its answer; raises RequestError."""
        if self._sock is None or self.closed:
            raise RequestError("not connected to a room")
        rid = next(self._rids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            if not self._sock.try_send([encoder.encode(Req(rid, op, args))]):
                raise RequestError("the queue to the room server is full")
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._pending.pop(rid, None)

    def send_audio(self, pcm: bytes, sample_rate: int, channels: int, source: str = "microphone") -> bool:
        """Send one chunk without blocking; False if dropped (not connected, queue full)."""
        if self._sock is None or self.closed:
            return False
        seq = next(self._seq.setdefault(source, itertools.count()))
        head = encoder.encode(AudioHead("", source, seq, sample_rate, channels))
        if not self._sock.try_send([head, pcm], copy=False):
            self.frames_dropped += 1
            return False
        self.frames_sent += 1
        return True

    def _received(self, parts: list[Any]) -> None:
        self._last_heard = time.monotonic()
        try:
            msg = decoder.decode(parts[0].buffer)
        except Exception:
            return
        if isinstance(msg, AudioHead):
            if len(parts) == 2:
                self._on_audio(msg, parts[1].bytes)
        elif isinstance(msg, Ev):
            if msg.callback == "_left":
                self._lost(str(msg.args[0]) if msg.args else "removed from the call")
            else:
                self._on_event(msg.callback, msg.args)
        elif isinstance(msg, Resp):
            fut = self._pending.get(msg.rid)
            if fut is not None and not fut.done():
                if msg.error is None:
                    fut.set_result(msg.data)
                else:
                    fut.set_exception(RequestError(msg.error))

    async def _heartbeat(self) -> None:
        assert self._sock is not None
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            if time.monotonic() - self._last_heard > SERVER_SILENCE_S:
                self._lost("Connection to the room server was lost")
                return
            self._sock.try_send([encoder.encode(Beat())])  # a beat lost to a full queue: the next one

    def _lost(self, reason: str) -> None:
        if self.closed:
            return
        self.close()
        self._on_event("_left", [reason])

    async def leave(self) -> None:
        if self._sock is not None and not self.closed:
            try:
                await self.request("leave", timeout_s=3.0)
            except (TimeoutError, RequestError):
                pass
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RequestError("connection closed"))
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self._sock is not None:
            self._sock.close(0)
