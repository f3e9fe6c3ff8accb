"""Who a process runs as, and what it lets others see of it (Linux).

The supervisor keeps the operator's secrets; the workers run other people's bots. When the
supervisor may switch users (it is root, or holds ``CAP_SETUID`` and ``CAP_SETGID``, as in
the container image), the workers run as another, unprivileged user (OpenSSH's privilege
separation, gunicorn's ``user``/``group``): a bot then cannot read the supervisor's or
another worker's ``/proc/PID/environ`` or memory, nor the supervisor's files and sockets.
Every process of callfleet is also non-dumpable, which keeps even a process of the same
user out of its ``/proc/PID/mem``, ``environ`` and ``ptrace``.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SETGID = 6
CAP_SETUID = 7
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
DEFAULT_WORKER_USERS = ("callfleet-bot", "nobody")


class PrivilegeError(Exception):
    """A user switch that was asked for could not be made."""


@dataclass(frozen=True)
class WorkerUser:
    """The account workers run as."""

    name: str
    uid: int
    gid: int
    home: str


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _prctl(option: int, arg: int) -> bool:
    libc = _libc()
    return libc is not None and libc.prctl(option, arg, 0, 0, 0) == 0


def make_undumpable() -> bool:
    """No core dumps, and no ``/proc/PID/{environ,mem,maps}`` or ``ptrace`` for anyone but
    a holder of ``CAP_SYS_PTRACE``, the same user included. Inherited by forked children."""
    return _prctl(PR_SET_DUMPABLE, 0)


def forbid_new_privileges() -> bool:
    """A setuid program (``su``, ``sudo``) run from here gains nothing. Irreversible."""
    return _prctl(PR_SET_NO_NEW_PRIVS, 1)


def effective_capabilities() -> int:
    """This process's effective capability mask (``CapEff``); 0 where it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def can_switch_users() -> bool:
    """Root, or ``CAP_SETUID`` and ``CAP_SETGID`` (the container image's supervisor)."""
    if os.geteuid() == 0:
        return True
    caps = effective_capabilities()
    return bool(caps & (1 << CAP_SETUID)) and bool(caps & (1 << CAP_SETGID))


def find_user(name: str) -> WorkerUser:
    """Raises ``KeyError`` when there is no such user."""
    entry = pwd.getpwnam(name)
    return WorkerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def default_worker_user() -> WorkerUser | None:
    """``callfleet-bot`` if it exists, else ``nobody``; None if neither does."""
    for name in DEFAULT_WORKER_USERS:
        try:
            return find_user(name)
        except KeyError:
            continue
    return None


def switch_user(uid: int, gid: int) -> None:
    """Become ``uid``:``gid`` for good, with no supplementary groups and no capabilities
    left (a non-root process holding ``CAP_SETUID`` keeps its capabilities across
    ``setuid`` unless told). Raises ``PrivilegeError``."""
    try:
        os.setgroups([gid])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot switch to uid {uid} gid {gid}: {exc.strerror}") from None
    _clear_capabilities()
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PrivilegeError(f"switched to uid {uid} gid {gid}, but the process reports {os.getresuid()}")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise PrivilegeError("the switch is reversible: setuid(0) still succeeds")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _clear_capabilities() -> None:
    libc = _libc()
    if libc is None:
        return
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero: nothing effective, permitted or inheritable
    if libc.capset(ctypes.byref(header), data) != 0:
        raise PrivilegeError(f"cannot drop capabilities: {os.strerror(ctypes.get_errno())}")


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
