"""The operator's secrets the supervisor reads, registered with its scrubber (``callfleet.scrub``)
so that none of them reaches a log line, an error, a record, an event or Redis.

What counts: the value of every ``*_env`` setting in the config (the Daily key, the bearer
key, the cluster's node secret, the dial-in HMAC secret, and any such setting added later),
every provider's credential variables (``callfleet.providers``), every profile's secret set, and the
password in ``[cluster] redis_url``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

from callfleet import scrub
from callfleet.providers import secret_variables
from supervisor.config import Config


def secret_names(config: Config, profiles: Iterable[Any]) -> set[str]:
    """The names of the environment variables whose values are secrets."""
    names = set(secret_variables())
    for section in msgspec.structs.asdict(config).values():
        if isinstance(section, msgspec.Struct):
            names |= {value for field, value in msgspec.structs.asdict(section).items()
                      if field.endswith("_env") and isinstance(value, str)}
    for profile in profiles:
        names |= set(profile.secrets)
    return names


def register(config: Config, profiles: Iterable[Any], environ: Mapping[str, str]) -> tuple[str, ...]:
    """Register every operator secret that is set; returns them for ``scrub.forget``."""
    values = [environ[name].strip() for name in sorted(secret_names(config, profiles)) if name in environ]
    if config.cluster.redis_url:
        try:
            values.append(urlsplit(config.cluster.redis_url).password or "")
        except ValueError:
            pass  # a malformed URL fails where the cluster connects, naming the key
    return scrub.register(*values)
