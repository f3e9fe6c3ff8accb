"""The operator's environment, held by the supervisor alone.

At start-up the daemon takes a snapshot of its environment (``OperatorEnvironment``) and
reduces the process's own ``os.environ`` to a short allowlist, so every process it starts
(the pool's forkserver and so every worker and bot, the sandbox, the bot import check)
inherits nothing of the operator's. Whatever needs a secret -- the Daily key, the bearer
key, a provider's key, a profile's secret set, the cluster's node secret -- reads it from
the snapshot, and hands a worker only what that worker's session was given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from supervisor.config import ConfigError

# What every worker starts with (PATH, HOME, LANG, LC_*, TZ, TMPDIR): enough for a
# bot's libraries to find programs, locales and a temporary directory. PYTHONPATH too, so
# a bot imports what the supervisor imports, and Python's and callfleet's own switches.
ALLOWED = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "PYTHONPATH", "PYTHONUNBUFFERED",
                     "PYTHONDONTWRITEBYTECODE", "CALLFLEET_LOG_LEVEL"})
ALLOWED_PREFIXES = ("LC_",)


def allowed(name: str) -> bool:
    return name in ALLOWED or name.startswith(ALLOWED_PREFIXES)


class OperatorEnvironment(Mapping[str, str]):
    """A read-only snapshot of the supervisor's environment as the operator set it."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._values = dict(environ)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never print the values
        return f"OperatorEnvironment({len(self._values)} variables)"

    def base(self) -> dict[str, str]:
        """The allowlisted part: what a worker starts with."""
        return {k: v for k, v in self._values.items() if allowed(k)}

    def pick(self, names: Iterable[str]) -> dict[str, str]:
        """The named variables that are set (a profile's secret set)."""
        return {n: self._values[n] for n in names if n in self._values}


def take_over(environ: MutableMapping[str, str] | None = None) -> OperatorEnvironment:
    """Snapshot ``environ`` (``os.environ`` by default) and reduce it to the allowlist;
    returns the snapshot. Children started afterwards inherit the reduced environment."""
    env = os.environ if environ is None else environ
    snapshot = OperatorEnvironment(env)
    for name in [n for n in env if not allowed(n)]:
        del env[name]
    return snapshot


def bot_env(environ: OperatorEnvironment, profile: Any) -> dict[str, str]:
    """What a profile's bot finds in its environment besides the allowlist: its secret set
    (``secrets``, taken from the operator's environment) and its plain ``env``."""
    return {**environ.pick(profile.secrets), **profile.env}


def check_secrets(environ: OperatorEnvironment, profiles: Iterable[Any]) -> None:
    """Raises ``ConfigError`` naming the first profile secret the environment lacks."""
    for profile in profiles:
        for name in profile.secrets:
            if name not in environ:
                raise ConfigError(f"profiles.{profile.name}.secrets: ${name} is not set in the supervisor's "
                                  f"environment")
