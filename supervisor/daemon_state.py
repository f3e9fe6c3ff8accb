"""Where the daemon is in its life, as ``/healthz``, ``/readyz``, ``/livez`` and ``ctl status``
report it; only a running daemon takes sessions."""

from __future__ import annotations

import enum


class DaemonState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"  # takes sessions
    DRAINING = "draining"  # takes none; live ones go on until they end or the drain times out
    STOPPING = "stopping"
    # Cluster mode: running, but without its lease, so taking no sessions.
    JOINING = "joining"  # no lease yet
    LAPSED = "lapsed"  # its lease ran out unrenewed; asking Redis whether it was declared lost
    FENCED = "fenced"  # it lost its lease: ending its sessions, until it joins again
