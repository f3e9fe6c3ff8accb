"""Start a function by name in a child process, so a parent never imports the child's code.

The pool's forkserver target is ``run_entry("worker.main:run_options", {...})``: the
supervisor names the worker's entry point instead of importing the worker package."""

from __future__ import annotations

import importlib
from typing import Any


def run_entry(target: str, kwargs: dict[str, Any]) -> None:
    """Import ``module:function`` and call it with ``kwargs``."""
    module, _, func = target.partition(":")
    getattr(importlib.import_module(module), func)(**kwargs)
