"""How a worker notices it has been orphaned, so no bot outlives its supervisor in a room.

Three independent signals, any one is enough: the kernel's parent-death signal
(``PR_SET_PDEATHSIG``), a change of ``getppid()`` (re-parented to init), and the supervisor
going quiet for longer than the ping timeout (checked by the main loop).
"""

from __future__ import annotations

import os

from callfleet.procfs import set_parent_death_signal

__all__ = ["ParentWatch", "set_parent_death_signal"]

class ParentWatch:
    """Remembers the parent (and optionally the supervisor) at start; says when either is gone."""

    def __init__(self, supervisor_pid: int | None = None) -> None:
        self.parent_pid = os.getppid()
        self.supervisor_pid = supervisor_pid

    def lost(self) -> str | None:
        """A reason string when the parent or supervisor is gone, else None."""
        if os.getppid() != self.parent_pid:
            return f"parent {self.parent_pid} exited"
        if self.supervisor_pid and not _alive(self.supervisor_pid):
            return f"supervisor {self.supervisor_pid} exited"
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
