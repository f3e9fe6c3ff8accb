"""``python -m worker.bot_check BACKEND SPEC...``: import Pipecat (over the hosted ``daily``
module for BACKEND) and each bot spec in this fresh process, and print one JSON line per
spec, ``{"spec", "ok", "error"}`` (``spec`` null: Pipecat itself failed). The supervisor
runs it at start-up and on reload to refuse a profile whose bot does not import.

callfleet's own Daily Bots pipelines (``worker.daily_bots.…``) are located rather than
imported: importing them imports every installed provider's SDK (seconds, on every start
and reload), and they are tested with the package. A typo in their path or function name is
still caught: the module must exist and define the function as an ``async def``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import worker.privileges  # noqa: F401  first: the check runs with the workers' privileges, as they do
from worker.bot_loader import check, split_spec
from worker.pipecat_preload import prepare

BUILT_IN = "worker.daily_bots."  # callfleet's own pipelines: located, not imported


def locate(spec: str) -> dict[str, Any]:
    """Check a built-in bot's spec without importing its module: the module exists and
    defines the function, ``async``, at its top level. The result is ``check``'s shape.
    A name bound some other way (an import, an assignment) is checked by importing."""
    target, function = split_spec(spec)
    try:
        found = importlib.util.find_spec(target)
    except (ImportError, ValueError) as exc:
        return {"spec": spec, "ok": False, "error": f"{target}: {type(exc).__name__}: {exc}"}
    if found is None or found.origin is None or not found.origin.endswith(".py"):
        return {"spec": spec, "ok": False, "error": f"{target}: ModuleNotFoundError: no module named {target!r}"}
    try:
        tree = ast.parse(Path(found.origin).read_text(), found.origin)
    except (OSError, SyntaxError, ValueError) as exc:
        return {"spec": spec, "ok": False, "error": f"{target}: {type(exc).__name__}: {exc}"}
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef) and node.name == function:
            return {"spec": spec, "ok": True, "error": None}
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return {"spec": spec, "ok": False,
                    "error": f"{target}:{function} must be an async function, as Pipecat Cloud requires"}
    bound = {name.id for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
             for name in (node.targets if isinstance(node, ast.Assign) else [node.target])
             if isinstance(name, ast.Name)}
    bound |= {(alias.asname or alias.name).split(".")[0] for node in tree.body
              if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names}
    if function in bound:
        return check([spec])[0]
    return {"spec": spec, "ok": False, "error": f"{target} has no function {function!r}"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    backend = args[0] if args else "sandbox"
    try:
        prepare(backend)
    except Exception as exc:
        print(json.dumps({"spec": None, "ok": False, "error": f"pipecat: {type(exc).__name__}: {exc}"}))
        return 1
    failed = False
    for spec in args[1:]:
        result = locate(spec) if spec.startswith(BUILT_IN) else check([spec])[0]
        print(json.dumps(result))
        failed = failed or not result["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
