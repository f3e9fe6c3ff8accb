"""Imported once in the pool's forkserver before any worker is forked: every module a
worker needs -- its call client among them -- is loaded and its objects frozen out of the
collector, so forked workers share those pages instead of each importing (and dirtying)
their own copy.

Nothing here initialises the SDK: ``Daily.init()`` starts native threads, and forking after
it is unsafe (reference/daily.md). Each worker calls it once, in the child.
"""

import contextlib
import gc
import os

import msgspec  # noqa: F401
import structlog  # noqa: F401
import uvloop  # noqa: F401
import zmq  # noqa: F401

import worker.main  # noqa: F401
from protocol.environment import MERGE_PAGES_ENV, PRELOAD_BACKEND_ENV
from worker import page_merging
from worker.backends import BackendError, load_backend

# The call client the supervisor named. One that does not load is skipped here, as
# multiprocessing skips a preload module that does not import: the worker reports it when
# it boots.
with contextlib.suppress(BackendError):
    load_backend(os.environ.get(PRELOAD_BACKEND_ENV, "sandbox"))

# Before the first fork: every worker inherits it (pool.merge_pages, worker.page_merging).
if os.environ.get(MERGE_PAGES_ENV):
    page_merging.opt_in()

gc.collect()
gc.freeze()
