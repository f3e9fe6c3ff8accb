"""The Pool: worker processes kept as desired, promised to sessions and taken back.

The pool owns its desired state (``set_desired``: the config's pool settings, ``min_idle``,
``max_workers``, draining, the lanes the profiles need) and a loop that runs ``reconcile``
against the workers it observes and carries out its actions: spawns, graceful retirements
and kills. A session acquires a worker of its lane (``supervisor.pool.lanes``), reaches it
through ``request`` and ``send_audio`` (the one way a session's messages go to its worker),
and releases it.

Accounting: every live process counts against ``max_workers``, retiring ones included, so
the process count never exceeds it. A worker's hosted calls are the worker's own count
(reported in the reply to ``Leave``), so both sides agree on when it retires.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
import zmq

from callfleet.privileges import WorkerUser
from protocol.messages import Err, ExitCode, Hello, Ok, Shutdown
from protocol.transport import BadFrameLog
from supervisor.config import Config
from supervisor.pool import liveness, memory
from supervisor.pool.forkserver import Forkserver, set_environment
from supervisor.pool.lanes import BUILTIN, PIPECAT, can_host
from supervisor.pool.processes import Processes, describe_exit
from supervisor.pool.reconcile import (
    ALIVE,
    Action,
    BootHistory,
    Desired,
    Kill,
    Retire,
    RetireAfterSession,
    Spawn,
    WorkerState,
    reconcile,
)
from supervisor.pool.router import Request, WorkerRouter
from supervisor.pool.workers import WorkerGone, WorkerHandle, WorkerListener

log = structlog.get_logger("supervisor.pool")

RECONCILE_INTERVAL_S = 0.25

Publish = Callable[[str, dict[str, Any]], None]


class PoolFull(Exception):
    """Every worker is busy and ``max_workers`` is reached (or the pool drains)."""


class Pool:
    """The worker processes of one supervisor; runs on its event loop."""

    def __init__(self, config: Config, endpoint: str, *, supervisor_pid: int | None = None,
                 publish: Publish | None = None, lanes: tuple[str, ...] = (BUILTIN,),
                 pipecat_bots: list[str] | None = None, worker_user: WorkerUser | None = None) -> None:
        self.config = config
        self.endpoint = endpoint
        self.supervisor_pid = supervisor_pid or os.getpid()
        self.publish: Publish = publish or (lambda kind, data: None)
        self.ctx = zmq.Context()
        self.workers: dict[str, WorkerHandle] = {}
        self.router = WorkerRouter(self.ctx, endpoint, self.workers, self._hello)
        self.desired = _desired(config, config.pool.min_idle, config.pool.max_workers, draining=False, lanes=lanes)
        self.boot: dict[str, BootHistory] = {}  # each lane's boot failures; none yet
        self.bots = list(pipecat_bots or [])
        self._worker_user = worker_user
        set_environment(config.backend, self.bots, worker_user, config.pool.merge_pages)
        self.forkservers = {lane: Forkserver(lane) for lane in lanes}
        self.processes = Processes(self.forkservers, self._started, self._dead)
        self._after_exit: dict[str, WorkerHandle] = {}  # a worker's id -> the spawn waiting for its exit
        self.restarts = 0  # workers that died or were killed while not retiring
        self.spawned = 0
        self._ids = itertools.count(1)
        self._tag = secrets.token_hex(2)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._warmed = False  # min_idle workers were idle at once, since start-up

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start each lane's forkserver (it imports its preload modules now, not on the
        first spawn; the lean one first, so built-in workers need not wait for Pipecat's
        imports), listen to the workers, and start the reconcile, ping and memory loops."""
        for forkserver in self.forkservers.values():
            await self.processes.run(forkserver.ensure_running)
        loop = asyncio.get_running_loop()
        self.router.start()
        self._tasks = [loop.create_task(self._manage()),
                       loop.create_task(liveness.ping_forever(self.workers, self.router,
                                                              lambda: self.config.pool.ping_interval_s)),
                       loop.create_task(memory.sample_forever(self.workers,
                                                              lambda: float(self.config.pool.worker_memory_limit_mb)))]

    def set_desired(self, *, config: Config | None = None, min_idle: int | None = None,
                    max_workers: int | None = None, draining: bool | None = None) -> Desired:
        """Change what the pool converges to and wake its reconcile loop: the config (its
        pool settings and backend, for the workers started from now on), the idle workers
        each lane keeps warm, the process cap, whether it drains. What is not given stays;
        the lanes change with the profiles (``reload_lanes``).

        Raises ``ValueError`` when ``min_idle`` would exceed ``max_workers``; nothing changes then.
        """
        now = self.desired
        desired = _desired(config or self.config, now.min_idle if min_idle is None else min_idle,
                           now.max_workers if max_workers is None else max_workers,
                           draining=now.draining if draining is None else draining, lanes=now.lanes)
        if desired.min_idle > desired.max_workers:
            raise ValueError(f"min_idle ({desired.min_idle}) cannot exceed max_workers ({desired.max_workers})")
        self.config = config or self.config
        self.desired = desired
        self.wake()
        return desired

    def wake(self) -> None:
        """Run the reconcile step now rather than at its next interval."""
        self._wake.set()

    async def reload_lanes(self, lanes: tuple[str, ...], bots: list[str]) -> None:
        """New profiles (a reload): a lane they need that has no forkserver gets one, and new
        pipecat bots get the Pipecat lane a new forkserver with them preloaded, which forks
        its workers from now on, so those import nothing; a replaced one keeps serving the
        workers it forked until the pool stops. A lane no longer needed keeps no idle
        worker (``reconcile``)."""
        replace = bool(bots) and bots != self.bots and PIPECAT in self.forkservers  # none left: the lane empties
        self.bots = list(bots)
        set_environment(self.config.backend, self.bots, self._worker_user, self.config.pool.merge_pages)
        for lane in lanes:
            if lane not in self.forkservers:
                self.forkservers[lane] = Forkserver(lane)
                await self.processes.run(self.forkservers[lane].ensure_running)
                log.info("forkserver started for a new lane", lane=lane)
        if replace:
            await self.processes.run(self.forkservers[PIPECAT].replace)
            log.info("forkserver replaced for new pipecat bots", bots=len(bots))
        self.desired = dataclasses.replace(self.desired, lanes=lanes)
        self.wake()

    def alive(self) -> list[WorkerHandle]:
        """The workers whose process may still run."""
        return [w for w in self.workers.values() if w.state in ALIVE]

    async def stop(self, deadline: float) -> None:
        """Shut every worker down (gracefully, then SIGKILL at ``deadline``, monotonic),
        then the forkserver and the resource tracker, so the daemon leaves no process."""
        self.desired = dataclasses.replace(self.desired, draining=True)
        for w in self.alive():
            self._shutdown(w, "supervisor stopping")
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for w in self.alive():
            self.processes.kill(w, "did not exit in time on stop")
        grace = time.monotonic() + 2
        while self.alive() and time.monotonic() < grace:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        await self.processes.settle()
        self.router.close()
        self.ctx.term()
        if self.endpoint.startswith("ipc://") and not self.endpoint.startswith("ipc://@"):  # @: abstract, no file
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint.removeprefix("ipc://"))
        await self.processes.stop()

    # -- sessions --------------------------------------------------------------------------

    def acquire(self, session_id: str, listener: WorkerListener, lane: str, *, failover: bool = False) -> WorkerHandle:
        """Promise a worker of ``lane`` to a session: an idle one, a booting one, or a new
        one. At ``max_workers``, a built-in session borrows an idle Pipecat worker, and a
        session with no worker of its lane free takes the place of an idle worker of the
        other lane: that one is killed (it holds no session) and the new one forked once
        it has exited.

        Raises ``PoolFull`` when every worker is promised and ``max_workers`` processes are
        alive (retiring ones count: they still hold memory and a CPU share); promised but
        booting workers count too, so a burst cannot overbook.
        """
        if self.desired.draining and not failover:  # a drain takes no new session, but keeps live ones alive
            raise PoolFull("the supervisor is draining")
        at_max = len(self.alive()) >= self.desired.max_workers
        handle = (self._oldest(WorkerState.IDLE, lambda w: w == lane) or self._oldest(WorkerState.BOOTING, lambda w: w == lane)
                  or (self._oldest(WorkerState.IDLE, lambda w: w != lane and can_host(w, lane)) if at_max else None))
        if handle is not None:
            handle.state = WorkerState.RESERVED
        elif not at_max:
            handle = self._spawn(lane, WorkerState.RESERVED)
        elif (other := self._oldest(WorkerState.IDLE, lambda w: w != lane)) is not None:
            handle = self._spawn(lane, WorkerState.RESERVED, after=other)
        else:
            raise PoolFull(f"all {self.desired.max_workers} workers are busy")
        handle.session_id = session_id
        handle.listener = listener
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value, "session_id": session_id})
        self.wake()
        return handle

    def _oldest(self, state: WorkerState, lane_fits: Callable[[str], bool]) -> WorkerHandle | None:
        """The oldest worker in ``state`` whose lane fits."""
        candidates = [w for w in self.workers.values() if w.state == state and lane_fits(w.lane)]
        return min(candidates, key=lambda w: w.started_at) if candidates else None

    def idle(self, lane: str | None = None) -> int:
        """Workers booted (forked from their lane's preloaded forkserver, Hello said) and
        free: of ``lane``, or of every lane."""
        return sum(1 for w in self.workers.values() if w.state == WorkerState.IDLE and lane in (None, w.lane))

    @property
    def warm(self) -> bool:
        """Whether every lane has had its ``min_idle`` workers idle at once since start-up:
        until then the first callers would wait for a forkserver's preload and a worker's
        boot. Latched: afterwards sessions taking idle workers leave the pool warm (it
        refills them while spawning up to ``max_workers`` on demand), so readiness does not
        flap under load, nor when a reload adds a lane."""
        return self._latch_warm()

    def warming(self) -> list[str]:
        """What readiness still waits for, one line per lane short of its warm workers."""
        if self._latch_warm():
            return []
        return [f"{self.idle(lane)} of min_idle {target} {lane} workers are warm yet"
                for lane, target in self.desired.idle_targets().items() if self.idle(lane) < target]

    def _latch_warm(self) -> bool:
        targets = self.desired.idle_targets()
        if not self._warmed and all(self.idle(lane) >= target for lane, target in targets.items()):
            self._warmed = True
            log.info("pool warm", **{f"idle_{lane}": self.idle(lane) for lane in targets},
                     min_idle=self.desired.min_idle)
        return self._warmed

    def boot_failing(self) -> bool:
        """Whether workers of some lane are failing to boot (the last ones did not)."""
        return any(history.failures for history in self.boot.values())

    def capacity(self) -> int:
        """How many more sessions could be given a worker now."""
        if self.desired.draining:
            return 0
        alive = self.alive()
        free = sum(1 for w in alive if w.state in (WorkerState.IDLE, WorkerState.BOOTING))
        return free + max(0, self.desired.max_workers - len(alive))

    def mark_busy(self, handle: WorkerHandle) -> None:
        """The session's bot is joining on its promised worker."""
        if handle.state == WorkerState.RESERVED:
            handle.state = WorkerState.BUSY
            self.publish("worker", {"worker_id": handle.id, "state": "busy", "session_id": handle.session_id})

    def release(self, handle: WorkerHandle, calls_done: int | None) -> None:
        """The session is done with this worker. ``calls_done`` is the worker's own count
        from its reply to Leave (None when it did not answer: it is retired now). A worker
        that reached its ``sessions_per_worker`` exits by itself; one whose session never
        joined goes back to idle."""
        if handle.state == WorkerState.DEAD:
            return
        handle.listener = None
        handle.session_id = None
        if calls_done is not None:
            handle.calls_done = calls_done
        limit = handle.session_limit
        if calls_done is None:
            self._shutdown(handle, "did not answer Leave")
        elif limit and handle.calls_done >= limit:
            # The worker exits by itself after `limit` calls (Welcome told it); expect it.
            handle.state = WorkerState.RETIRING
            handle.exit_reason = f"retired: hosted {handle.calls_done} call(s)"
            self._kill_later(handle, "did not exit after its last call")
        elif handle.retire_after_session or self.desired.draining:
            self._shutdown(handle, "retire after session")
        else:
            handle.state = WorkerState.IDLE if handle.booted else WorkerState.BOOTING
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value})
        self.wake()

    async def request(self, handle: WorkerHandle, cmd: Request, timeout_s: float,
                      on_sent: Callable[[], None] | None = None) -> Ok | Err:
        """Send a command to a worker and wait for its one reply (an Err when the worker
        dies, the send fails or no reply comes within ``timeout_s``); ``on_sent`` runs as
        soon as it is on its way."""
        return await self.router.request(handle, cmd, timeout_s, on_sent)

    async def relay(self, handle: WorkerHandle, msg: msgspec.Struct) -> None:
        """Send a worker one message of its phone call's WebSocket, in order, waiting
        (bounded) while its queue is full: a slow worker slows its own call only. Raises
        ``PeerUnreachable`` when the worker is gone or stays full."""
        await self.router.send(handle, msg)

    def send_audio(self, handle: WorkerHandle, header: bytes, pcm: Any) -> bool:
        """Queue one frame of a session's audio for its worker without blocking; False when
        it was dropped (the worker's queue is full or it is gone)."""
        return self.router.send_audio(handle, header, pcm)

    def next_request_id(self) -> int:
        """An id for the next command a session sends."""
        return self.router.next_request_id()

    # -- processes ---------------------------------------------------------------------------

    def _spawn(self, lane: str, state: WorkerState = WorkerState.BOOTING,
               after: WorkerHandle | None = None) -> WorkerHandle:
        """A new worker of ``lane``, counted at once; its process starts on the spawner
        thread, now or, ``after`` given (an idle worker taking its place), once that one is
        killed and has exited, so the process count never exceeds ``max_workers``."""
        wid = f"w{next(self._ids)}-{self._tag}"
        handle = WorkerHandle(wid, None, state=state, lane=lane)
        self.workers[wid] = handle
        self.spawned += 1
        if after is None:
            self._start(handle)
        else:
            self._after_exit[after.id] = handle
            after.state = WorkerState.RETIRING  # nobody else takes it meanwhile
            self.processes.kill(after, f"its place went to a {lane} worker (max_workers reached)")
        return handle

    def _start(self, handle: WorkerHandle) -> None:
        self.processes.start(handle, {
            "connect": self.endpoint,
            "worker_id": handle.id,
            "identity": handle.identity.decode(),
            "backend": self.config.backend,
            "supervisor_pid": self.supervisor_pid,
            "handshake_timeout_s": self.config.pool.start_timeout_s,
        })

    def _started(self, handle: WorkerHandle) -> None:
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value, "pid": handle.pid})

    def _hello(self, handle: WorkerHandle, hello: Hello) -> None:
        if not liveness.welcome(handle, hello, self.config.pool, self.router):
            return
        self.boot.pop(handle.lane, None)  # this lane boots again
        self._latch_warm()  # as the min_idle-th worker says Hello, whether or not anyone asks
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value, "pid": hello.pid})
        self.wake()

    def _dead(self, handle: WorkerHandle, code: int | None, why: str | None) -> None:
        if handle.state == WorkerState.DEAD and handle.id not in self.workers:
            return
        handle.exit_code = code
        was = handle.state
        handle.state = WorkerState.DEAD
        reason = why or handle.exit_reason or describe_exit(code)
        expected = was == WorkerState.RETIRING or (code == ExitCode.OK and handle.session_id is None)
        if not handle.booted or code == ExitCode.BOOT_FAILED:
            failures = self.boot.get(handle.lane, BootHistory()).failures + 1
            self.boot[handle.lane] = BootHistory(failures, time.monotonic())
            log.warning("worker failed to boot", worker_id=handle.id, lane=handle.lane, exit_code=code,
                        reason=reason, failures=failures)
        elif not expected:
            self.restarts += 1
            log.warning("worker died", worker_id=handle.id, exit_code=code, reason=reason, session_id=handle.session_id)
        else:
            log.info("worker exited", worker_id=handle.id, exit_code=code, reason=reason)
        handle.pending.fail_all(f"worker exited: {reason}")
        if not handle.ready.done():
            handle.ready.set_exception(WorkerGone(reason))
            handle.ready.exception()  # retrieved: a session may never have awaited it
        listener, handle.listener = handle.listener, None
        if listener is not None:
            listener.on_worker_gone(reason)
        self.workers.pop(handle.id, None)
        self.router.departed(handle)
        self.publish("worker", {"worker_id": handle.id, "state": "dead", "exit_code": code, "reason": reason})
        waiting = self._after_exit.pop(handle.id, None)
        if waiting is not None:  # its place was promised to a worker of another lane
            if waiting.kill_pending is not None:  # that one's session ended meanwhile
                self._dead(waiting, None, f"killed before it started: {waiting.kill_pending}")
            else:
                self._start(waiting)
        self.wake()

    def _shutdown(self, handle: WorkerHandle, reason: str) -> None:
        """Ask a worker to exit now; it is killed if it has not after ``shutdown_timeout_s``."""
        if handle.state in (WorkerState.RETIRING, WorkerState.DEAD):
            return
        handle.state = WorkerState.RETIRING
        handle.exit_reason = f"retired: {reason}"
        if not handle.booted or not self.router.tell(handle, Shutdown(reason=reason)):
            self.processes.kill(handle, reason if not handle.booted else reason + " (unreachable)")
            return
        self._kill_later(handle, "did not exit after Shutdown")

    def _kill_later(self, handle: WorkerHandle, reason: str) -> None:
        asyncio.get_running_loop().call_later(self.config.pool.shutdown_timeout_s, self._kill_if_alive, handle,
                                              reason)

    def _kill_if_alive(self, handle: WorkerHandle, reason: str) -> None:
        if handle.state != WorkerState.DEAD and handle.id in self.workers:
            self.processes.kill(handle, reason)

    # -- the reconcile loop --------------------------------------------------------------------

    async def _manage(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), RECONCILE_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                self._apply(reconcile(self.desired, [w.view() for w in self.workers.values()], self.boot,
                                      time.monotonic()))
            except Exception:
                log.exception("reconcile failed")

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Spawn):
                for _ in range(action.count):
                    self._spawn(action.lane)
                continue
            handle = self.workers.get(action.worker_id)
            if handle is None:
                continue
            if isinstance(action, Kill):
                self.processes.kill(handle, action.reason)
            elif isinstance(action, Retire):
                self._shutdown(handle, action.reason)
            elif isinstance(action, RetireAfterSession):
                handle.retire_after_session = True
                log.warning("worker will retire after its session", worker_id=handle.id, reason=action.reason)

    # -- counters for views ------------------------------------------------------------------

    @property
    def frames_routed(self) -> int:
        """Audio frames routed from workers to their sessions."""
        return self.router.frames_routed

    @property
    def worker_frames_dropped(self) -> int:
        """Audio frames the workers dropped, as their Pongs report."""
        return self.router.worker_frames_dropped

    @property
    def bad_frames(self) -> BadFrameLog:
        """Undecodable frames dropped on the workers' socket."""
        return self.router.bad_frames


def _desired(config: Config, min_idle: int, max_workers: int, *, draining: bool, lanes: tuple[str, ...]) -> Desired:
    p = config.pool
    return Desired(min_idle, max_workers, p.worker_memory_limit_mb, p.ping_timeout_s, p.start_timeout_s, draining,
                   lanes)
