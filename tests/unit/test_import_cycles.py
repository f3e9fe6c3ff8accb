"""The code's own packages import each other without cycles.

Every ``import``/``from`` counts -- module level, inside functions and under
``TYPE_CHECKING`` alike -- because a function-level import that closes a loop is the
same tangle, only hidden until the function runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("supervisor", "worker", "protocol", "sandbox", "callfleet", "cli", "bench")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages under test."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that one import statement in module ``name`` (file ``path``) names."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            anchor = package[: len(package) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        # `from pkg import sub` imports the module pkg.sub; `from mod import thing` imports mod.
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    edges = set()
    for target in targets:
        while target and target not in modules:  # `import a.b.thing_that_is_not_a_module` -> a.b
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports anywhere in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _imported(name, path, node, modules)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle (``[a, b, ..., a]``) per strongly connected component of size > 1."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan; the graph is a few hundred nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_through(min(c), c, graph) for c in components]


def _cycle_through(start: str, component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest path start -> ... -> start inside one strongly connected component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{start} is in a component but on no cycle")


def test_the_graph_sees_relative_function_level_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "supervisor.commands.base" in graph["supervisor.commands.drain"]  # module level
    assert "supervisor.http.app" in graph["supervisor.daemon"]  # inside Daemon.run
    assert "supervisor.http.views" in graph["supervisor.http.app"]  # `from pkg import sub` names pkg.sub


def test_relative_imports_resolve_against_the_importing_package() -> None:
    modules = _modules()
    views, init = ROOT / "supervisor/http/views.py", ROOT / "supervisor/http/__init__.py"
    cases = [("supervisor.http.views", views, "from .errors import ApiError", {"supervisor.http.errors"}),
             ("supervisor.http.views", views, "from .. import config", {"supervisor.config"}),
             ("supervisor.http", init, "from . import views", {"supervisor.http.views"}),
             ("supervisor.http", init, "from ..pool import PoolFull", {"supervisor.pool"})]
    for name, path, source, expected in cases:
        node = ast.parse(source).body[0]
        assert isinstance(node, ast.ImportFrom)
        assert _imported(name, path, node, modules) == expected, source


def test_find_cycles_reports_a_loop_as_a_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]


def test_no_import_cycles_among_our_modules() -> None:
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
