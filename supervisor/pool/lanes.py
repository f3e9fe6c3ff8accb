"""Worker lanes: which forkserver a worker is forked from, so which sessions it can host.

A worker hosting a built-in bot (echo, playback, recorder, stream) needs nothing of
Pipecat; a worker hosting a Pipecat bot needs Pipecat, its Daily transport and every
pipecat profile's bot imported before it is forked, or its session waits seconds for
them. One forkserver preloading everything made every echo worker carry Pipecat's pages
and made the whole pool wait for Pipecat's imports at start-up. So each lane has its own
forkserver (``supervisor.pool.forkserver``) and its own ``min_idle`` warm workers:

- ``builtin``: forked from a lean forkserver (the worker and its call client only);
- ``pipecat``: forked from one that also preloaded Pipecat and the profiles' bots.

A lane exists while a profile needs it. A Pipecat worker can host a built-in bot too (it
has everything a lean one has), so a built-in session borrows an idle one when the pool is
at ``max_workers``; the reverse is not true: a Pipecat session takes a Pipecat worker.
"""

from __future__ import annotations

from collections.abc import Iterable

BUILTIN = "builtin"
PIPECAT = "pipecat"


def lane_of(bot_kind: str) -> str:
    """The lane whose workers host a bot of this kind."""
    return PIPECAT if bot_kind == "pipecat" else BUILTIN


def lanes_of(bot_kinds: Iterable[str]) -> tuple[str, ...]:
    """The lanes a set of profiles needs, in a fixed order; a pool without profiles keeps
    the built-in lane (its workers are the cheapest to keep)."""
    return tuple(sorted({lane_of(kind) for kind in bot_kinds})) or (BUILTIN,)


def can_host(worker_lane: str, session_lane: str) -> bool:
    """Whether a worker of ``worker_lane`` can host a session of ``session_lane``."""
    return worker_lane == session_lane or worker_lane == PIPECAT


def idle_targets(min_idle: int, max_workers: int, lanes: tuple[str, ...]) -> dict[str, int]:
    """How many idle workers each lane keeps warm: ``min_idle`` each, unless that is more
    than ``max_workers`` holds in all; then ``max_workers`` is shared as evenly as it goes
    (the first lanes get the remainder), so every lane's target can be met and readiness
    (``Pool.warm``) is reachable."""
    if min_idle * len(lanes) <= max_workers:
        return dict.fromkeys(lanes, min_idle)
    share, extra = divmod(max_workers, len(lanes))
    return {lane: min(min_idle, share + (i < extra)) for i, lane in enumerate(lanes)}
