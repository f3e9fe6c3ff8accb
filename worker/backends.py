"""Which call client a worker hosts, chosen by name.

``daily`` is the real daily-python; ``sandbox`` is ``sandbox.client``, the offline stand-in
with the same API and threading. Any other name is taken as a module path, which is how
tests plug in a double. The module must expose ``Daily``, ``CallClient``, ``EventHandler``,
``CustomAudioSource`` and ``CustomAudioTrack`` like daily-python does.
"""

from __future__ import annotations

import importlib
from types import ModuleType

BACKENDS = {"daily": "daily", "sandbox": "sandbox.client"}
REQUIRED = ("Daily", "CallClient", "EventHandler", "CustomAudioSource", "CustomAudioTrack")


_sdk_initialised = False


def init_sdk(backend: ModuleType) -> None:
    """``Daily.init()`` exactly once per process: a second call aborts the process."""
    global _sdk_initialised
    if not _sdk_initialised:
        backend.Daily.init()
        _sdk_initialised = True


class BackendError(Exception):
    """The backend could not be loaded or lacks part of the daily-python API."""


def load_backend(name: str) -> ModuleType:
    """Import the backend module for ``name``; raises ``BackendError`` naming what failed."""
    module_path = BACKENDS.get(name, name)
    try:
        # Where hosted bots run, ``daily`` is the hosted module (worker.hosted_daily): unwrap it.
        module = importlib.import_module(module_path)
        module = getattr(module, "__wrapped__", module)
    except Exception as exc:  # an import can fail in any way; report it as a boot failure
        raise BackendError(f"backend {name!r}: cannot import {module_path}: {exc}") from exc
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise BackendError(f"backend {name!r} lacks {', '.join(missing)}")
    return module


def sdk_version(module: ModuleType) -> str:
    """Best-effort version string of the backend's SDK, for the handshake."""
    from importlib import metadata

    if module.__name__.split(".")[0] == "daily":
        try:
            return "daily-python " + metadata.version("daily-python")
        except metadata.PackageNotFoundError:
            return "daily-python"
    return str(getattr(module, "__version__", module.__name__))
