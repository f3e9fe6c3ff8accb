"""The forkservers workers are forked from, one per lane, and what each imports before its
first fork.

Workers start from a ``multiprocessing`` forkserver with their modules already imported and
frozen out of the collector, so a new worker imports nothing and shares those pages. Each
lane (``supervisor.pool.lanes``) has its own: the built-in lane's imports the worker and its
call client only; the Pipecat lane's imports Pipecat and every pipecat profile's bot too.
A forkserver inherits this process's environment, which holds nothing of the operator's
(``supervisor.environment``), and learns from it what to preload and which user to become
(``protocol.environment``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from callfleet.privileges import WorkerUser
from protocol.environment import (
    DROP_PRIVILEGES_ENV,
    MERGE_PAGES_ENV,
    PRELOAD_BACKEND_ENV,
    PRELOAD_BOTS_ENV,
    WORKER_GID_ENV,
    WORKER_HOME_ENV,
    WORKER_UID_ENV,
)
from supervisor.pool.lanes import PIPECAT


def set_environment(backend: str, bots: list[str], worker_user: WorkerUser | None,
                    merge_pages: bool = False) -> None:
    """What every forkserver started from now on reads when it starts: the call client
    ``backend`` names (by name: which module a name means is the worker's to know), the
    Pipecat bots to preload (read only by the Pipecat lane's), the workers' user, and
    whether their pages may be merged (``pool.merge_pages``)."""
    os.environ[PRELOAD_BACKEND_ENV] = backend
    os.environ[PRELOAD_BOTS_ENV] = "\n".join(bots)
    os.environ[DROP_PRIVILEGES_ENV] = "1"
    if merge_pages:
        os.environ[MERGE_PAGES_ENV] = "1"
    else:
        os.environ.pop(MERGE_PAGES_ENV, None)
    if worker_user is not None:
        os.environ[WORKER_UID_ENV] = str(worker_user.uid)
        os.environ[WORKER_GID_ENV] = str(worker_user.gid)
        os.environ[WORKER_HOME_ENV] = worker_user.home


def preload_modules(lane: str) -> list[str]:
    """What a lane's forkserver imports before forking: first ``worker.privileges`` (it
    becomes the workers' user and gives up what a bot must not have, before anything else
    runs), then for the Pipecat lane Pipecat and every pipecat profile's bot, and last
    ``worker.preload`` (the call client, and the collector frozen over all of it)."""
    pipecat = ["worker.pipecat_preload"] if lane == PIPECAT else []
    return ["worker.privileges", *pipecat, "worker.preload"]


class Forkserver:
    """One lane's forkserver. Every method blocks and touches multiprocessing's
    bookkeeping: the pool calls them on its one spawner thread only."""

    def __init__(self, lane: str) -> None:
        self.lane = lane
        self.context = multiprocessing.get_context("forkserver")
        self.server = _server(lane)
        self._replaced: list[Any] = []  # replaced on reload: stopped with the pool

    def ensure_running(self) -> None:
        """Start the forkserver now (it imports its preload modules), not on the first fork."""
        self.server.ensure_running()

    def process(self, target: Callable[..., Any], args: tuple[Any, ...], name: str) -> BaseProcess:
        """A worker process, forked by this forkserver when ``start`` is given it."""
        return self.context.Process(target=target, args=args, name=name, daemon=False)

    def start(self, process: BaseProcess) -> None:
        """Fork ``process`` from this lane's forkserver. multiprocessing has one module-level
        forkserver, whose functions its forkserver Popen looks up at each start, so they
        are bound to this lane's first (the spawner thread is the only one starting)."""
        module: Any = multiprocessing.forkserver
        module._forkserver = self.server
        for name in ("ensure_running", "get_inherited_fds", "connect_to_new_process", "set_forkserver_preload"):
            setattr(module, name, getattr(self.server, name))
        process.start()

    def replace(self) -> None:
        """A new forkserver, started now with what the environment says today (a reload's
        new bots), forks this lane's workers from now on; the old one keeps serving the
        workers it forked (it reports their exit codes, and stopping it would wait for
        them) until ``stop``."""
        new = _server(self.lane)
        new.ensure_running()
        self._replaced.append(self.server)
        self.server = new

    def stop(self) -> None:
        for server in (*self._replaced, self.server):
            with contextlib.suppress(Exception):
                server._stop()


def stop_resource_tracker() -> None:
    """multiprocessing's resource tracker outlives the pool unless told."""
    with contextlib.suppress(Exception):
        multiprocessing.resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


def _server(lane: str) -> Any:
    server = multiprocessing.forkserver.ForkServer()
    server.set_forkserver_preload(preload_modules(lane))
    return server
