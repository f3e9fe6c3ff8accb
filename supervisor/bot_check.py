"""Does every pipecat profile's bot import? Asked of a fresh Python process, because the
supervisor never imports Pipecat or a user's bot itself (87 MB and a second of imports, and
a user's module-level code, have no place in the daemon).

The worker's forkserver preloads the same modules, but multiprocessing silently skips a
preload module that fails to import: this check is what turns a broken ``bot.py`` into a
start-up that exits 2 naming the profile, or a refused reload.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from callfleet.privileges import WorkerUser
from protocol.environment import DROP_PRIVILEGES_ENV, WORKER_GID_ENV, WORKER_HOME_ENV, WORKER_UID_ENV
from supervisor.config import ConfigError

CHECK_TIMEOUT_S = 60.0


def _command(backend: str, specs: list[str]) -> list[str]:
    return [sys.executable, "-m", "worker.bot_check", backend, *specs]


def _verdict(bots: dict[str, str], returncode: int, stdout: str, stderr: str) -> None:
    by_spec = {spec: name for name, spec in bots.items()}
    for line in stdout.splitlines():
        try:
            result = json.loads(line)
        except ValueError:
            continue
        if not result.get("ok"):
            spec = result.get("spec")
            if spec is None:
                raise ConfigError(f"pipecat profiles need the pipecat extra (pip install 'callfleet[pipecat]'): "
                                  f"{result.get('error')}")
            raise ConfigError(f"profiles.{by_spec.get(spec, spec)}.bot: does not import: {result.get('error')}")
    if returncode != 0:
        raise ConfigError(f"checking the pipecat bots failed (exit {returncode}): {stderr.strip()[-500:]}")


def _as_workers(user: WorkerUser | None) -> dict[str, str]:
    """The check's environment: this process's (nothing of the operator's), and the
    workers' user to become first (``worker.privileges``), as the forkserver does."""
    env = {**os.environ, DROP_PRIVILEGES_ENV: "1"}
    if user is not None:
        env.update({WORKER_UID_ENV: str(user.uid), WORKER_GID_ENV: str(user.gid), WORKER_HOME_ENV: user.home})
    return env


async def check_bots_async(bots: dict[str, str], backend: str, user: WorkerUser | None = None) -> None:
    """Raises ``ConfigError`` naming the first profile whose bot does not import.

    The check runs as the workers' ``user`` when they have one of their own, so a bot file
    that user cannot read is named here, not found missing by the first session.

    Every profile's spec is checked, callfleet's built-in pipelines too: those are located
    without being imported (``worker.bot_check``: they import every installed provider's
    SDK, seconds of start-up), so a typo in their path or function is refused all the same.
    Pipecat itself is always imported, so a missing pipecat extra is caught."""
    if not bots:
        return
    specs = list(dict.fromkeys(bots.values()))
    proc = await asyncio.create_subprocess_exec(*_command(backend, specs), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=_as_workers(user))
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CHECK_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ConfigError(f"importing the pipecat bots took longer than {CHECK_TIMEOUT_S:g}s") from None
    _verdict(bots, proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
