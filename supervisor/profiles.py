"""Bot profiles (``configs/profiles.toml``): a name -> a bot kind and its defaults.

    [profiles.echo]
    kind = "echo"

    [dialin]
    profile = "echo"     # what an incoming phone call gets

    [profiles.my_bot]
    kind = "pipecat"
    bot = "bots/my_bot.py:bot"
    secrets = ["OPENAI_API_KEY"]   # the supervisor's env vars this profile's bots get
    env = {LOG_FORMAT = "json"}    # plain values

A profile's keys other than ``kind``, ``max_duration``, ``end_on_last_leave``, ``secrets``
and ``env`` are the
bot's configuration, checked by the bot's kind when profiles load (a playback profile's
WAV must be there and playable), so a profile that cannot work stops start-up.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.bots import BOT_KINDS
from supervisor.bots.base import BotConfigError
from supervisor.config import ConfigError
from supervisor.pool.lanes import lanes_of

KINDS = ("echo", "playback", "recorder", "stream", "pipecat")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Profile:
    name: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    max_duration_s: int | None = None
    end_on_last_leave: bool = True
    # Pipecat Cloud's "secret set": names of the supervisor's environment variables this
    # profile's workers get, and plain values; a worker sees nothing else of the operator's.
    secrets: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Profiles:
    profiles: dict[str, Profile]
    dialin_profile: str | None = None

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)

    def lanes(self) -> tuple[str, ...]:
        """The worker lanes these profiles need (``supervisor.pool.lanes``)."""
        return lanes_of(p.kind for p in self.profiles.values())

    def pipecat_bots(self) -> dict[str, str]:
        """profile name -> bot spec, for every profile that hosts a Pipecat bot."""
        return {p.name: str(p.config["bot"]) for p in self.profiles.values() if p.kind == "pipecat"}


def parse(text: str, source: str = "profiles.toml") -> Profiles:
    """Raises ``ConfigError`` naming the offending key. Reads the files a profile names
    (a playback WAV's header), so it blocks briefly; relative paths are from the working
    directory, as the bots open them."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(raw) - {"profiles", "dialin"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown key")
    profiles: dict[str, Profile] = {}
    for name, body in (raw.get("profiles") or {}).items():
        if not isinstance(body, dict):
            raise ConfigError(f"profiles.{name}: expected a table")
        body = dict(body)
        kind = body.pop("kind", None)
        if kind not in KINDS:
            raise ConfigError(f"profiles.{name}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        max_duration = body.pop("max_duration", None)
        if max_duration is not None and (not isinstance(max_duration, int) or not 60 <= max_duration <= 14400):
            raise ConfigError(f"profiles.{name}.max_duration: expected int in 60..14400")
        end_on_last_leave = body.pop("end_on_last_leave", True)
        if not isinstance(end_on_last_leave, bool):
            raise ConfigError(f"profiles.{name}.end_on_last_leave: expected bool")
        secrets = body.pop("secrets", [])
        if not isinstance(secrets, list) or not all(isinstance(n, str) and _ENV_NAME.match(n) for n in secrets):
            raise ConfigError(f"profiles.{name}.secrets: expected a list of environment variable names")
        env = body.pop("env", {})
        if not isinstance(env, dict) or not all(isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str)
                                                for k, v in env.items()):
            raise ConfigError(f"profiles.{name}.env: expected a table of NAME = \"string\"")
        bot_cls = BOT_KINDS.get(kind)
        if bot_cls is not None:
            try:
                bot_cls.check_config(body)
            except BotConfigError as exc:
                raise ConfigError(f"profiles.{name}.{exc.key}: {exc.message}") from None
        profiles[name] = Profile(name, kind, body, max_duration, end_on_last_leave, tuple(secrets), env)
    dialin = raw.get("dialin") or {}
    dialin_profile = dialin.get("profile")
    if set(dialin) - {"profile"}:
        raise ConfigError(f"dialin.{sorted(set(dialin) - {'profile'})[0]}: unknown key")
    if dialin_profile is not None and dialin_profile not in profiles:
        raise ConfigError(f"dialin.profile: no profile named {dialin_profile!r}")
    return Profiles(profiles, dialin_profile)


def load(path: str | Path) -> Profiles:
    p = Path(path)
    try:
        return parse(p.read_text(), str(p))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
