"""House rules that a machine can check: ruff everywhere, mypy --strict on the wire."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_protocol_is_mypy_strict_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "protocol"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# Applications sit on top of everything: they may import any package, no package imports them.
# cli/ is the roof: the command line names every part's entry point.
APPLICATIONS = {"bench", "cli"}

# package -> packages it must never import (STYLE.md: the layout is the architecture)
FORBIDDEN = {
    "protocol": {"worker", "supervisor", "sandbox", *APPLICATIONS},
    "worker": {"supervisor", *APPLICATIONS},
    "supervisor": {"worker", "sandbox", *APPLICATIONS},
    "sandbox": {"supervisor", "worker", "protocol", *APPLICATIONS},  # Daily's stand-in knows no internal wire
    # the shared library under all of them
    "callfleet": {"protocol", "worker", "supervisor", "sandbox", *APPLICATIONS},
    "bench": {"cli"},
}


def test_packages_import_only_what_the_architecture_allows() -> None:
    import ast

    offences = []
    for package, banned in FORBIDDEN.items():
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    if name.split(".")[0] in banned:
                        offences.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert offences == []


def test_the_shared_library_names_no_module_above_it() -> None:
    """Not even as a string for importlib: callfleet/ is the ground floor, and what starts a
    part by name (the command line, a forkserver's target) is given that name by its caller."""
    import ast
    import re

    above = "|".join(sorted(FORBIDDEN["callfleet"]))
    module_name = re.compile(rf"^({above})(\.\w+)*(\.\w+|:\w+)$")
    offences = [f"{path.relative_to(REPO)}:{node.lineno} names {node.value}"
                for path in (REPO / "callfleet").rglob("*.py")
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and module_name.match(node.value)]
    assert offences == []
