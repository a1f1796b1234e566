"""The package's import graph, read statically (``ast``) from every module, with the imports
inside functions too: no cycles, no command importing another command, and backends under
``remote/`` reaching the engine only through its SDK."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the repository root is the mlbuild package
PACKAGE = "mlbuild"
NOT_PACKAGE = {"tests", "examples", "benchmarks", "docs", ".ci", "build", "dist"}
# What a backend may import of the engine (engine/interfaces.py says why).
ENGINE_SDK = {"mlbuild.engine.interfaces", "mlbuild.engine.run.runner", "mlbuild.engine.errors"}


def module_files() -> dict[str, Path]:
    """Module name -> file, for every module of the package."""
    out: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in NOT_PACKAGE or any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            continue
        parts = [PACKAGE, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that runs (anywhere, functions included), not those under
    ``if TYPE_CHECKING:``, which never run and so cannot close a cycle."""
    todo = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                todo.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            todo.append(child)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    files = module_files()
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``, mod.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                while target and target not in files and "." in target:
                    target = target.rpartition(".")[0]  # ``import a.b.c`` of a non-module: its module
                if target in files and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_is_read_from_every_module(graph: dict[str, set[str]]) -> None:
    # A sanity check that the walk sees imports inside functions and relative imports.
    assert "mlbuild.engine.run.api" in graph["mlbuild.engine.commands.build"]
    assert "mlbuild.engine.run.runner" in graph["mlbuild.engine.run.local_executor"]  # imported in a method
    assert len(graph) > 80


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_command_imports_another(graph: dict[str, set[str]]) -> None:
    prefix = "mlbuild.engine.commands."
    bad = sorted(f"{m} imports {t}" for m, ts in graph.items() if m.startswith(prefix)
                 for t in ts if t.startswith(prefix))
    assert bad == []


def test_backends_import_only_the_engine_sdk(graph: dict[str, set[str]]) -> None:
    bad = sorted(f"{m} imports {t}" for m, ts in graph.items() if m.startswith("mlbuild.remote")
                 for t in ts if t.startswith("mlbuild.engine") and t not in ENGINE_SDK | {"mlbuild.engine"})
    assert bad == []
    # ... and the engine reaches backends only by name (engine/run/backends.py), never by import.
    reaching = sorted(f"{m} imports {t}" for m, ts in graph.items() if m.startswith("mlbuild.engine")
                      for t in ts if t.startswith("mlbuild.remote"))
    assert reaching == []
