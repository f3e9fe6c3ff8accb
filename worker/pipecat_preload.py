"""Imported in the pool's forkserver before any worker is forked, when a profile hosts a
Pipecat bot: the hosted ``daily`` module goes in first, then Pipecat's Daily transport and
every pipecat profile's bot module, so a worker that takes a session imports nothing.

The forkserver learns what to load from its environment (it inherits the supervisor's at
start): ``protocol.environment``. multiprocessing ignores a preload module that fails to
import, so the supervisor checks every spec in a fresh process first
(``worker.bot_loader``); here a failure is only logged.
"""

from __future__ import annotations

import os
import sys

from protocol.environment import PRELOAD_BACKEND_ENV, PRELOAD_BOTS_ENV
from worker.backends import load_backend
from worker.hosted_daily import install


def prepare(backend_name: str) -> None:
    """Install the hosted ``daily`` module over the backend, then import Pipecat's Daily
    transport (which binds ``from daily import ...`` now, to the hosted module)."""
    from callfleet import logs
    from worker.bot_runner import route_loguru

    logs.configure()  # stderr, JSON off a TTY: never the supervisor's stdout
    install(load_backend(backend_name))
    route_loguru()  # Pipecat logs from its first import on: through structlog
    import pipecat.transports.daily.transport  # noqa: F401

    import worker.pipeline_hooks  # noqa: F401  (every session's turn figures: not on its start's path)


def _preload() -> None:
    from worker.bot_loader import BotLoadError, load_bot

    prepare(os.environ.get(PRELOAD_BACKEND_ENV, "sandbox"))
    for spec in filter(None, os.environ.get(PRELOAD_BOTS_ENV, "").splitlines()):
        try:
            load_bot(spec)
        except BotLoadError as exc:
            print(f"callfleet forkserver: bot {spec} not preloaded: {exc}", file=sys.stderr)


if os.environ.get(PRELOAD_BOTS_ENV):
    _preload()
