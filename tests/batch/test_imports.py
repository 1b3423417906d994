"""The batch modules import one another in one direction: no circles, and none over about 400 lines."""

from __future__ import annotations

import ast
import pathlib

import ctxdask.batch

PACKAGE = pathlib.Path(ctxdask.batch.__file__).parent


def _batch_imports(path: pathlib.Path) -> set[str]:
    """Modules of ctxdask.batch that ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["ctxdask", "batch"] and len(parts) > 2 and (PACKAGE / f"{parts[2]}.py").exists():
                found.add(parts[2])
    return found


def _graph() -> dict[str, set[str]]:
    return {p.stem: _batch_imports(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_batch_modules_import_in_one_direction():
    graph = _graph()
    assert {"model", "delivery", "staging", "work", "planning", "submission", "results", "driver"} <= set(graph)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    # the types every module shares import nothing else of the batch package
    assert graph["model"] == set()
    # what runs on workers never imports the driver's side
    driver_side = {"driver", "planning", "submission", "results", "state"}
    for worker_side in ("model", "steps", "staging", "delivery", "work"):
        assert not graph[worker_side] & driver_side, worker_side


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_batch_module_stays_small():
    sizes = {p.stem: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert len(sizes) > 20 and all(n <= 420 for n in sizes.values()), sizes
