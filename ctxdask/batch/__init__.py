"""Batch processing of stereo-pair lists on dask.distributed, with a tracking database.

- :mod:`~ctxdask.batch.pairlist`: reading and checking pair lists (:func:`read_pairs`);
- :mod:`~ctxdask.batch.db`: the SQLite tracking database (:class:`TrackingDB`);
- :mod:`~ctxdask.batch.sources`: where EDRs come from (:class:`LocalEDRSource`);
- :mod:`~ctxdask.batch.work`: what runs on the workers (:func:`execute` -> :class:`Outcome`);
- :mod:`~ctxdask.batch.delivery`: bringing results home over the dask connection;
- :mod:`~ctxdask.batch.progress`: the progress bar;
- :mod:`~ctxdask.batch.driver`: :func:`run_batch`, the driver (``ctxdask batch``).

Examples
--------
>>> from ctxdask.batch import run_batch                       # doctest: +SKIP
>>> summary = run_batch("pairs.txt", "results", edr_dir="edr", local=4)  # doctest: +SKIP
>>> summary.pairs                                             # doctest: +SKIP
{'done': 1538, 'failed': 2}
"""

from __future__ import annotations

from ctxdask.batch.db import TrackingDB
from ctxdask.batch.driver import BatchSettings, BatchSummary, run_batch, select_steps
from ctxdask.batch.pairlist import Pair, PairList, Rejected, parse_pairs, read_pairs
from ctxdask.batch.sources import LocalEDRSource

__all__ = [
    "BatchSettings",
    "BatchSummary",
    "LocalEDRSource",
    "Pair",
    "PairList",
    "Rejected",
    "TrackingDB",
    "parse_pairs",
    "read_pairs",
    "run_batch",
    "select_steps",
]
