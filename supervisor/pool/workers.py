"""What the supervisor knows of one worker process, and what a session gives the pool to
hear from its worker."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.audio import AudioIn
from protocol.messages import BotFinished, Event, SocketBytes, SocketClose, SocketText, TurnFigures
from supervisor.pool.lanes import BUILTIN
from supervisor.pool.pending import PendingRequests
from supervisor.pool.reconcile import WorkerState, WorkerView


class WorkerGone(Exception):
    """The worker promised to a session died before it was ready."""


class WorkerListener(Protocol):
    """What a session gives the pool to hear from its worker."""

    def on_worker_event(self, event: Event | BotFinished | TurnFigures) -> None: ...
    def on_worker_audio(self, header: AudioIn, pcm: Any) -> None: ...
    def on_worker_gone(self, reason: str) -> None: ...
    def on_worker_socket(self, msg: SocketText | SocketBytes | SocketClose) -> None: ...


@dataclass(eq=False)
class WorkerHandle:
    """One worker process as the pool tracks it, from its spawn until it is reaped."""

    id: str
    process: Any
    started_at: float = field(default_factory=time.monotonic)
    state: WorkerState = WorkerState.BOOTING
    lane: str = BUILTIN  # which forkserver it is forked from (supervisor.pool.lanes)
    pid: int | None = None
    started: bool = False  # the process exists (its start runs off the loop)
    booted: bool = False  # said Hello and was welcomed
    hello_at: float | None = None
    last_heard: float = field(default_factory=time.monotonic)
    pss_mb: float | None = None
    rss_mb: float | None = None
    exit_code: int | None = None
    exit_reason: str | None = None
    kill_pending: str | None = None  # a kill asked for before the process existed
    retire_after_session: bool = False
    session_id: str | None = None
    listener: WorkerListener | None = None
    calls_done: int = 0  # calls the worker hosted and left, as the worker counts them
    session_limit: int = 0  # sessions_per_worker with jitter; 0 = unlimited
    frames_in: int = 0
    frames_out: int = 0  # the worker's own counts, from its last Pong
    frames_dropped: int = 0
    bot_frames_in: int = 0  # a hosted bot's own audio, as the worker counts it (its last Pong)
    bot_frames_out: int = 0
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    pending: PendingRequests = field(default_factory=PendingRequests)
    # Part of the worker's routing id, known only to it and the supervisor: a bot that
    # reaches the workers' socket cannot connect as a worker it is not (a worker's id is
    # predictable, this is not).
    secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    # The worker's routing id on the workers' socket, its id and its secret: built once,
    # since every frame of the call's audio is sent to it and checked against it.
    identity: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.identity = f"{self.id}.{self.secret}".encode()

    def view(self) -> WorkerView:
        """What ``reconcile`` judges of this worker."""
        return WorkerView(self.id, self.state, self.started_at, self.last_heard, self.booted, self.pss_mb,
                          self.retire_after_session, self.lane)

    def describe(self, now: float) -> dict[str, Any]:
        """This worker as ``ctl workers`` shows it (``now``: monotonic)."""
        return {
            "id": self.id,
            "pid": self.pid,
            "state": self.state.value,
            "lane": self.lane,
            "session_id": self.session_id,
            "uptime_s": round(now - self.started_at, 1),
            "last_heard_s": round(now - self.last_heard, 2),
            "pss_mb": None if self.pss_mb is None else round(self.pss_mb, 1),
            "rss_mb": None if self.rss_mb is None else round(self.rss_mb, 1),
            "calls_done": self.calls_done,
            "retire_after_session": self.retire_after_session,
            "frames": {"in": self.frames_in, "out": self.frames_out, "dropped": self.frames_dropped},
        }
