"""No import cycle in ``analyzer/`` and ``metrics/``, function-local imports included.

The graph is read from the source with :mod:`ast` (nothing is imported): an edge for every ``import X`` and
``from X import Y`` anywhere in a module (inside functions too, where a cycle hides until the function runs), to
the module it names (``from pkg import mod`` names the submodule ``pkg.mod``; importing a package is importing its
``__init__``, with everything that re-exports). Imports under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analyzer", "metrics")


def module_files() -> dict[str, Path]:
    """{dotted module name: file} for every module of the checked packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[tuple[str, str | None]]:
    """Every import ``module`` runs: ``(module name, None)`` for ``import X``, ``(package, name)`` for ``from
    package import name`` (relative imports resolved)."""
    names: set[tuple[str, str | None]] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.update((base, alias.name) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    """{module: the checked modules it imports}: ``from pkg import name`` is an edge to the submodule
    ``pkg.name`` when there is one, else to ``pkg`` (its ``__init__``)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for base, name in imported_names(
            ast.parse(path.read_text("utf-8")), module, path.name == "__init__.py"
        ):
            target = f"{base}.{name}" if name is not None and f"{base}.{name}" in files else base
            if target in files and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_the_graph_sees_function_local_imports_and_skips_type_checking_ones():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from analyzer.result import RankingResult\n"
        "def f():\n    from analyzer.reports import html\n"
    )
    names = imported_names(ast.parse(source), "analyzer.x", False)
    assert names == {("typing", "TYPE_CHECKING"), ("analyzer.reports", "html")}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_analyzer_and_metrics_have_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
