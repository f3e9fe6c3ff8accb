"""Finding a hosted bot's ``bot`` function from its profile's spec, and checking that every
spec imports, before a worker ever runs one.

A spec is ``path/to/bot.py[:function]`` (a file, relative to the working directory) or
``package.module[:function]``; the function defaults to ``bot``. A file is imported once
under a stable module name, so the forkserver's preload and a worker's lookup find the
same module object.

``worker.bot_check`` runs ``check`` in a fresh process for the supervisor.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


class BotLoadError(Exception):
    """The spec names no importable bot function; the message says why."""


def split_spec(spec: str) -> tuple[str, str]:
    """``(module or file, function)``; the function defaults to ``bot``."""
    target, _, function = spec.partition(":")
    return target, function or "bot"


def module_name_for_file(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    return f"callfleet_bot_{path.stem}_{digest}"


def is_loaded(spec: str) -> bool:
    """Whether the spec's module is imported in this process already (preloaded)."""
    target, _ = split_spec(spec)
    name = module_name_for_file(Path(target)) if target.endswith(".py") else target
    return name in sys.modules


def load_module(target: str) -> ModuleType:
    """Import a bot's module (a ``.py`` file or a module path); raises ``BotLoadError``."""
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise BotLoadError(f"{target}: no such file")
        if not os.access(path, os.R_OK):  # the workers' user, where they have their own
            raise BotLoadError(f"{target}: not readable by the workers' user (uid {os.getuid()}): make the bot's "
                               f"files and folders readable by it")
        name = module_name_for_file(path)
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise BotLoadError(f"{target}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[name]
            raise BotLoadError(f"{target}: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(target)
    except BaseException as exc:
        raise BotLoadError(f"{target}: {type(exc).__name__}: {exc}") from exc


def load_bot(spec: str) -> Callable[[Any], Any]:
    """The ``async def bot(runner_args)`` a spec names; raises ``BotLoadError``."""
    target, function = split_spec(spec)
    module = load_module(target)
    fn = getattr(module, function, None)
    if fn is None:
        raise BotLoadError(f"{target} has no function {function!r}")
    if not inspect.iscoroutinefunction(fn):
        raise BotLoadError(f"{target}:{function} must be an async function, as Pipecat Cloud requires")
    return fn  # type: ignore[no-any-return]


def check(specs: list[str]) -> list[dict[str, Any]]:
    results = []
    for spec in specs:
        try:
            load_bot(spec)
            results.append({"spec": spec, "ok": True, "error": None})
        except BotLoadError as exc:
            results.append({"spec": spec, "ok": False, "error": str(exc)})
    return results
