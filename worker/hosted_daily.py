"""The ``daily`` module a hosted Pipecat bot sees: the worker's backend (daily-python, or
the sandbox's client), except that ``CallClient(...)`` is the worker's one client.

A Pipecat Cloud ``bot.py`` builds its own ``DailyTransport``, which calls
``Daily.init()`` and ``CallClient(event_handler=self)``. Hosted in a worker, that client
must be the worker's own, so every callback still reaches the supervisor as the usual
events (participants, idle timeout, ``ctl``, metrics, failover) and the supervisor's
commands (stop, app messages) act on the call the bot is in. So:

* ``CallClient(event_handler=h)`` gives a ``HostedCallClient``: a thin proxy to the
  worker's client that also hands every SDK callback to ``h``, on the SDK thread, as
  daily-python would. Its ``join`` and ``leave`` tell the worker where the call stands;
  its ``release`` is the worker's to do, at exit.
* Its ``send_app_message`` takes out every secret the worker holds for the session first:
  a provider's error that quotes a key (Pipecat's RTVI ``error`` message) reaches the
  call's participants, browsers included, without it.
* ``Daily.init()`` is idempotent (a second real init aborts the process) and
  ``Daily.deinit()`` is left to the worker, after every client is gone.

``install`` puts the module in ``sys.modules["daily"]``; it must run before Pipecat is
imported, since Pipecat binds ``from daily import ...`` at import time (the forkserver's
preload does it first, ``worker.pipecat_preload``).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any, Protocol

from callfleet import scrub
from worker.backends import init_sdk

_host: BotHost | None = None


class BotHost(Protocol):
    """What the worker's call host offers a hosted bot's client (``worker.call.CallHost``)."""

    client: Any

    def adopt(self, event_handler: Any) -> None: ...
    def bot_join_done(self, data: Any, error: Any) -> None: ...
    def bot_left(self) -> None: ...


def attach(host: BotHost | None) -> None:
    """The worker's call host, which ``CallClient(...)`` hands to a bot (None: none yet)."""
    global _host
    _host = host


class HostedCallClient:
    """The worker's client, as a bot's ``CallClient(event_handler=...)`` returns it."""

    def __init__(self, event_handler: Any = None) -> None:
        if _host is None or _host.client is None:
            raise RuntimeError("no call client to host: a hosted bot's CallClient is the worker's, "
                               "and this process is not a callfleet worker with one")
        self._host = _host
        self._client = _host.client
        _host.adopt(event_handler)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def join(self, meeting_url: str, meeting_token: Any = None, client_settings: Any = None,
             completion: Callable[..., None] | None = None) -> None:
        host = self._host

        def joined(data: Any, error: Any) -> None:  # an SDK thread
            host.bot_join_done(data, error)
            if completion is not None:
                completion(data, error)

        self._client.join(meeting_url, meeting_token, client_settings, completion=joined)

    def leave(self, completion: Callable[..., None] | None = None) -> None:
        host = self._host

        def left(error: Any) -> None:  # an SDK thread
            host.bot_left()
            if completion is not None:
                completion(error)

        self._client.leave(completion=left)

    def release(self) -> None:
        """The worker releases its client when it exits, after leaving; not the bot."""

    def send_app_message(self, message: Any, *args: Any, **kwargs: Any) -> Any:
        """daily-python's, with the session's secrets taken out of the message."""
        return self._client.send_app_message(scrub.without_known(message), *args, **kwargs)


def _daily_class(backend: Any) -> type:
    real = backend.Daily

    class Daily:
        """daily-python's ``Daily``, with ``init`` once per process and ``deinit`` left to the worker."""

        @staticmethod
        def init(*args: Any, **kwargs: Any) -> None:
            init_sdk(backend)

        @staticmethod
        def deinit() -> None:
            """The worker's to do, at exit, after every client and track is gone."""

    for name in dir(real):
        if not name.startswith("_") and name not in ("init", "deinit"):
            setattr(Daily, name, getattr(real, name))
    return Daily


def install(backend: types.ModuleType) -> types.ModuleType:
    """Make ``import daily`` give a bot the hosted module over ``backend``; returns it."""
    module = types.ModuleType("daily", backend.__doc__)
    module.__dict__.update({k: v for k, v in vars(backend).items() if not k.startswith("__")})
    module.CallClient = HostedCallClient  # type: ignore[attr-defined]
    module.Daily = _daily_class(backend)  # type: ignore[attr-defined]
    module.__wrapped__ = backend  # type: ignore[attr-defined]
    sys.modules["daily"] = module
    return module


def unwrap(module: types.ModuleType) -> types.ModuleType:
    """The backend under a hosted module (the module itself if it is not one)."""
    return getattr(module, "__wrapped__", module)
