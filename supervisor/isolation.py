"""What the workers run as, decided once at start-up from ``[pool] worker_user`` and what
this supervisor may do (``callfleet.privileges``).

- The supervisor may switch users: workers run as ``worker_user`` (default
  ``callfleet-bot`` if it exists, else ``nobody``). A bot then reaches nothing of the
  supervisor's: not its environment or memory, not ``run_dir`` (0711: no listing; every
  file in it 0600), not the control or event socket. The workers' own socket is theirs.
- It may not (or ``worker_user = ""``): workers run as the supervisor's user, and one
  warning line at start-up says what that leaves open. Their environment is still clean
  and every process still non-dumpable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from callfleet.privileges import WorkerUser, can_switch_users, default_worker_user, find_user
from supervisor.config import ConfigError

NOT_ISOLATED = ("a bot can read every file this user can (run_dir, sessions.db, the config) and connect to the "
                "control socket; it cannot read another process's environment or memory (all are non-dumpable), "
                "and its environment holds only its profile's secrets")


@dataclass(frozen=True)
class Isolation:
    user: WorkerUser | None  # None: workers run as the supervisor's own user
    warning: str | None = None  # what is not isolated, for the one start-up line


def plan(worker_user: str | None) -> Isolation:
    """Raises ``ConfigError`` naming ``pool.worker_user`` when the named user does not
    exist, is root, or cannot be switched to."""
    uid = os.geteuid()
    if worker_user == "":
        return Isolation(None, f"pool.worker_user is empty: workers run as the supervisor's user (uid {uid}); "
                               f"{NOT_ISOLATED}")
    if not can_switch_users():
        if worker_user is not None:
            raise ConfigError(f"pool.worker_user: cannot run workers as {worker_user!r}: the supervisor is not root "
                              f"and holds no CAP_SETUID and CAP_SETGID")
        return Isolation(None, f"workers run as the supervisor's user (uid {uid}): it is not root and holds no "
                               f"CAP_SETUID and CAP_SETGID; {NOT_ISOLATED}")
    if worker_user is None:
        user = default_worker_user()
        if user is None:
            raise ConfigError("pool.worker_user: neither callfleet-bot nor nobody exists; name the workers' user")
    else:
        try:
            user = find_user(worker_user)
        except KeyError:
            raise ConfigError(f"pool.worker_user: no user named {worker_user!r}") from None
    if user.uid == 0:
        raise ConfigError(f"pool.worker_user: {user.name!r} is root; workers must run unprivileged")
    if user.uid == uid:
        return Isolation(None, f"pool.worker_user {user.name!r} is the supervisor's own user; {NOT_ISOLATED}")
    return Isolation(user)


def unreachable(user: WorkerUser, paths: list[str]) -> str | None:
    """The first of ``paths`` (folders the workers import from) that ``user`` cannot list,
    or whose ancestors it cannot pass through; None when every one is open to it."""
    for raw in paths:
        path = os.path.abspath(raw)
        if not os.path.isdir(path):
            continue  # a zip or a missing sys.path entry: nothing to import from there
        parts = path.split(os.sep)
        for depth in range(1, len(parts) + 1):
            folder = os.sep.join(parts[:depth]) or os.sep
            need = 0o5 if depth == len(parts) else 0o1  # list and enter the folder; pass through its ancestors
            if not _permits(user, os.stat(folder), need):
                return f"{path} ({folder} is closed to it)"
    return None


def _permits(user: WorkerUser, st: os.stat_result, need: int) -> bool:
    if st.st_uid == user.uid:
        bits = st.st_mode >> 6
    elif st.st_gid == user.gid:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & need == need
