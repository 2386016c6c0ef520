"""The package's modules import each other without cycles (function-level imports count too;
imports only for type checking do not), so each layer can be read and tested alone."""

from __future__ import annotations

import ast
import os

import simlake

PACKAGE_ROOT = os.path.dirname(os.path.dirname(simlake.__file__))


def _modules() -> dict[str, str]:
    found = {}
    for folder, _, names in os.walk(os.path.dirname(simlake.__file__)):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                mod = os.path.relpath(path, PACKAGE_ROOT)[:-3].replace(os.sep, ".")
                found[mod.removesuffix(".__init__")] = path
    return found


def _imports(path: str, modules: dict[str, str]) -> set[str]:
    """Modules of the package that ``path`` imports (a ``from pkg import mod`` counts as the
    submodule; an ``if TYPE_CHECKING:`` block does not count)."""
    deps: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            hits = [s for s in subs if s in modules]
            deps.update(hits if len(hits) == len(subs) else [node.module, *hits])
        for child in ast.iter_child_nodes(node):
            visit(child)

    with open(path, encoding="utf-8") as fh:
        visit(ast.parse(fh.read()))
    return deps


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def walk(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := walk(dep, path + [dep])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := walk(start, [start])):
            return found
    return None


def test_no_import_cycles():
    modules = _modules()
    graph = {}
    for mod, path in modules.items():
        deps = _imports(path, modules) & modules.keys()
        # a module's own packages are initialised before it in any case: not an edge
        graph[mod] = {d for d in deps if d != mod and not mod.startswith(d + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
