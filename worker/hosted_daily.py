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
* the bot's audio is counted here (``audio``): its renderers' frames in, its sources'
  writes out, since none of it crosses the worker's socket for the supervisor to count.
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


class BotAudio:
    """A hosted bot's audio as the worker's client handles it (it never crosses the worker's
    socket, so the supervisor cannot count it): frames delivered to its transport's audio
    renderers, and writes of its voice to its custom audio sources. Each counter has one
    writing thread (the SDK's renderer thread, the bot's loop); the worker's Pong reads them."""

    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0

    def reset(self) -> None:
        """A new session's bot: its counts start from zero."""
        self.frames_in = self.frames_out = 0


audio = BotAudio()


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

    def set_audio_renderer(self, participant_id: str, callback: Callable[..., None], *args: Any,
                           **kwargs: Any) -> Any:
        """daily-python's, counting each frame the bot's renderer gets."""

        def counted(*cb_args: Any) -> None:  # the SDK's renderer thread
            audio.frames_in += 1
            callback(*cb_args)

        return self._client.set_audio_renderer(participant_id, counted, *args, **kwargs)

    def release(self) -> None:
        """The worker releases its client when it exits, after leaving; not the bot."""

    def send_app_message(self, message: Any, *args: Any, **kwargs: Any) -> Any:
        """daily-python's, with the session's secrets taken out of the message."""
        return self._client.send_app_message(scrub.without_known(message), *args, **kwargs)


def _counted_audio(backend: Any) -> tuple[type, Callable[..., Any]]:
    """``CustomAudioSource`` counting the bot's writes, and ``CustomAudioTrack`` taking it.
    daily-python's native classes cannot be subclassed, so the source is a proxy that the
    track unwraps."""
    real_source, real_track = backend.CustomAudioSource, backend.CustomAudioTrack

    class CustomAudioSource:
        """daily-python's ``CustomAudioSource``; ``write_frames`` is counted."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.wrapped = real_source(*args, **kwargs)

        def write_frames(self, frames: bytes, *args: Any, **kwargs: Any) -> Any:
            audio.frames_out += 1
            return self.wrapped.write_frames(frames, *args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.wrapped, name)

    def custom_audio_track(source: Any, *args: Any, **kwargs: Any) -> Any:
        return real_track(getattr(source, "wrapped", source), *args, **kwargs)

    return CustomAudioSource, custom_audio_track


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
    module.CustomAudioSource, module.CustomAudioTrack = _counted_audio(backend)  # type: ignore[attr-defined]
    module.__wrapped__ = backend  # type: ignore[attr-defined]
    sys.modules["daily"] = module
    return module


def unwrap(module: types.ModuleType) -> types.ModuleType:
    """The backend under a hosted module (the module itself if it is not one)."""
    return getattr(module, "__wrapped__", module)
