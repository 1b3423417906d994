"""The dask graph of one image's flat profile: one task per line block, reading included.

Built from an EDR's ``image`` and ``dark`` arrays as dask made them, each line
block's statistics task would come with a read task, two column slices and,
for an image of one block, a separate profile task: five scheduler round trips
for one read, and the raw block (the largest object of the build) held until
both slices are taken. Here, as in :mod:`ctxdask.io.blockstore`, the tasks only
one block needs (its read and its slices) are fused into the task that
reduces it, so a block is read, reduced and dropped by one task on one
worker; an image of one block becomes one task that returns its profile.
Tasks several blocks share (none, for an EDR) stay tasks of their own.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ctxdask.daskcompat import GraphNode, Task, TaskRef, keys_of, task_graph
from ctxdask.radiometry.flatstats import block_profile, block_statistics, image_profile, sum_statistics
from ctxdask.settings import FlatBuildSettings
from ctxdask.settings import current as current_settings

__all__ = ["profile_graph", "tree"]


def tree(func, items: Sequence, split_every: int, **kwargs):
    """Reduce delayed ``items`` with ``func(*group, **kwargs)`` in a tree of fan-in ``split_every``."""
    items = list(items)
    while len(items) > 1:
        items = [dask.delayed(func, pure=True)(*items[i : i + split_every], **kwargs)
                 for i in range(0, len(items), split_every)]
    return items[0]


def image_info(ds: xr.Dataset) -> dict:
    """The label facts an image's profile records (small: they travel in the graph)."""
    attrs = ds.attrs
    return {
        "source": str(attrs.get("source", "")),
        "product_id": str(attrs.get("PRODUCT_ID", "")),
        "start_time": str(attrs.get("START_TIME", "")),
        "summing": int(attrs.get("SAMPLING_FACTOR", 1)),
        "first_pixel": int(attrs.get("SAMPLE_FIRST_PIXEL", 0)),
        "samples": int(ds.sizes["sample"]),
    }


def _compact(pixels: np.ndarray) -> Any:
    """``pixels`` as a ``range`` when evenly spaced (always, for an EDR): 48 bytes in the graph, not 40 KB."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 1 and pixels.size > 1 and np.issubdtype(pixels.dtype, np.integer):
        step = int(pixels[1] - pixels[0])
        candidate = range(int(pixels[0]), int(pixels[0]) + step * pixels.size, step) if step else None
        if candidate is not None and np.array_equal(pixels, np.asarray(candidate)):
            return candidate
    return pixels


def _ancestors(graph: Mapping[Hashable, GraphNode], keys: Iterable[Hashable]) -> set[Hashable]:
    """``keys`` and every key they depend on, transitively."""
    seen: set[Hashable] = set()
    stack = [k for k in keys if k in graph]
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        stack.extend(d for d in graph[key].dependencies if d in graph and d not in seen)
    return seen


def _profile_of_blocks(*blocks, info, detector_pixel, settings):
    """The profile of an image from its blocks' statistics (a tree node would be one more round trip)."""
    return image_profile(sum_statistics(*blocks), info, np.asarray(detector_pixel), settings)


def profile_graph(ds: xr.Dataset, settings: FlatBuildSettings) -> Delayed:
    """Delayed :class:`~ctxdask.radiometry.flatstats.ImageProfile` of one opened EDR: one read of each line block.

    Parameters
    ----------
    ds : xarray.Dataset
        A raw EDR (:func:`ctxdask.open_edr`), dask-backed or in memory.
    settings : FlatBuildSettings

    Returns
    -------
    dask.delayed.Delayed
    """
    image = ds.image.data
    dark = ds.dark.data
    if not isinstance(image, da.Array):
        image = da.from_array(np.asarray(image), chunks=(current_settings().chunk_lines, -1))
    image = image.rechunk({1: -1})
    dark = da.asarray(dark).rechunk({0: image.chunks[0], 1: -1})
    info, pixels = image_info(ds), _compact(ds.detector_pixel.values)
    graph = task_graph(HighLevelGraph.merge(image.__dask_graph__(), dark.__dask_graph__()))
    pairs = list(zip(keys_of(image), keys_of(dark), strict=True))
    name = "flat-profile-" + tokenize(image.name, dark.name, info, pixels, settings)
    needed = [_ancestors(graph, pair) for pair in pairs]
    uses = Counter(itertools.chain.from_iterable(needed))
    layer: dict[Hashable, GraphNode] = {key: graph[key] for key, n in uses.items() if n > 1}
    single = len(pairs) == 1
    keys = []
    for i, ((image_key, dark_key), ancestors) in enumerate(zip(pairs, needed, strict=True)):
        key = name if single else (f"{name}-block", i)
        refs = (TaskRef(image_key), TaskRef(dark_key))
        task = (Task(key, block_profile, *refs, info, pixels, settings) if single
                else Task(key, block_statistics, *refs))
        private = [graph[k] for k in ancestors if uses[k] == 1]
        layer[key] = Task.fuse(*private, task, key=key) if private else task
        keys.append(key)
    graph_out = HighLevelGraph.from_collections(name, layer, dependencies=())
    if single:
        return Delayed(name, graph_out, layer=name)
    items = [Delayed(k, graph_out, layer=name) for k in keys]
    while len(items) > settings.split_every:
        items = [dask.delayed(sum_statistics, pure=True)(*items[i : i + settings.split_every])
                 for i in range(0, len(items), settings.split_every)]
    return dask.delayed(_profile_of_blocks, pure=True)(*items, info=info, detector_pixel=pixels, settings=settings)
