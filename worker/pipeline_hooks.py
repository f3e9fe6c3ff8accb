"""What callfleet adds to every Pipecat pipeline a session's bot builds, without the bot's code
knowing: a ``TurnFigureObserver`` (``worker.turn_metrics``) and, when the operator set
``[observability] otlp_endpoint``, Pipecat's tracing with the session id as conversation id.

A Pipecat Cloud ``bot.py`` builds its own ``PipelineWorker`` (or the deprecated
``PipelineTask``, a subclass). ``install`` wraps ``PipelineWorker.__init__`` once per worker
process; the wrapper looks up the session it runs for in a context variable that
``bot_runner`` sets in the bot's task's context only, so a pipeline built anywhere else is
left alone. Limits, on purpose:

* the bot's own ``PipelineParams`` are kept: one built with ``enable_metrics=False`` (Pipecat's
  default) reports no TTFB or processing times, one without ``enable_usage_metrics`` no
  tokens or characters; voice-to-voice is measured from frames and needs neither;
* a bot that passes ``enable_tracing=False`` or its own ``conversation_id`` keeps them;
* a pipeline built outside ``bot()``'s task (another thread, a task created in a fresh
  context) is not seen.
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass
from typing import Any

from pipecat.pipeline.worker import PipelineWorker

from worker.turn_metrics import FigureBook, TurnFigureObserver, ride


@dataclass(frozen=True)
class SessionHooks:
    """What a session's pipelines get."""

    session_id: str
    book: FigureBook
    tracing: bool = False


_session: contextvars.ContextVar[SessionHooks | None] = contextvars.ContextVar("callfleet_pipeline_hooks",
                                                                                default=None)
_installed = False


def set_for_session(context: contextvars.Context, hooks: SessionHooks) -> None:
    """Pipelines built in ``context`` (the bot's task's) get ``hooks``."""
    context.run(_session.set, hooks)


def install() -> None:
    """Wrap ``PipelineWorker.__init__`` (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    original = PipelineWorker.__init__

    @functools.wraps(original)
    def __init__(self: PipelineWorker, pipeline: Any, *args: Any, **kwargs: Any) -> None:
        hooks = _session.get()
        if hooks is not None and hooks.tracing:
            kwargs.setdefault("enable_tracing", True)
            if kwargs.get("conversation_id") is None:
                kwargs["conversation_id"] = hooks.session_id
        original(self, pipeline, *args, **kwargs)
        if hooks is not None:
            observer = TurnFigureObserver(hooks.book)
            carrier = self.turn_tracking_observer  # None: the bot turned turn tracking off
            if carrier is None or carrier.observe_every_push:
                self.add_observer(observer)
            else:
                ride(carrier, observer)  # no queue and task of its own per frame

    PipelineWorker.__init__ = __init__  # type: ignore[method-assign]
