"""No import cycle in bot/: the one layering rule import-linter has no contract type for.

Every import counts (function-level ones too: an import moved into a function still
ties the two modules together), except those under `if TYPE_CHECKING:`. A package
`__init__` importing its own submodules is not reported. The other rules (services at
the bottom, only entry points open the wiring, chat SDKs only in bot/chat, gateways
independent) are import-linter contracts in pyproject.toml, run by `lint-imports`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "bot"


def modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(mod: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the package `mod` imports, wherever the import statement is."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for branch in node.body for n in ast.walk(branch))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            while name and name not in known:  # `from bot.x import f` imports bot.x
                name = name.rpartition(".")[0]
            if name and name != mod:
                out.add(name)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
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

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    # A package __init__ importing its own submodules is not a cycle worth reporting.
    return [c for c in found if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]


def one_loop(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest path from the component's first module back to itself: the cycle to break."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in came_from:
                    came_from[w] = v
                    following.append(w)
        frontier = following
    return component


def test_no_import_cycle_in_bot() -> None:
    known = modules(PACKAGE)
    graph = {mod: imports(mod, path, known) for mod, path in known.items()}
    assert "bot.services" in graph and "bot.wiring" in graph  # the walk found the package
    found = cycles(graph)
    assert not found, "import cycle(s) in bot/: " + "; ".join(
        f"{len(c)} modules ({', '.join(c)}), e.g. {' -> '.join(one_loop(graph, c))}" for c in found
    )
