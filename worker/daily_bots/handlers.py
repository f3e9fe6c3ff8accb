"""The operator's side of function calling in a built-in Daily Bots pipeline: the server-side
handlers its profile names, and how long a call waits for the RTVI client's answer.

    [profiles.my_voice]
    kind = "pipecat"
    bot = "worker.daily_bots.voice:bot"
    functions = {get_weather = "mypkg.tools:get_weather"}   # or "path/to/tools.py:get_weather"
    client_function_timeout_s = 10

The supervisor hands them to the session's worker in ``RunBot.functions`` and
``RunBot.client_function_timeout_s``; like the provider keys (``worker.daily_bots.keys``),
they live in the context of the bot's task only. A handler is operator code, imported in the
worker as a bot is, and called as Pipecat calls any function handler:
``async def get_weather(params: FunctionCallParams)``, answering with
``await params.result_callback(result)``. A function the request's ``tools`` declare runs
there when the profile names a handler for it, else on the RTVI client.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from worker.bot_loader import BotLoadError, load_module

# How long a call of a client's function waits for its llm-function-call-result. Daily Bots
# has no option for it; RTVI clients answer from the browser, within a second or two.
DEFAULT_CLIENT_TIMEOUT_S = 10.0


class HandlerLoadError(ValueError):
    """A profile's function handler does not import or is not an async function; the message
    names it (``functions.get_weather``)."""


@dataclass(frozen=True)
class ProfileFunctions:
    """What the session's profile says about function calls."""

    specs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # name -> "module:function"
    client_timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S


_NONE = ProfileFunctions()
_FUNCTIONS: contextvars.ContextVar[ProfileFunctions] = contextvars.ContextVar("callfleet_profile_functions",
                                                                             default=_NONE)


def session_context(context: contextvars.Context, specs: Mapping[str, str],
                    client_timeout_s: float | None = None) -> contextvars.Context:
    """``context`` (the bot task's, from ``keys.session_context``), in which ``current()``
    answers this session's handlers and client timeout (None: the default)."""
    functions = ProfileFunctions(MappingProxyType(dict(specs)), client_timeout_s or DEFAULT_CLIENT_TIMEOUT_S)
    context.run(_FUNCTIONS.set, functions)
    return context


def current() -> ProfileFunctions:
    """This session's profile functions; none, and the default timeout, outside a bot's task."""
    return _FUNCTIONS.get()


def load(specs: Mapping[str, str]) -> dict[str, Callable[..., Any]]:
    """Import each handler (``package.module:function`` or ``path/to/file.py:function``).

    Raises ``HandlerLoadError`` naming the first that does not import, has no such function,
    or whose function is not ``async``."""
    loaded: dict[str, Callable[..., Any]] = {}
    for name, spec in specs.items():
        target, _, attribute = spec.rpartition(":")
        if not target or not attribute:
            raise HandlerLoadError(f"functions.{name}: expected \"package.module:function\", got {spec!r}")
        try:
            module = load_module(target)
        except BotLoadError as exc:
            raise HandlerLoadError(f"functions.{name}: does not import: {exc}") from None
        handler = getattr(module, attribute, None)
        if handler is None:
            raise HandlerLoadError(f"functions.{name}: {target} has no function {attribute!r}")
        if not inspect.iscoroutinefunction(handler):
            raise HandlerLoadError(f"functions.{name}: {spec} must be an async function (params) -> None, "
                                   f"as Pipecat calls a function handler")
        loaded[name] = handler
    return loaded
