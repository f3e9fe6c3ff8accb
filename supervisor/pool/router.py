"""The workers' ROUTER socket: what arrives goes where it belongs, what the supervisor
sends a worker leaves through it, and every command gets its one reply.

Messages are handled synchronously as the channel drains the socket: a worker's audio goes
straight to its session's listener without a task or a copy, and so does what a hosted bot
sends on its phone call's WebSocket; events go to the listener's mailbox, replies to the request awaiting them, Hellos and Exitings to the pool. A frame
that does not decode -- from a worker or a rogue process -- is counted, logged once per
peer per minute, and dropped.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
import zmq

from protocol.audio import AudioIn
from protocol.messages import (
    BotFinished,
    Command,
    Err,
    ErrCode,
    Event,
    Exiting,
    Hello,
    LogLines,
    Ok,
    Pong,
    Reject,
    RunBot,
    SocketBytes,
    SocketClose,
    SocketText,
    TurnFigures,
    WebRTCCandidates,
    WebRTCOffer,
)
from protocol.transport import BadFrame, BadFrameLog, Channel, PeerUnreachable, Received, bind_router
from supervisor.pool.reconcile import WorkerState
from supervisor.pool.workers import WorkerHandle

log = structlog.get_logger("supervisor.router")

DEPARTED_KEPT = 1000  # reaped workers whose last words may still arrive

# what a worker answers with exactly one Ok or Err of the same id
Request = Command | RunBot | WebRTCOffer | WebRTCCandidates


class WorkerRouter:
    """The one socket every worker connects to: the pool's only way to and from them."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, workers: dict[str, WorkerHandle],
                 on_hello: Callable[[WorkerHandle, Hello], None]) -> None:
        self.channel = Channel(bind_router(ctx, endpoint), routed=True)
        self.workers = workers
        self._on_hello = on_hello
        self._departed: dict[str, float] = {}
        self._req_ids = itertools.count(1)
        self.bad_frames = BadFrameLog()
        self.frames_routed = 0
        self.worker_frames_dropped = 0  # summed from Pongs: a counter that never goes down
        self.on_log_lines: Callable[[str, LogLines], None] | None = None  # where a worker's log lines go

    def start(self) -> None:
        """Handle what arrives from now on, as the loop drains the socket."""
        self.channel.handle(self._received, self._bad_frame_from)

    def departed(self, handle: WorkerHandle) -> None:
        """The worker was reaped: its late messages are expected, not rogue."""
        self._departed[handle.id] = time.monotonic()
        if len(self._departed) > DEPARTED_KEPT:
            self._departed.pop(next(iter(self._departed)))

    def next_request_id(self) -> int:
        """A request id no other command of this supervisor carries."""
        return next(self._req_ids)

    async def request(self, handle: WorkerHandle, cmd: Request, timeout_s: float,
                      on_sent: Callable[[], None] | None = None) -> Ok | Err:
        """Send a command and wait for its one reply (an Err when the worker dies, the send
        fails or no reply comes within ``timeout_s``). ``on_sent`` runs once it is on its way,
        before the reply: what is sent to the worker after it arrives after it."""
        if handle.state == WorkerState.DEAD:
            return Err(cmd.id, ErrCode.EXITING, "worker is gone")
        fut = handle.pending.expect(cmd.id)
        try:
            await self.channel.send_control(cmd, to=handle.identity)
            if on_sent is not None:
                on_sent()
            return await asyncio.wait_for(fut, timeout_s)
        except PeerUnreachable as exc:
            return Err(cmd.id, ErrCode.EXITING, str(exc))
        except TimeoutError:
            return Err(cmd.id, ErrCode.TIMEOUT, f"worker did not answer {type(cmd).__name__} within {timeout_s:g}s")
        finally:
            handle.pending.forget(cmd.id)

    async def send(self, handle: WorkerHandle, msg: msgspec.Struct) -> None:
        """Send a control message that expects no reply, in order with everything else sent
        to the worker; waits (bounded) while its queue is full. Raises ``PeerUnreachable``
        when the worker is gone or stays full."""
        if handle.state == WorkerState.DEAD:
            raise PeerUnreachable("worker is gone")
        await self.channel.send_control(msg, to=handle.identity)

    def tell(self, handle: WorkerHandle, msg: msgspec.Struct) -> bool:
        """Send a control message that expects no reply (a Welcome, a Ping, a Shutdown)
        without blocking; False when it was dropped (the worker's queue is full or it is
        not connected)."""
        return self.channel.try_send_control(msg, to=handle.identity)

    def send_audio(self, handle: WorkerHandle, header: bytes, pcm: Any) -> bool:
        """Queue one audio frame for a worker without blocking; False when dropped."""
        return self.channel.send_audio(header, pcm, to=handle.identity)

    def close(self) -> None:
        """Close the socket; nothing is sent or received after."""
        self.channel.close()

    # -- incoming ----------------------------------------------------------------------------

    def _received(self, got: Received) -> None:
        wid = got.peer.decode(errors="replace").partition(".")[0] if got.peer else None
        handle = self.workers.get(wid) if wid is not None else None
        if handle is not None and not hmac.compare_digest(handle.identity, got.peer or b""):
            handle, wid = None, None  # a worker's id without its secret: not that worker
        msg = got.message
        if handle is None:
            if wid is not None and wid in self._departed:
                return  # a reaped worker's last messages (Exiting, events) arrive after its exit
            if isinstance(msg, Hello):
                self.reject(got.peer, f"unknown worker id {msg.worker_id!r}")
            else:
                self._bad_frame(got.peer, f"{type(msg).__name__} from an unknown peer")
            return
        handle.last_heard = time.monotonic()
        if got.pcm is not None:
            handle.frames_in += 1
            listener = handle.listener
            if listener is not None and isinstance(msg, AudioIn):
                self.frames_routed += 1
                listener.on_worker_audio(msg, got.pcm)
            return
        if isinstance(msg, (SocketText, SocketBytes, SocketClose)):
            if handle.listener is not None:
                handle.listener.on_worker_socket(msg)
        elif isinstance(msg, (Ok, Err)):
            handle.pending.resolve(msg)
        elif isinstance(msg, (Event, BotFinished, TurnFigures)):
            if handle.listener is not None:
                handle.listener.on_worker_event(msg)
        elif isinstance(msg, Pong):
            self.worker_frames_dropped += max(0, msg.frames_dropped - handle.frames_dropped)
            handle.frames_out, handle.frames_dropped = msg.frames_out, msg.frames_dropped
            handle.bot_frames_in, handle.bot_frames_out = msg.bot_frames_in, msg.bot_frames_out
        elif isinstance(msg, Hello):
            self._on_hello(handle, msg)
        elif isinstance(msg, Exiting):
            handle.exit_reason = handle.exit_reason or msg.reason
        elif isinstance(msg, LogLines):
            self._log_lines(handle, msg)
        else:
            self._bad_frame(got.peer, f"unexpected {type(msg).__name__}")

    def _log_lines(self, handle: WorkerHandle, msg: LogLines) -> None:
        # Filed under the session the worker hosts now. Lines while it hosts none, and lines
        # naming another session (a previous session's latecomers, or a bot -- which may send
        # anything -- writing into someone else's log), stay in the worker's stderr only.
        hosted = handle.session_id
        if self.on_log_lines is None or hosted is None or (msg.session_id and msg.session_id != hosted):
            return
        self.on_log_lines(hosted, msg)

    def reject(self, peer: bytes | None, reason: str) -> None:
        """Refuse a worker's Hello (never blocks: a fresh peer's queue is empty)."""
        log.warning("rejecting worker", peer=peer, reason=reason)
        if peer is not None and not self.channel.try_send_control(Reject(reason=reason), to=peer):
            log.warning("could not send Reject; the worker's handshake will time out", peer=peer)

    def _bad_frame_from(self, exc: BadFrame) -> None:
        self._bad_frame(exc.peer, str(exc))

    def _bad_frame(self, peer: bytes | None, why: str) -> None:
        if self.bad_frames.record(peer):
            log.warning("dropped undecodable frame", peer=peer, error=why, total=self.bad_frames.total)
