"""Fixtures for the batch tests: tiny EDRs, pair lists, a LocalCluster with the stand-ins."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
import sqlite3
import sys

import pytest

from ctxdask.testing import make_edr
from ctxdask.tools.tasks import run_step

from ..tools.conftest import isis_calibration, standin_path  # noqa: F401  (isis_calibration: autouse)

#: the project root: worker processes need it on sys.path to import this module's functions
#: (distributed pickles task arguments by reference when it can)
ROOT = str(pathlib.Path(__file__).resolve().parents[2])

IDS = ["P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W", "B10_013341_1010_XN_79S172W",
       "D10_031011_1864_XI_06N201W"]


def make_images(folder: pathlib.Path, ids, *, summing2=(), lines: int = 16) -> pathlib.Path:
    """Tiny valid EDRs ``<id>.IMG`` (16 x 128) in ``folder``; ids in ``summing2`` use summing 2."""
    folder.mkdir(parents=True, exist_ok=True)
    for pid in ids:
        path = folder / f"{pid}.IMG"
        if not path.exists():
            make_edr(path, lines=lines, line_samples=128, summing=2 if pid in summing2 else 1)
    return folder


@contextlib.contextmanager
def two_host_client(tmp_path: pathlib.Path, path: str, resources=({"stereo": 1}, {"stereo": 1})):
    """A Client of two nannies, "a" on 127.0.0.1 and "b" on 127.0.0.2, with their own local folders
    under ``tmp_path`` and the given worker resources; ``PATH`` is ``path`` and the project
    importable while it is open."""
    from distributed import Client, Nanny, Scheduler, SpecCluster

    spec = {name: {"cls": Nanny, "options": {"host": host, "nthreads": 2, "resources": dict(res),
                                             "local_directory": str(tmp_path / name)}}
            for name, host, res in zip("ab", ("127.0.0.1", "127.0.0.2"), resources)}
    old = os.environ["PATH"]
    os.environ["PATH"] = path
    sys.path.insert(0, ROOT)
    try:
        with SpecCluster(workers=spec, scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1",
                                                                               "dashboard_address": ":0"}},
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            client.wait_for_workers(2)
            yield client
    finally:
        os.environ["PATH"] = old
        sys.path.remove(ROOT)


def write_pairs(path: pathlib.Path, pairs, extra: str = "") -> pathlib.Path:
    path.write_text("".join(f"{a} {b}\n" for a, b in pairs) + extra)
    return path


def query(db: pathlib.Path, sql: str, params=()) -> list[tuple]:
    """Rows of a query on a tracking database (read-only)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql, params).fetchall()


def statuses(db: pathlib.Path, table: str = "steps") -> dict[str, str]:
    key = {"steps": "key", "pairs": "pair_id", "images": "product_id"}[table]
    return dict(query(db, f"SELECT {key}, status FROM {table}"))


def faulty_runner(call, *upstream, options, faults):
    """run_step with a stand-in fault (``CTXDASK_STANDIN_FAULT``) for the step keys in ``faults``."""
    if call.key in faults:
        call = dataclasses.replace(call, env={**call.env, "CTXDASK_STANDIN_FAULT": faults[call.key]})
    return run_step(call, *upstream, options=options)


@pytest.fixture(scope="module")
def cluster_client():
    """A 2-process LocalCluster (2 threads each, stereo=1) whose workers see the stand-ins."""
    from distributed import Client, LocalCluster

    old = os.environ["PATH"]
    os.environ["PATH"] = standin_path()  # workers inherit PATH when they spawn
    sys.path.insert(0, ROOT)  # ... and sys.path
    try:
        with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, resources={"stereo": 1},
                          dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:
            yield client
    finally:
        os.environ["PATH"] = old
        sys.path.remove(ROOT)
