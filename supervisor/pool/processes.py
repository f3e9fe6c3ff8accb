"""Worker processes: forked from the forkserver, started, killed and reaped off the loop.

The event loop also forwards every session's audio, so it never waits on a fork or a join:
process starts and exit-code reads go through one spawner thread (multiprocessing's
bookkeeping is not thread-safe, so one thread does all of it), and a process's exit is
noticed by a reader on its sentinel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from callfleet.entry import run_entry
from protocol.messages import ExitCode
from supervisor.pool.forkserver import Forkserver, stop_resource_tracker
from supervisor.pool.reconcile import WorkerState
from supervisor.pool.workers import WorkerHandle

log = structlog.get_logger("supervisor.pool")

WORKER_ENTRY = "worker.main:run_options"  # what a forked worker runs, with its options

T = TypeVar("T")


class Processes:
    """Starts worker processes, each from its lane's forkserver, and tells the pool when one
    started (``on_started``) or is gone (``on_exited``: its exit code, or None and why when
    it never started)."""

    def __init__(self, forkservers: dict[str, Forkserver], on_started: Callable[[WorkerHandle], None],
                 on_exited: Callable[[WorkerHandle, int | None, str | None], None]) -> None:
        self.forkservers = forkservers  # lane -> its forkserver; the pool adds lanes on reload
        self._on_started = on_started
        self._on_exited = on_exited
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spawner")
        self._starts: set[asyncio.Future[None]] = set()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking multiprocessing work (the forkserver's start, a replacement) on the
        spawner thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def start(self, handle: WorkerHandle, options: dict[str, Any]) -> None:
        """Fork the worker's process from its lane's forkserver on the spawner thread;
        ``on_started`` or ``on_exited`` follows."""
        forkserver = self.forkservers[handle.lane]
        handle.process = forkserver.process(run_entry, (WORKER_ENTRY, options), handle.id)
        start = asyncio.get_running_loop().run_in_executor(self._thread, forkserver.start, handle.process)
        self._starts.add(start)
        start.add_done_callback(lambda fut: self._started(handle, fut))

    def kill(self, handle: WorkerHandle, reason: str) -> None:
        """SIGKILL the worker (once its process exists, if it does not yet)."""
        if handle.state == WorkerState.DEAD:
            return
        handle.exit_reason = f"killed: {reason}"
        if not handle.started:
            handle.kill_pending = reason
            return
        log.warning("killing worker", worker_id=handle.id, reason=reason)
        with contextlib.suppress(OSError, ValueError):
            handle.process.kill()

    async def settle(self) -> None:
        """Wait (two seconds at most) for starts still under way."""
        if self._starts:
            await asyncio.wait(set(self._starts), timeout=2)

    async def stop(self) -> None:
        """Stop the forkservers and the resource tracker, then the spawner thread: after
        the last worker, so the daemon leaves no process."""
        for forkserver in self.forkservers.values():
            await self.run(forkserver.stop)
        await self.run(stop_resource_tracker)
        self._thread.shutdown(wait=False)

    def _started(self, handle: WorkerHandle, fut: asyncio.Future[None]) -> None:
        self._starts.discard(fut)
        if fut.cancelled() or fut.exception() is not None:
            reason = "start cancelled" if fut.cancelled() else f"could not start: {fut.exception()}"
            log.error("worker process did not start", worker_id=handle.id, error=reason)
            self._on_exited(handle, None, reason)
            return
        handle.started, handle.pid = True, handle.process.pid
        asyncio.get_running_loop().add_reader(handle.process.sentinel, self._exited, handle)
        log.info("worker started", worker_id=handle.id, pid=handle.pid)
        self._on_started(handle)
        if handle.kill_pending is not None:
            self.kill(handle, handle.kill_pending)

    def _exited(self, handle: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(handle.process.sentinel)
        # Reading the exit code goes through multiprocessing's bookkeeping: the spawner thread's.
        code = loop.run_in_executor(self._thread, _exit_code, handle.process)
        code.add_done_callback(lambda fut: self._on_exited(handle, None if fut.exception() else fut.result(), None))


def describe_exit(code: int | None) -> str:
    """An exit code in words: "exit 3 (boot_failed)", "killed by SIGKILL"."""
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    try:
        return f"exit {code} ({ExitCode(code).name.lower()})"
    except ValueError:
        return f"exit {code}"


def _exit_code(process: Any) -> int | None:
    process.join(0)
    code: int | None = process.exitcode
    return code
