"""The forkserver every worker is forked from, and what it imports before the first fork.

Workers start from ``multiprocessing``'s forkserver with their modules already imported and
frozen out of the collector, so a new worker imports nothing and shares those pages. The
forkserver inherits this process's environment, which holds nothing of the operator's
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
    PRELOAD_BACKEND_ENV,
    PRELOAD_BOTS_ENV,
    WORKER_GID_ENV,
    WORKER_HOME_ENV,
    WORKER_UID_ENV,
)


class Forkserver:
    """The preload list and the forkserver(s) started with it. ``ensure_running``,
    ``replace`` and ``stop`` block: the pool runs them on its spawner thread."""

    def __init__(self, backend: str, bots: list[str], worker_user: WorkerUser | None) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.worker_user = worker_user  # None: workers run as this process's user
        self.bots: list[str] = []
        self._replaced: list[Any] = []  # replaced on reload, stopped with the pool
        self.preload(backend, bots)

    def preload(self, backend: str, bots: list[str]) -> None:
        """What the forkserver imports before forking: first ``worker.privileges`` (it
        becomes the workers' user and gives up what a bot must not have, before anything
        else runs), then Pipecat and every pipecat profile's bot when there are any, and
        last ``worker.preload`` (it imports the call client ``backend`` names and freezes
        the collector over all of it). Applies to the next forkserver started."""
        self.bots = list(bots)
        # The backend goes by name: which module a name means is the worker's to know.
        os.environ[PRELOAD_BACKEND_ENV] = backend
        os.environ[PRELOAD_BOTS_ENV] = "\n".join(bots)
        os.environ[DROP_PRIVILEGES_ENV] = "1"
        if self.worker_user is not None:
            os.environ[WORKER_UID_ENV] = str(self.worker_user.uid)
            os.environ[WORKER_GID_ENV] = str(self.worker_user.gid)
            os.environ[WORKER_HOME_ENV] = self.worker_user.home
        pipecat = ["worker.pipecat_preload"] if bots else []
        self.context.set_forkserver_preload(["worker.privileges", *pipecat, "worker.preload"])

    def process(self, target: Callable[..., Any], args: tuple[Any, ...], name: str) -> BaseProcess:
        """A worker process, forked by the forkserver when started."""
        return self.context.Process(target=target, args=args, name=name, daemon=False)

    def ensure_running(self) -> None:
        """Start the forkserver now (it imports the preload modules), not on the first fork."""
        multiprocessing.forkserver.ensure_running()

    def replace(self) -> None:
        """A new forkserver with the current preload list forks every worker from now on;
        the old one keeps serving the workers it forked (it reports their exit codes, and
        stopping it would wait for them) until ``stop``."""
        self._replaced.append(_new_forkserver())

    def stop(self) -> None:
        """multiprocessing's forkservers and resource tracker outlive the pool unless told."""
        servers = [*self._replaced, multiprocessing.forkserver._forkserver,  # type: ignore[attr-defined]
                   multiprocessing.resource_tracker._resource_tracker]  # type: ignore[attr-defined]
        for server in servers:
            with contextlib.suppress(Exception):
                server._stop()


def _new_forkserver() -> Any:
    """Start a forkserver with the current preload list and make it the one new processes
    use; returns the one it replaces. multiprocessing has a single module-level forkserver
    whose functions popen_forkserver looks up at each start, so they are rebound."""
    module: Any = multiprocessing.forkserver
    old = module._forkserver
    new = module.ForkServer()
    new.set_forkserver_preload(old._preload_modules)
    new.ensure_running()
    module._forkserver = new
    for name in ("ensure_running", "get_inherited_fds", "connect_to_new_process", "set_forkserver_preload"):
        setattr(module, name, getattr(new, name))
    return old
