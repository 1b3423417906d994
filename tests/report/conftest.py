"""A small real batch (stand-in ISIS/ASP programs) with QA results, for the report tests.

The batch has one good pair, one whose point2dem crashes and one with a
truncated EDR, so the report has failures, logs and DEMs. The quality tables
are written here in the schema the batch is adopting (``quality``,
``pair_quality``), from real :mod:`ctxdask.quality` results.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import pathlib
import sqlite3

import dask
import pytest

from ctxdask.testing import make_edr

from ..batch.conftest import IDS, faulty_runner, write_pairs
from ..tools.conftest import standin_path

BAD = "B11_013842_1010_XN_79S172W"  # truncated: its validation fails
GOOD_PAIR = (IDS[0], IDS[1])
CRASH_PAIR = (IDS[2], IDS[3])  # point2dem crashes
BAD_PAIR = (IDS[3], BAD)
#: image id -> make_edr defects
DEFECTS = {IDS[2]: {"lost_lines": range(40, 52)}, IDS[3]: {"saturated_fraction": 0.03}}

#: the good pair's bundle adjustment residuals (ctxdask.quality.bundle.bundle_adjust_summary, cut short)
BUNDLE_ADJUST = {"initial": {"mean_px": 2.5, "residuals": 40}, "final": {"mean_px": 0.31, "residuals": 40},
                 "improvement": 0.124}

QUALITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS quality (product_id TEXT PRIMARY KEY, grade TEXT, reasons TEXT, metrics TEXT,
                                    thumbnail TEXT, updated TEXT);
CREATE TABLE IF NOT EXISTS pair_quality (pair_id TEXT PRIMARY KEY, statistics TEXT, stac TEXT, hillshade TEXT,
                                         colour_relief TEXT, ortho_thumbnail TEXT, updated TEXT);
"""


def pair_id(pair) -> str:
    return f"{pair[0]}-{pair[1]}"


def make_edrs(folder: pathlib.Path) -> pathlib.Path:
    """Small EDRs (192 x 256) with known defects, and one truncated one."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, pid in enumerate(IDS):
        make_edr(folder / f"{pid}.IMG", lines=192, line_samples=256, seed=seed, **DEFECTS.get(pid, {}))
    bad = make_edr(folder / f"{BAD}.IMG", lines=64, line_samples=256, seed=9)
    bad.write_bytes(bad.read_bytes()[:-3000])
    return folder


def add_quality(out: pathlib.Path, edr: pathlib.Path) -> None:
    """Measure every readable image and every delivered DEM; store the rows like the batch will."""
    import ctxdask
    from ctxdask import quality
    from ctxdask.tracking import now

    conn = sqlite3.connect(out / "ctxdask-batch.sqlite")
    with conn:
        conn.executescript(QUALITY_SCHEMA)
        for pid in IDS:
            qa = quality.measure(ctxdask.open_edr(edr / f"{pid}.IMG"))
            metrics = quality.QualityMetrics.from_dataset(qa)
            grade = metrics.grade()
            thumb = quality.write_png(qa.thumbnail, out / "images" / pid / f"{pid}_thumb.png")
            conn.execute("INSERT OR REPLACE INTO quality VALUES (?, ?, ?, ?, ?, ?)",
                         (pid, grade.status, json.dumps(list(grade.reasons)), json.dumps(metrics.to_dict()),
                          thumb.relative_to(out).as_posix(), now()))
        results = out / "pairs" / pair_id(GOOD_PAIR) / "results"
        made = quality.pair_products(results.parent / "quality", dem=results / "out-DEM.tif",
                                     ortho=results / "out-DRG.tif", pair_id=pair_id(GOOD_PAIR),
                                     datetime="2009-06-01T00:38:16.057", bundle_adjust=BUNDLE_ADJUST)
        rel = {k: pathlib.Path(v).relative_to(out).as_posix() for k, v in made["files"].items()}
        conn.execute("INSERT OR REPLACE INTO pair_quality (pair_id, statistics, stac, hillshade, colour_relief, "
                     "ortho_thumbnail, updated, qa) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (made["id"], json.dumps({**made["statistics"].to_dict(), "relief_limits": made["relief_limits"]}),
                      rel["stac"], rel["thumbnail"],
                      rel["relief_thumbnail"], rel["ortho_thumbnail"], now(), json.dumps(made["qa"].to_dict())))
    conn.close()


@pytest.fixture(scope="session")
def batch_out(tmp_path_factory) -> pathlib.Path:
    """Output folder of a 3-pair stand-in batch (1 done, 1 crashed, 1 invalid EDR) with QA rows.

    Tests must not change it: copy it first (:func:`copy_batch`).
    """
    from distributed import Client, LocalCluster

    from ctxdask.batch import run_batch
    from ctxdask.tools.recipe import build_recipe

    root = tmp_path_factory.mktemp("report-batch")
    edr = make_edrs(root / "edr")
    pairs = write_pairs(root / "pairs.txt", [GOOD_PAIR, CRASH_PAIR, BAD_PAIR], extra="not a pair\n")
    out = root / "out"
    old = os.environ["PATH"]
    os.environ["PATH"] = standin_path()
    try:
        # threads, not processes: the stand-ins are separate programs anyway, and it starts fast;
        # point2dem's raw rasters come home too (add_quality measures them like the batch does)
        with dask.config.set({"ctxdask.batch.deliver": ["point2dem"]}), LocalCluster(n_workers=1, threads_per_worker=2, processes=False, resources={"stereo": 1},
                          dashboard_address=":0", silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            summary = run_batch(pairs, out, source=edr, client=client, recipe=build_recipe(calibration="isis"),
                                runner=functools.partial(faulty_runner,
                                                         faults={f"point2dem-{pair_id(CRASH_PAIR)}": "crash"}),
                                settings={"batch.progress": False, "batch.scratch": str(root / "scratch")})
    finally:
        os.environ["PATH"] = old
    assert summary.pairs == {"done": 1, "failed": 2}, summary
    add_quality(out, edr)
    return out
