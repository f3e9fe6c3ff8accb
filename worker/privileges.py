"""The first module the pool's forkserver (and the bot import check) imports: it gives up
what a bot must not have before any other module -- Pipecat, a user's bot module -- is
imported, and so before any worker is forked.

- When the supervisor asks for it (``protocol.environment.WORKER_UID_ENV``), the forkserver
  becomes the workers' user for good, with no capabilities left; its ``HOME`` becomes that
  user's.
- Always: non-dumpable (no ``/proc/PID/environ``, ``mem`` or ``ptrace`` for other
  processes, the same user's included) and no new privileges (a setuid program run by a
  bot gains nothing). Forked workers inherit all of it.

A switch that fails ends the forkserver with a message: no worker may run with the
supervisor's privileges by accident (the pool then sees every start fail and backs off).
"""

from __future__ import annotations

import os
import sys

from callfleet.privileges import PrivilegeError, forbid_new_privileges, make_undumpable, switch_user
from protocol.environment import DROP_PRIVILEGES_ENV, WORKER_GID_ENV, WORKER_HOME_ENV, WORKER_UID_ENV


def _drop() -> None:
    uid = os.environ.pop(WORKER_UID_ENV, None)
    gid = os.environ.pop(WORKER_GID_ENV, None)
    home = os.environ.pop(WORKER_HOME_ENV, None)
    make_undumpable()
    if uid is not None and gid is not None:
        try:
            switch_user(int(uid), int(gid))
        except (PrivilegeError, ValueError) as exc:
            print(f"callfleet forkserver: not starting workers: {exc}", file=sys.stderr, flush=True)
            os._exit(1)
        if home:
            os.environ["HOME"] = home
    forbid_new_privileges()


if os.environ.pop(DROP_PRIVILEGES_ENV, None):  # imported by anything else (a linter, a test), it does nothing
    _drop()
