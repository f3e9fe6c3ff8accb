"""The worker pool: the processes, and the reconcile loop that keeps them as desired.

Workers are started with ``multiprocessing``'s forkserver, its modules preloaded and frozen
(``worker.preload``). The pool welcomes Hellos, pings, samples each worker's PSS, promises
workers to sessions and takes them back, and turns ``reconcile``'s actions into spawns,
graceful retirements and kills. Messages travel through ``WorkerRouter``.

The event loop also forwards every session's audio, so nothing here blocks it: process
starts and exit-code reads go through one spawner thread (multiprocessing's bookkeeping is
not thread-safe, so one thread does all of it), PSS is read on a thread, pings never wait.

Accounting: every live process counts against ``max_workers``, retiring ones included, so
the process count never exceeds it. A worker's hosted calls are the worker's own count
(reported in the reply to ``Leave``), so both sides agree on when it retires.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import random
import secrets
import signal
import time
from typing import Any

import structlog
import zmq

from callfleet.entry import run_entry
from callfleet.privileges import WorkerUser
from callfleet.procfs import memory_mb, rss_mb
from protocol import PROTOCOL_VERSION
from protocol.environment import (
    DROP_PRIVILEGES_ENV,
    PRELOAD_BACKEND_ENV,
    PRELOAD_BOTS_ENV,
    WORKER_GID_ENV,
    WORKER_HOME_ENV,
    WORKER_UID_ENV,
)
from protocol.messages import Command, Err, ExitCode, Hello, Ok, Ping, Shutdown, Welcome
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
    reconcile,
)
from supervisor.router import WorkerRouter
from supervisor.workers import WorkerGone, WorkerHandle, WorkerListener

log = structlog.get_logger("supervisor.pool")

RECONCILE_INTERVAL_S = 0.25

PSS_INTERVAL_S = 5.0
PSS_REFRESH_S = 60.0  # a full PSS read of every worker, for ctl workers

__all__ = ["Pool", "PoolFull", "WorkerGone", "WorkerHandle", "WorkerListener"]


class PoolFull(Exception):
    """Every worker is busy and ``max_workers`` is reached."""


class Pool:
    def __init__(self, config: Config, endpoint: str, *, supervisor_pid: int | None = None,
                 publish: Any = None, pipecat_bots: list[str] | None = None,
                 worker_user: WorkerUser | None = None) -> None:
        self.config = config
        self.endpoint = endpoint
        self.supervisor_pid = supervisor_pid or os.getpid()
        self.publish = publish or (lambda kind, data: None)
        self.ctx = zmq.Context()
        self.workers: dict[str, WorkerHandle] = {}
        self.router = WorkerRouter(self.ctx, endpoint, self.workers, self._hello)
        self.boot = BootHistory()
        self.draining = False
        self.min_idle = config.pool.min_idle
        self.max_workers = config.pool.max_workers
        self._ids = itertools.count(1)
        self._tag = secrets.token_hex(2)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spawner")
        self._starts: set[asyncio.Future[None]] = set()
        self._old_forkservers: list[Any] = []  # replaced on reload, stopped with the pool
        self.restarts = 0  # workers that died or were killed while not retiring
        self.spawned = 0
        self.mp = multiprocessing.get_context("forkserver")
        self.worker_user = worker_user  # None: workers run as this process's user
        self._set_preload(pipecat_bots or [])

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        # Start the forkserver now (it imports the preload modules), not on the first spawn.
        await asyncio.get_running_loop().run_in_executor(self._spawner, multiprocessing.forkserver.ensure_running)
        loop = asyncio.get_running_loop()
        self.router.start()
        self._tasks = [loop.create_task(self._manage()), loop.create_task(self._ping()),
                       loop.create_task(self._sample_memory())]

    def wake(self) -> None:
        self._wake.set()

    def _set_preload(self, bots: list[str]) -> None:
        """What the forkserver imports before forking: first ``worker.privileges`` (it
        becomes the workers' user and gives up what a bot must not have, before anything
        else runs), then the backend, Pipecat and every pipecat profile's bot when there are
        any, and last ``worker.preload`` (it freezes the collector over all of it). The
        forkserver inherits this process's environment, which holds nothing of the
        operator's (``supervisor.environment``), and reads these settings from it."""
        self.pipecat_bots = list(bots)
        backend_module = {"sandbox": "sandbox.client", "daily": "daily"}.get(self.config.backend, self.config.backend)
        os.environ[PRELOAD_BACKEND_ENV] = self.config.backend
        os.environ[PRELOAD_BOTS_ENV] = "\n".join(bots)
        os.environ[DROP_PRIVILEGES_ENV] = "1"
        if self.worker_user is not None:
            os.environ[WORKER_UID_ENV] = str(self.worker_user.uid)
            os.environ[WORKER_GID_ENV] = str(self.worker_user.gid)
            os.environ[WORKER_HOME_ENV] = self.worker_user.home
        pipecat = ["worker.pipecat_preload"] if bots else []
        self.mp.set_forkserver_preload(["worker.privileges", backend_module, *pipecat, "worker.preload"])

    async def preload_bots(self, bots: list[str]) -> None:
        """New pipecat bots (a reload): a new forkserver with them preloaded forks every
        worker from now on, so those import nothing; the old one keeps serving the workers
        it forked (it reports their exit codes, and stopping it would wait for them) until
        the pool stops."""
        if bots == self.pipecat_bots:
            return
        self._set_preload(bots)
        old = await asyncio.get_running_loop().run_in_executor(self._spawner, _new_forkserver)
        self._old_forkservers.append(old)
        log.info("forkserver replaced for new pipecat bots", bots=len(bots))

    @property
    def desired(self) -> Desired:
        p = self.config.pool
        return Desired(self.min_idle, self.max_workers, p.worker_memory_limit_mb, p.ping_timeout_s,
                       p.start_timeout_s, self.draining)

    def alive(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if w.state in ALIVE]

    async def stop(self, deadline: float) -> None:
        """Shut every worker down (gracefully, then SIGKILL at ``deadline``, monotonic),
        then the forkserver and the resource tracker, so the daemon leaves no process."""
        self.draining = True
        for w in self.alive():
            self._shutdown(w, "supervisor stopping")
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for w in self.alive():
            self._kill(w, "did not exit in time on stop")
        grace = time.monotonic() + 2
        while self.alive() and time.monotonic() < grace:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        if self._starts:
            await asyncio.wait(set(self._starts), timeout=2)
        self.router.close()
        self.ctx.term()
        if self.endpoint.startswith("ipc://") and not self.endpoint.startswith("ipc://@"):  # @: abstract, no file
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint.removeprefix("ipc://"))
        await asyncio.get_running_loop().run_in_executor(self._spawner, _stop_helper_processes, self._old_forkservers)
        self._spawner.shutdown(wait=False)

    # -- processes ---------------------------------------------------------------------------

    def _spawn(self, state: WorkerState = WorkerState.BOOTING) -> WorkerHandle:
        """A new worker, counted at once; its process starts on the spawner thread."""
        wid = f"w{next(self._ids)}-{self._tag}"
        handle = WorkerHandle(wid, None, state=state)
        opts = {
            "connect": self.endpoint,
            "worker_id": wid,
            "identity": handle.identity.decode(),
            "backend": self.config.backend,
            "supervisor_pid": self.supervisor_pid,
            "handshake_timeout_s": self.config.pool.start_timeout_s,
        }
        handle.process = self.mp.Process(target=run_entry, args=("worker.main:run_options", opts), name=wid,
                                         daemon=False)
        self.workers[wid] = handle
        self.spawned += 1
        start = asyncio.get_running_loop().run_in_executor(self._spawner, handle.process.start)
        self._starts.add(start)
        start.add_done_callback(lambda fut: self._started(handle, fut))
        return handle

    def _started(self, handle: WorkerHandle, fut: asyncio.Future[None]) -> None:
        self._starts.discard(fut)
        if fut.cancelled() or fut.exception() is not None:
            reason = "start cancelled" if fut.cancelled() else f"could not start: {fut.exception()}"
            log.error("worker process did not start", worker_id=handle.id, error=reason)
            self._dead(handle, None, reason)
            return
        handle.started, handle.pid = True, handle.process.pid
        asyncio.get_running_loop().add_reader(handle.process.sentinel, self._exited, handle)
        log.info("worker started", worker_id=handle.id, pid=handle.pid)
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value, "pid": handle.pid})
        if handle.kill_pending is not None:
            self._kill(handle, handle.kill_pending)

    def _exited(self, handle: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(handle.process.sentinel)
        # Reading the exit code goes through multiprocessing's bookkeeping: the spawner thread's.
        code = loop.run_in_executor(self._spawner, _exit_code, handle.process)
        code.add_done_callback(lambda fut: self._dead(handle, None if fut.exception() else fut.result(), None))

    def _dead(self, handle: WorkerHandle, code: int | None, why: str | None) -> None:
        if handle.state == WorkerState.DEAD and handle.id not in self.workers:
            return
        handle.exit_code = code
        was = handle.state
        handle.state = WorkerState.DEAD
        reason = why or handle.exit_reason or _describe_exit(code)
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
        self.wake()

    def _kill(self, handle: WorkerHandle, reason: str) -> None:
        if handle.state == WorkerState.DEAD:
            return
        handle.exit_reason = f"killed: {reason}"
        if not handle.started:
            handle.kill_pending = reason
            return
        log.warning("killing worker", worker_id=handle.id, reason=reason)
        with contextlib.suppress(OSError, ValueError):
            handle.process.kill()

    def _shutdown(self, handle: WorkerHandle, reason: str) -> None:
        """Ask a worker to exit now; it is killed if it has not after ``shutdown_timeout_s``."""
        if handle.state in (WorkerState.RETIRING, WorkerState.DEAD):
            return
        handle.state = WorkerState.RETIRING
        handle.exit_reason = f"retired: {reason}"
        if not handle.booted or not self.router.channel.try_send_control(Shutdown(reason=reason),
                                                                          to=handle.identity):
            self._kill(handle, reason if not handle.booted else reason + " (unreachable)")
            return
        self._kill_later(handle, "did not exit after Shutdown")

    def _kill_later(self, handle: WorkerHandle, reason: str) -> None:
        asyncio.get_running_loop().call_later(self.config.pool.shutdown_timeout_s, self._kill_if_alive, handle,
                                              reason)

    def _kill_if_alive(self, handle: WorkerHandle, reason: str) -> None:
        if handle.state != WorkerState.DEAD and handle.id in self.workers:
            self._kill(handle, reason)

    def _hello(self, handle: WorkerHandle, hello: Hello) -> None:
        if hello.protocol_version != PROTOCOL_VERSION:
            self.router.reject(handle.identity, f"protocol {hello.protocol_version}, "
                                                f"supervisor speaks {PROTOCOL_VERSION}")
            return
        p = self.config.pool
        handle.session_limit = _jittered(p.sessions_per_worker)
        welcome = Welcome(ping_interval_s=p.ping_interval_s, ping_timeout_s=p.ping_timeout_s,
                          sessions_per_worker=handle.session_limit)
        if not self.router.channel.try_send_control(welcome, to=handle.identity):
            log.warning("could not welcome a worker; its handshake will time out", worker_id=handle.id)
            return
        handle.booted = True
        handle.hello_at = time.monotonic()
        handle.pid = hello.pid
        if handle.state == WorkerState.BOOTING:
            handle.state = WorkerState.IDLE
        self.boot = BootHistory()
        if not handle.ready.done():
            handle.ready.set_result(None)
        log.info("worker ready", worker_id=handle.id, pid=hello.pid,
                 boot_ms=round((handle.hello_at - handle.started_at) * 1000, 1))
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value, "pid": hello.pid})
        self.wake()

    # -- sessions --------------------------------------------------------------------------

    def acquire(self, session_id: str, listener: WorkerListener, *, failover: bool = False) -> WorkerHandle:
        """Promise a worker to a session: an idle one, a booting one, or a new one.

        Raises ``PoolFull`` when every worker is promised and ``max_workers`` processes are
        alive (retiring ones count: they still hold memory and a CPU share); promised but
        booting workers count too, so a burst cannot overbook.
        """
        if self.draining and not failover:  # a drain takes no new session, but keeps live ones alive
            raise PoolFull("the supervisor is draining")
        candidates = [w for w in self.workers.values() if w.state == WorkerState.IDLE] or \
                     [w for w in self.workers.values() if w.state == WorkerState.BOOTING]
        if candidates:
            handle = min(candidates, key=lambda w: w.started_at)
            handle.state = WorkerState.RESERVED
        elif len(self.alive()) < self.max_workers:
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
        if self.draining:
            return 0
        alive = self.alive()
        free = sum(1 for w in alive if w.state in (WorkerState.IDLE, WorkerState.BOOTING))
        return free + max(0, self.max_workers - len(alive))

    def mark_busy(self, handle: WorkerHandle) -> None:
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
        elif handle.retire_after_session or self.draining:
            self._shutdown(handle, "retire after session")
        else:
            handle.state = WorkerState.IDLE if handle.booted else WorkerState.BOOTING
        self.publish("worker", {"worker_id": handle.id, "state": handle.state.value})
        self.wake()

    async def request(self, handle: WorkerHandle, cmd: Command, timeout_s: float) -> Ok | Err:
        """Send a command to a worker and wait for its one reply (see ``WorkerRouter``)."""
        return await self.router.request(handle, cmd, timeout_s)

    def send_audio(self, handle: WorkerHandle, header: bytes, pcm: Any) -> bool:
        """Queue one frame of a session's audio for its worker without blocking; False when
        it was dropped (the worker's queue is full or it is gone)."""
        return self.router.send_audio(handle, header, pcm)

    def next_request_id(self) -> int:
        return self.router.next_request_id()

    # -- loops -----------------------------------------------------------------------------

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

    def _apply(self, actions: list[Any]) -> None:
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
                    self._shutdown(handle, action.reason)
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
                    # Never waits: a worker whose queue is full misses this ping, and missed
                    # pings are judged by reconcile.
                    self.router.channel.try_send_control(ping, to=handle.identity)

    async def _sample_memory(self) -> None:
        """Every worker's memory, off the loop. RSS (cheap) every PSS_INTERVAL_S; PSS, which
        costs a walk of every mapping, only when RSS is over the limit -- PSS never exceeds
        RSS, so below it the limit cannot be crossed -- or every PSS_REFRESH_S for views."""
        refreshed = 0.0
        while True:
            pids = {h.id: h.pid for h in self.workers.values() if h.pid and h.booted}
            if pids:
                now = time.monotonic()
                full = now - refreshed >= PSS_REFRESH_S
                if full:
                    refreshed = now
                limit = float(self.config.pool.worker_memory_limit_mb)
                sampled = await asyncio.to_thread(_sample_memory, pids, limit, full)
                for wid, (pss, rss) in sampled.items():
                    handle = self.workers.get(wid)
                    if handle is not None:
                        handle.rss_mb = rss
                        # Below the limit in RSS, a stale PSS above it must not retire the worker.
                        handle.pss_mb = pss if pss is not None else (
                            None if handle.pss_mb is None else min(handle.pss_mb, rss))
            await asyncio.sleep(PSS_INTERVAL_S)

    # -- counters for views ------------------------------------------------------------------

    @property
    def frames_routed(self) -> int:
        return self.router.frames_routed

    @property
    def bad_frames(self) -> Any:
        return self.router.bad_frames


def _sample_memory(pids: dict[str, int | None], limit_mb: float,
                   full: bool) -> dict[str, tuple[float | None, float]]:
    """wid -> (PSS or None when not read, RSS); a worker that is gone is left out."""
    out: dict[str, tuple[float | None, float]] = {}
    for wid, pid in pids.items():
        rss = rss_mb(pid) if pid else None
        if rss is None:
            continue
        pss: float | None = None
        if full or rss > limit_mb:
            mem = memory_mb(pid) if pid else None
            # Unreadable: a supervisor of another user without CAP_SYS_PTRACE (the container
            # image's) may not walk a worker's mappings. RSS, never below PSS, stands in.
            pss = mem[0] if mem is not None else rss
        out[wid] = (pss, rss)
    return out


def _exit_code(process: Any) -> int | None:
    process.join(0)
    code: int | None = process.exitcode
    return code


def _new_forkserver() -> Any:
    """Start a forkserver with the current preload list and make it the one new processes
    use; returns the one it replaces. multiprocessing has a single module-level forkserver
    whose functions popen_forkserver looks up at each start, so they are rebound."""
    module = multiprocessing.forkserver
    old = module._forkserver  # type: ignore[attr-defined]
    new = module.ForkServer()
    new.set_forkserver_preload(old._preload_modules)
    new.ensure_running()
    module._forkserver = new  # type: ignore[attr-defined]
    for name in ("ensure_running", "get_inherited_fds", "connect_to_new_process", "set_forkserver_preload"):
        setattr(module, name, getattr(new, name))
    return old


def _stop_helper_processes(old_forkservers: list[Any]) -> None:
    """multiprocessing's forkservers and resource tracker outlive the pool unless told."""
    servers = [*old_forkservers, multiprocessing.forkserver._forkserver,  # type: ignore[attr-defined]
               multiprocessing.resource_tracker._resource_tracker]  # type: ignore[attr-defined]
    for server in servers:
        with contextlib.suppress(Exception):
            server._stop()


def _jittered(limit: int) -> int:
    """``sessions_per_worker`` plus up to 10 % so workers started together do not all
    recycle at once (gunicorn's max_requests_jitter)."""
    if limit <= 1:
        return limit
    return limit + random.randint(0, max(1, limit // 10))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    try:
        return f"exit {code} ({ExitCode(code).name.lower()})"
    except ValueError:
        return f"exit {code}"
