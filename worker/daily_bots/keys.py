"""The provider keys of the session a built-in Daily Bots pipeline runs: what the supervisor
handed this worker in ``RunBot.provider_keys`` (variable name -> key or setting).

They are held in a context variable set only in the context the bot's task runs in, so
the pipeline finds them and nothing else in the worker does: never ``os.environ``, where
every library the bot loads (and anything it starts) could read them, and never a
module global a later session in this worker would inherit.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from types import MappingProxyType

_NONE: Mapping[str, str] = MappingProxyType({})
_KEYS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("callfleet_provider_keys", default=_NONE)


def session_context(provider_keys: Mapping[str, str]) -> contextvars.Context:
    """A copy of the current context in which ``current()`` answers ``provider_keys``: the
    context the bot runner starts the bot's task in."""
    context = contextvars.copy_context()
    context.run(_KEYS.set, MappingProxyType(dict(provider_keys)))
    return context


def current() -> Mapping[str, str]:
    """This session's keys (read-only); empty outside a bot's task or when none were given."""
    return _KEYS.get()
