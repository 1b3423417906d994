"""Store dask arrays with one task per line block: every variable of a block computed and written together.

``xarray.Dataset.to_zarr`` gives every chunk of every variable its own store
task, and dask's graph fusion leaves an alias task behind each of them: a CTX
product (image, dark, prefix, suffix) costs about eleven scheduler tasks per
line block -- read, slices, calibration, four stores, four aliases -- most of
them near-instant. On a small cluster those round trips through the scheduler
cost more than the calibration itself, and a block's slices may be computed on
one worker and stored from another.

:func:`store_by_line_block` regroups the optimized graph instead: the tasks
that only one line block needs (its read, its column slices, its calibration)
are fused with the writes of that block's pieces into a single task, run on one
worker start to finish. Tasks that several blocks need (a flat field, the
even/odd offset and its statistics pass) stay tasks of their own and are
computed once. Blocks are thus still streamed: a worker holds one block's
pieces at a time.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ctxdask.daskcompat import DataNode, GraphNode, Task, TaskRef, keys_of, task_graph

__all__ = ["store_by_line_block"]

#: group of the pieces of arrays that have no line axis (written by a task of their own)
_NO_LINE_AXIS = -1


def store_by_line_block(
    sources: Mapping[str, da.Array],
    targets: Mapping[str, Any],
    line_axes: Mapping[str, int | None],
) -> Delayed:
    """A Delayed that stores every source array in its target, one task per line block.

    Parameters
    ----------
    sources : mapping of name to dask.array.Array
        Arrays to store. Those with a line axis must all have the same chunks
        along it.
    targets : mapping of name to array-like
        Where each source goes: picklable objects supporting
        ``target[region] = block`` (zarr arrays), the same shape as the source
        and, if they have ``chunks``, chunked as the source (regular chunks), so
        that no two tasks write into the same stored chunk.
    line_axes : mapping of name to int or None
        Axis of each source that runs along image lines; ``None`` for sources
        without one (stored by one extra task).

    Returns
    -------
    dask.delayed.Delayed
        Computing it stores everything (its value is None).

    Raises
    ------
    ValueError
        When sources with a line axis are chunked differently along it, or a
        target's shape or chunks differ from its source's.
    """
    _check(sources, targets, line_axes)
    # arrays without elements (a zero-width suffix) have no chunk to write
    names = [n for n in sources if sources[n].size]
    # the graphs as built, merged: dask's own fusion would give each array its own fused copy of
    # a read it shares with the others, and the per-block fusion below covers what it does
    graph = task_graph(HighLevelGraph.merge(*(sources[n].__dask_graph__() for n in names)))
    pieces = _pieces_by_block({n: sources[n] for n in names}, line_axes)
    token = tokenize(sorted((n, sources[n].name, line_axes[n]) for n in names))
    name = f"store-lines-{token}"

    needed = {group: _ancestors(graph, (key for key, _, _ in items)) for group, items in pieces.items()}
    uses = Counter(itertools.chain.from_iterable(needed.values()))
    layer: dict[Hashable, GraphNode] = {key: graph[key] for key, n in uses.items() if n > 1}
    group_keys = []
    for group, items in pieces.items():
        key = (name, group)
        write = Task(
            key,
            _store_pieces,
            DataNode(None, [targets[n] for _, n, _ in items]),
            DataNode(None, [region for _, _, region in items]),
            *(TaskRef(k) for k, _, _ in items),
        )
        private = [graph[k] for k in needed[group] if uses[k] == 1]
        layer[key] = Task.fuse(*private, write, key=key) if private else write
        group_keys.append(key)
    final = f"{name}-done"
    layer[final] = Task(final, _done, *(TaskRef(k) for k in group_keys))
    return Delayed(final, HighLevelGraph.from_collections(final, layer, dependencies=()))


def _check(sources, targets, line_axes) -> None:
    line_chunks = {sources[n].chunks[a] for n, a in line_axes.items() if a is not None}
    if len(line_chunks) > 1:
        raise ValueError("arrays stored by line block must have the same chunks along their line axis")
    for n, source in sources.items():
        if tuple(targets[n].shape) != tuple(source.shape):
            raise ValueError(f"{n}: target shape {tuple(targets[n].shape)} differs from the source's {source.shape}")
        # tasks run in parallel: two of them writing parts of one stored chunk would race
        stored = getattr(targets[n], "chunks", None)
        regular = all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in source.chunks if c)
        if stored is not None and (tuple(stored) != tuple(source.chunksize) or not regular):
            raise ValueError(f"{n}: target chunks {tuple(stored)} do not match the source's {source.chunks}")


def _pieces_by_block(sources, line_axes) -> dict[int, list[tuple[Hashable, str, tuple[slice, ...]]]]:
    """``{line block: [(chunk key, array name, region), ...]}`` for every chunk of every array."""
    pieces: dict[int, list] = defaultdict(list)
    for n, source in sources.items():
        axis = line_axes[n]
        bounds = [np.cumsum((0, *chunks)) for chunks in source.chunks]
        for key in keys_of(source):
            index = key[1:]
            region = tuple(slice(int(b[i]), int(b[i + 1])) for b, i in zip(bounds, index, strict=True))
            pieces[_NO_LINE_AXIS if axis is None else index[axis]].append((key, n, region))
    return dict(sorted(pieces.items()))


def _ancestors(graph: Mapping[Hashable, GraphNode], keys: Iterable[Hashable]) -> set[Hashable]:
    """The keys themselves and every key they depend on, directly or not."""
    seen: set[Hashable] = set()
    stack = list(keys)
    while stack:
        key = stack.pop()
        if key in seen or key not in graph:
            continue
        seen.add(key)
        stack.extend(graph[key].dependencies)
    return seen


def _store_pieces(targets: list, regions: list, *blocks) -> None:
    for target, region, block in zip(targets, regions, blocks, strict=True):
        target[region] = block


def _done(*stored) -> None:
    """Ordered after every store."""
