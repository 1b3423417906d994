"""Batch processing of stereo-pair lists on dask.distributed, with a tracking database.

- :mod:`~ctxdask.batch.pairlist`: reading and checking pair lists (:func:`read_pairs`);
- :mod:`ctxdask.tracking`: the SQLite tracking database (:class:`TrackingDB`), which the batch writes;
- :mod:`~ctxdask.batch.sources`: where EDRs come from (:class:`LocalEDRSource`);
- :mod:`~ctxdask.batch.model`: the task and outcome types every batch module shares;
- :mod:`~ctxdask.batch.work`: what runs on the workers (:func:`execute` -> :class:`Outcome`), with
  :mod:`~ctxdask.batch.steps` (the batch's own steps) and :mod:`~ctxdask.batch.staging` (inputs
  from other workers);
- :mod:`~ctxdask.batch.delivery`: bringing results home over the dask connection;
- :mod:`~ctxdask.batch.scratch`: work dirs, and what dead runs left behind;
- :mod:`~ctxdask.batch.planning`: the chain and which pairs a run works on;
- :mod:`~ctxdask.batch.tiles`: stereo by tile, the tile plan and attempt tasks, retry policy and verdict;
- :mod:`~ctxdask.batch.state`, :mod:`~ctxdask.batch.submission`, :mod:`~ctxdask.batch.tilework`,
  :mod:`~ctxdask.batch.outcomes`, :mod:`~ctxdask.batch.results`: the driver's bookkeeping, task
  submission, the tiles' bookkeeping, and result handling;
- :mod:`~ctxdask.batch.progress`: the progress bar;
- :mod:`~ctxdask.batch.loop`: the driver's one loop;
- :mod:`~ctxdask.batch.driver`: :func:`run_batch` (``ctxdask batch``).

Imports go one way, from the types up to the driver (tests/batch/test_imports.py checks it):
``model`` -> ``delivery``, ``steps`` -> ``staging`` -> ``work`` -> ``tiles`` -> ``state``/``planning`` ->
``submission`` -> ``tilework`` -> ``results`` -> ``loop`` -> ``driver``.

Examples
--------
>>> from ctxdask.batch import run_batch                       # doctest: +SKIP
>>> summary = run_batch("pairs.txt", "results", source="edr")  # doctest: +SKIP
>>> summary.pairs                                             # doctest: +SKIP
{'done': 1538, 'failed': 2}
"""

from __future__ import annotations

from ctxdask.extras import require

require("batch", "ctxdask.batch")

from ctxdask.batch.driver import BatchSummary, run_batch, select_steps
from ctxdask.batch.dryrun import DryRun, dry_run
from ctxdask.batch.pairlist import Pair, PairList, Rejected, parse_pairs, read_pairs
from ctxdask.batch.sources import LocalEDRSource
from ctxdask.tracking import TrackingDB

__all__ = [
    "BatchSummary",
    "DryRun",
    "LocalEDRSource",
    "Pair",
    "PairList",
    "Rejected",
    "TrackingDB",
    "dry_run",
    "parse_pairs",
    "read_pairs",
    "run_batch",
    "select_steps",
]
