"""Kernel same-page merging (KSM) for the forkserver and every worker forked from it.

A worker in a Pipecat call holds ~13 MB of private copies of its forkserver's pages:
CPython 3.11 writes the reference count of every object it touches, so a page shared at
fork is copied on its first touch, and sibling workers end up holding identical copies
(of pages left as the forkserver had them, or changed the same way in each). KSM merges
identical pages back into one. It needs Linux 6.4+ and the host's ksmd running
(``/sys/kernel/mm/ksm/run`` = 1); it costs ksmd's CPU, and a merged page lets one process
time another's writes (a side channel between workers), hence ``pool.merge_pages`` is off
unless the operator turns it on.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_MEMORY_MERGE = 67  # linux/prctl.h, Linux 6.4+


def opt_in() -> bool:
    """Make every anonymous mapping of this process, and of every process it forks from now
    on, mergeable; False (with a line on stderr) where the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0:
        return True
    print(f"callfleet forkserver: page merging unavailable: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
    return False
