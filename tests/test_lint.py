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
APPLICATIONS = {"bench"}

# package -> packages it must never import (STYLE.md: the layout is the architecture)
FORBIDDEN = {
    "protocol": {"worker", "supervisor", "sandbox", *APPLICATIONS},
    "worker": {"supervisor", *APPLICATIONS},
    "supervisor": {"worker", "sandbox", *APPLICATIONS},
    "sandbox": {"supervisor", "worker", *APPLICATIONS},
    # the shared library under all of them: it reaches a part only by naming it (cli, entry)
    "callfleet": {"protocol", "worker", "supervisor", "sandbox", *APPLICATIONS},
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
