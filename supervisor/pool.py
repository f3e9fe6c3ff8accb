"""The worker pool: processes, the workers' ROUTER socket, and the reconcile loop.

Workers are started with ``multiprocessing``'s forkserver, its modules preloaded and frozen
(``worker.preload``). The pool answers Hellos, pings, samples each worker's PSS, turns
``reconcile`` actions into spawns, graceful retirements and kills, and routes what workers
send: replies to the request that awaits them, events and audio to the session the worker
serves. A frame that does not decode -- from a worker or a rogue process -- is counted,
logged once per peer per minute, and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import multiprocessing.forkserver
import os
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
import zmq

from callfleet.entry import run_entry
from callfleet.procfs import memory_mb
from protocol import PROTOCOL_VERSION
from protocol.audio import AudioIn
from protocol.messages import (
    Command,
    Err,
    ErrCode,
    Event,
    ExitCode,
    Exiting,
    Hello,
    Ok,
    Ping,
    Pong,
    Reject,
    Shutdown,
    Welcome,
)
from protocol.transport import BadFrame, BadFrameLog, Channel, PeerUnreachable, Received, bind_router
from supervisor.config import Config
from supervisor.reconcile import (
    ALIVE,
    BootHistory,
    Desired,
    Kill,
    Retire,
    RetireAfterSession,
    Spawn,
    WorkerState,
    WorkerView,
    reconcile,
)

log = structlog.get_logger("supervisor.pool")

RECONCILE_INTERVAL_S = 0.25
PSS_INTERVAL_S = 5.0


class PoolFull(Exception):
    """Every worker is busy and ``max_workers`` is reached."""


class WorkerListener(Protocol):
    """What a session gives the pool to hear from its worker."""

    def on_worker_event(self, event: Event) -> None: ...
    def on_worker_audio(self, header: AudioIn, pcm: Any) -> None: ...
    def on_worker_gone(self, reason: str) -> None: ...


@dataclass(eq=False)
class WorkerHandle:
    id: str
    process: Any
    started_at: float = field(default_factory=time.monotonic)
    state: WorkerState = WorkerState.BOOTING
    pid: int | None = None
    booted: bool = False
    hello_at: float | None = None
    last_heard: float = field(default_factory=time.monotonic)
    pss_mb: float | None = None
    rss_mb: float | None = None
    exit_code: int | None = None
    exit_reason: str | None = None
    retire_after_session: bool = False
    session_id: str | None = None
    listener: WorkerListener | None = None
    sessions_done: int = 0
    session_limit: int = 0  # sessions_per_worker with jitter; 0 = unlimited
    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    pending: dict[int, asyncio.Future[Ok | Err]] = field(default_factory=dict)

    @property
    def identity(self) -> bytes:
        return self.id.encode()

    def view(self) -> WorkerView:
        return WorkerView(self.id, self.state, self.started_at, self.last_heard, self.booted, self.pss_mb,
                          self.retire_after_session)

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "state": self.state.value,
            "session_id": self.session_id,
            "uptime_s": round(now - self.started_at, 1),
            "last_heard_s": round(now - self.last_heard, 2),
            "pss_mb": None if self.pss_mb is None else round(self.pss_mb, 1),
            "rss_mb": None if self.rss_mb is None else round(self.rss_mb, 1),
            "sessions_done": self.sessions_done,
            "retire_after_session": self.retire_after_session,
        }


class Pool:
    def __init__(self, config: Config, endpoint: str, *, supervisor_pid: int | None = None,
                 publish: Any = None) -> None:
        self.config = config
        self.endpoint = endpoint
        self.supervisor_pid = supervisor_pid or os.getpid()
        self.publish = publish or (lambda kind, data: None)
        self.ctx = zmq.Context()
        self.channel = Channel(bind_router(self.ctx, endpoint), routed=True)
        self.workers: dict[str, WorkerHandle] = {}
        self.boot = BootHistory()
        self.draining = False
        self.min_idle = config.pool.min_idle
        self.max_workers = config.pool.max_workers
        self._ids = itertools.count(1)
        self._req_ids = itertools.count(1)
        self._tag = secrets.token_hex(2)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._replies: set[asyncio.Task[None]] = set()  # Welcome/Reject sends under way
        self.bad_frames = BadFrameLog()
        self.restarts = 0  # workers that died or were killed while not retiring
        self.spawned = 0
        self.frames_routed = 0
        self._departed: dict[str, float] = {}  # reaped workers whose last words may still arrive
        self.mp = multiprocessing.get_context("forkserver")
        backend_module = {"sandbox": "sandbox.client", "daily": "daily"}.get(config.backend, config.backend)
        self.mp.set_forkserver_preload(["worker.preload", backend_module])

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        # Start the forkserver now (it imports the preload modules), not on the first spawn.
        await asyncio.to_thread(multiprocessing.forkserver.ensure_running)
        loop = asyncio.get_running_loop()
        self.channel.handle(self._received, self._bad_frame_from)
        self._tasks = [loop.create_task(self._manage()), loop.create_task(self._ping()),
                       loop.create_task(self._sample_memory())]

    def wake(self) -> None:
        self._wake.set()

    @property
    def desired(self) -> Desired:
        p = self.config.pool
        return Desired(self.min_idle, self.max_workers, p.worker_memory_limit_mb, p.ping_timeout_s,
                       p.start_timeout_s, self.draining)

    def alive(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if w.state in ALIVE]

    async def stop(self, timeout_s: float) -> None:
        """Shut every worker down (gracefully, then SIGKILL after ``timeout_s``)."""
        self.draining = True
        for w in self.alive():
            await self._shutdown(w, "supervisor stopping")
        deadline = time.monotonic() + timeout_s
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for w in self.alive():
            self._kill(w, "did not exit in time on stop")
        deadline = time.monotonic() + 2
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in [*self._tasks, *self._replies]:
            task.cancel()
        self.channel.close()
        self.ctx.term()
        if self.endpoint.startswith("ipc://"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint.removeprefix("ipc://"))

    # -- spawning --------------------------------------------------------------------------

    def _spawn(self, state: WorkerState = WorkerState.BOOTING) -> WorkerHandle:
        wid = f"w{next(self._ids)}-{self._tag}"
        opts = {
            "connect": self.endpoint,
            "worker_id": wid,
            "backend": self.config.backend,
            "supervisor_pid": self.supervisor_pid,
            "handshake_timeout_s": self.config.pool.start_timeout_s,
        }
        process = self.mp.Process(target=run_entry, args=("worker.main:run_options", opts), name=wid, daemon=False)
        process.start()
        handle = WorkerHandle(wid, process, state=state, pid=process.pid)
        self.workers[wid] = handle
        self.spawned += 1
        asyncio.get_running_loop().add_reader(process.sentinel, self._reap, handle)
        log.info("worker started", worker_id=wid, pid=process.pid)
        self.publish("worker", {"worker_id": wid, "state": handle.state.value, "pid": process.pid})
        return handle

    def _reap(self, handle: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(handle.process.sentinel)
        handle.process.join(0)
        code = handle.process.exitcode
        handle.exit_code = code
        was = handle.state
        handle.state = WorkerState.DEAD
        reason = handle.exit_reason or _describe_exit(code)
        expected = was == WorkerState.RETIRING or (code == ExitCode.OK and handle.session_id is None)
        if not handle.booted or code == ExitCode.BOOT_FAILED:
            self.boot = BootHistory(self.boot.failures + 1, time.monotonic())
            log.warning("worker failed to boot", worker_id=handle.id, exit_code=code, reason=reason,
                        failures=self.boot.failures)
        elif not expected:
            self.restarts += 1
            log.warning("worker died", worker_id=handle.id, exit_code=code, reason=reason, session_id=handle.session_id)
        else:
            log.info("worker exited", worker_id=handle.id, exit_code=code, reason=reason)
        for fut in handle.pending.values():
            if not fut.done():
                fut.set_result(Err(0, ErrCode.EXITING, f"worker exited: {reason}"))
        if not handle.ready.done():
            handle.ready.set_exception(WorkerGone(reason))
        listener, handle.listener = handle.listener, None
        if listener is not None:
            listener.on_worker_gone(reason)
        del self.workers[handle.id]
        self._departed[handle.id] = time.monotonic()
        if len(self._departed) > 1000:
            self._departed.pop(next(iter(self._departed)))
        self.publish("worker", {"worker_id": handle.id, "state": "dead", "exit_code": code, "reason": reason})
        self.wake()

    def _kill(self, handle: WorkerHandle, reason: str) -> None:
        if handle.state == WorkerState.DEAD:
            return
        handle.exit_reason = f"killed: {reason}"
        log.warning("killing worker", worker_id=handle.id, reason=reason)
        try:
            handle.process.kill()
        except (OSError, ValueError):
            pass

    async def _shutdown(self, handle: WorkerHandle, reason: str) -> None:
        if handle.state in (WorkerState.RETIRING, WorkerState.DEAD):
            return
        handle.state = WorkerState.RETIRING
        handle.exit_reason = f"retired: {reason}"
        if not handle.booted:
            self._kill(handle, reason)
            return
        try:
            await self.channel.send_control(Shutdown(reason=reason), to=handle.identity, timeout_s=1.0)
        except PeerUnreachable:
            self._kill(handle, reason + " (unreachable)")
            return
        asyncio.get_running_loop().call_later(self.config.pool.shutdown_timeout_s, self._kill_if_alive, handle,
                                              "did not exit after Shutdown")

    def _kill_if_alive(self, handle: WorkerHandle, reason: str) -> None:
        if handle.state != WorkerState.DEAD and handle.id in self.workers:
            self._kill(handle, reason)

    # -- sessions --------------------------------------------------------------------------

    def acquire(self, session_id: str, listener: WorkerListener) -> WorkerHandle:
        """Promise a worker to a session: an idle one, a booting one, or a new one.

        Raises ``PoolFull`` when every worker is promised and ``max_workers`` are running;
        promised-but-booting workers count, so a burst cannot overbook.
        """
        if self.draining:
            raise PoolFull("the supervisor is draining")
        candidates = [w for w in self.workers.values() if w.state == WorkerState.IDLE] or \
                     [w for w in self.workers.values() if w.state == WorkerState.BOOTING]
        if candidates:
            handle = min(candidates, key=lambda w: w.started_at)
            handle.state = WorkerState.RESERVED
        elif len(self.alive()) - sum(1 for w in self.alive() if w.state == WorkerState.RETIRING) < self.max_workers:
            handle = self._spawn(WorkerState.RESERVED)
        else:
            raise PoolFull(f"all {self.max_workers} workers are busy")
        handle.session_id = session_id
        handle.listener = listener
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value, "session_id": session_id})
        self.wake()
        return handle

    def capacity(self) -> int:
        """How many more sessions could be given a worker now."""
        alive = [w for w in self.alive() if w.state != WorkerState.RETIRING]
        free = sum(1 for w in alive if w.state in (WorkerState.IDLE, WorkerState.BOOTING))
        return free + max(0, self.max_workers - len(alive)) if not self.draining else 0

    def mark_busy(self, handle: WorkerHandle) -> None:
        if handle.state == WorkerState.RESERVED:
            handle.state = WorkerState.BUSY
            self.publish("worker", {"worker_id": handle.id, "state": "busy", "session_id": handle.session_id})

    async def release(self, handle: WorkerHandle) -> None:
        """The session is done with this worker: back to idle, or retired."""
        if handle.state == WorkerState.DEAD:
            return
        handle.listener = None
        handle.session_id = None
        handle.sessions_done += 1
        spw = handle.session_limit
        if spw and handle.sessions_done >= spw:
            # The worker exits by itself after spw calls (Welcome told it); expect it.
            handle.state = WorkerState.RETIRING
            handle.exit_reason = f"retired: hosted {handle.sessions_done} session(s)"
            asyncio.get_running_loop().call_later(self.config.pool.shutdown_timeout_s, self._kill_if_alive, handle,
                                                  "did not exit after its last session")
        elif handle.retire_after_session or self.draining:
            await self._shutdown(handle, "retire after session")
        else:
            handle.state = WorkerState.IDLE
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value})
        self.wake()

    async def request(self, handle: WorkerHandle, cmd: Command, timeout_s: float) -> Ok | Err:
        """Send a command and wait for its one reply (or an Err when the worker dies)."""
        if handle.state == WorkerState.DEAD:
            return Err(cmd.id, ErrCode.EXITING, "worker is gone")
        fut: asyncio.Future[Ok | Err] = asyncio.get_running_loop().create_future()
        handle.pending[cmd.id] = fut
        try:
            await self.channel.send_control(cmd, to=handle.identity)
            return await asyncio.wait_for(fut, timeout_s)
        except PeerUnreachable as exc:
            return Err(cmd.id, ErrCode.EXITING, str(exc))
        except TimeoutError:
            return Err(cmd.id, ErrCode.TIMEOUT, f"worker did not answer {type(cmd).__name__} within {timeout_s:g}s")
        finally:
            handle.pending.pop(cmd.id, None)

    def next_request_id(self) -> int:
        return next(self._req_ids)

    # -- loops -----------------------------------------------------------------------------

    async def _manage(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), RECONCILE_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._apply(reconcile(self.desired, [w.view() for w in self.workers.values()], self.boot,
                                            time.monotonic()))
            except Exception:
                log.exception("reconcile failed")

    async def _apply(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Spawn):
                for _ in range(action.count):
                    self._spawn()
            elif isinstance(action, Kill):
                handle = self.workers.get(action.worker_id)
                if handle is not None:
                    self._kill(handle, action.reason)
            elif isinstance(action, Retire):
                handle = self.workers.get(action.worker_id)
                if handle is not None:
                    await self._shutdown(handle, action.reason)
            elif isinstance(action, RetireAfterSession):
                handle = self.workers.get(action.worker_id)
                if handle is not None:
                    handle.retire_after_session = True
                    log.warning("worker will retire after its session", worker_id=handle.id, reason=action.reason)

    async def _ping(self) -> None:
        seq = itertools.count(1)
        while True:
            await asyncio.sleep(self.config.pool.ping_interval_s)
            ping = Ping(seq=next(seq), sent_at=time.time())
            for handle in list(self.workers.values()):
                if handle.booted and handle.state != WorkerState.DEAD:
                    try:
                        await self.channel.send_control(ping, to=handle.identity, timeout_s=0.5)
                    except PeerUnreachable:
                        pass  # missed pings are judged by reconcile

    async def _sample_memory(self) -> None:
        while True:
            for handle in list(self.workers.values()):
                if handle.pid and handle.booted:
                    mem = memory_mb(handle.pid)
                    if mem is not None:
                        handle.pss_mb, handle.rss_mb = mem
            await asyncio.sleep(PSS_INTERVAL_S)

    def _received(self, got: Received) -> None:
        """Every message from a worker, synchronously as the channel drains the socket: audio
        goes straight to its session, without a task or a copy."""
        handle = self.workers.get(got.peer.decode(errors="replace")) if got.peer else None
        msg = got.message
        if handle is None:
            if got.peer is not None and got.peer.decode(errors="replace") in self._departed:
                return  # a reaped worker's last messages (Exiting, events) arrive after its exit
            if isinstance(msg, Hello):
                self._reply_later(self._reject(got.peer, f"unknown worker id {msg.worker_id!r}"))
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
        if isinstance(msg, (Ok, Err)):
            fut = handle.pending.get(msg.id)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif isinstance(msg, Event):
            if handle.listener is not None:
                handle.listener.on_worker_event(msg)
        elif isinstance(msg, Pong):
            handle.frames_out, handle.frames_dropped = msg.frames_out, msg.frames_dropped
        elif isinstance(msg, Hello):
            self._reply_later(self._hello(handle, msg))
        elif isinstance(msg, Exiting):
            handle.exit_reason = handle.exit_reason or msg.reason
        else:
            self._bad_frame(got.peer, f"unexpected {type(msg).__name__}")

    def _reply_later(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _hello(self, handle: WorkerHandle, hello: Hello) -> None:
        if hello.protocol_version != PROTOCOL_VERSION:
            await self._reject(handle.identity, f"protocol {hello.protocol_version}, supervisor speaks {PROTOCOL_VERSION}")
            return
        handle.booted = True
        handle.hello_at = time.monotonic()
        handle.pid = hello.pid
        if handle.state == WorkerState.BOOTING:
            handle.state = WorkerState.IDLE
        self.boot = BootHistory()
        p = self.config.pool
        handle.session_limit = _jittered(p.sessions_per_worker)
        await self.channel.send_control(Welcome(ping_interval_s=p.ping_interval_s, ping_timeout_s=p.ping_timeout_s,
                                                sessions_per_worker=handle.session_limit), to=handle.identity)
        if not handle.ready.done():
            handle.ready.set_result(None)
        log.info("worker ready", worker_id=handle.id, pid=hello.pid,
                 boot_ms=round((handle.hello_at - handle.started_at) * 1000, 1))
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value, "pid": hello.pid})

    async def _reject(self, peer: bytes | None, reason: str) -> None:
        log.warning("rejecting worker", peer=peer, reason=reason)
        if peer is not None:
            try:
                await self.channel.send_control(Reject(reason=reason), to=peer, timeout_s=0.5)
            except PeerUnreachable:
                pass

    def _bad_frame_from(self, exc: BadFrame) -> None:
        self._bad_frame(exc.peer, str(exc))

    def _bad_frame(self, peer: bytes | None, why: str) -> None:
        if self.bad_frames.record(peer):
            log.warning("dropped undecodable frame", peer=peer, error=why, total=self.bad_frames.total)


def _jittered(limit: int) -> int:
    """``sessions_per_worker`` plus up to 10 % so workers started together do not all
    recycle at once (gunicorn's max_requests_jitter)."""
    if limit <= 1:
        return limit
    return limit + random.randint(0, max(1, limit // 10))


class WorkerGone(Exception):
    """The worker promised to a session died before it was ready."""


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        return f"killed by {signal.Signals(-code).name}"
    try:
        return f"exit {code} ({ExitCode(code).name.lower()})"
    except ValueError:
        return f"exit {code}"
