"""The dependency graph of a recipe's steps, checked once when the recipe is built.

Within a scope (the image steps, or the pair steps with the tile and mosaic
templates) every :class:`~ctxdask.tools.recipe.step.Upstream` input must name a
step of that scope that declares the output role, every
:class:`~ctxdask.tools.recipe.step.External` input must be one the caller
gives for that scope, and no step may wait on itself through others. A
violation is a :class:`~ctxdask.exceptions.RecipeError`, raised before any
step is rendered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ctxdask.exceptions import RecipeError
from ctxdask.tools.recipe.step import External, Step, Upstream

__all__ = ["check_graph"]


def _inputs(step: Step, extra: Mapping[str, Iterable[Upstream]]):
    """(role, source) of every input of ``step``, declared or given at render time (``extra``)."""
    yield from ((role, src) for role, (_, src) in step.inputs.items())
    yield from ((f"<{src.role} of each {src.step}>", src) for src in extra.get(step.name, ()))


def _cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle of the graph (``[a, b, a]``: a reads b, b reads a), or ``None``; depth first, iterative."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        path, todo = [start], [iter(edges[start])]
        state[start] = 1
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(edges[nxt]))
    return None


def check_graph(
    steps: Sequence[Step],
    *,
    scope: str,
    external: Iterable[str],
    extra: Mapping[str, Iterable[Upstream]] | None = None,
) -> None:
    """Check the steps of one scope: unique names, every input produced upstream or external, no cycle.

    Parameters
    ----------
    steps : sequence of Step
        All steps of the scope.
    scope : str
        ``"image"`` or ``"pair"``, for the messages.
    external : iterable of str
        The :class:`External` names the caller gives for this scope.
    extra : mapping, optional
        Step name -> upstream outputs it reads that its template does not
        declare (a mosaic reads the role it mosaics from every tile).

    Raises
    ------
    RecipeError
        Naming the step and the input that no step produces, or the steps of a cycle.
    """
    extra = extra or {}
    external = frozenset(external)
    by_name: dict[str, Step] = {}
    for step in steps:
        if step.name in by_name:
            raise RecipeError(None, f"recipe step {step.name!r} is defined twice among the {scope} steps")
        by_name[step.name] = step
    edges: dict[str, list[str]] = {name: [] for name in by_name}
    for step in steps:
        for role, src in _inputs(step, extra):
            if isinstance(src, External):
                if src.name not in external:
                    raise RecipeError(None, f"recipe step {step.name!r}: input {role!r} reads {src.name!r}, which "
                                            f"is not given to the {scope} steps ({', '.join(sorted(external))})")
                continue
            producer = by_name.get(src.step)
            if producer is None or src.role not in producer.outputs:
                raise RecipeError(None, f"recipe step {step.name!r}: input {role!r} reads {str(src)!r}, "
                                        f"which no {scope} step produces")
            edges[step.name].append(src.step)
    cycle = _cycle(edges)
    if cycle:
        raise RecipeError(None, f"recipe steps wait on each other: {' -> '.join(cycle)} ({scope} steps)")
