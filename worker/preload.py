"""Imported once in the pool's forkserver before any worker is forked: every module a
worker needs is loaded and its objects frozen out of the collector, so forked workers
share those pages instead of each importing (and dirtying) their own copy.

Nothing here initialises the SDK: ``Daily.init()`` starts native threads, and forking after
it is unsafe (reference/daily.md). Each worker calls it once, in the child.
"""

import gc

import msgspec  # noqa: F401
import structlog  # noqa: F401
import uvloop  # noqa: F401
import zmq  # noqa: F401

import worker.main  # noqa: F401

gc.collect()
gc.freeze()
