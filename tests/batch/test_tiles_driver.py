"""Tiled stereo inside the batch driver (``ctxdask batch`` with tools.asp.stereo-mode: tiled)."""

from __future__ import annotations

import json
import os
import sys

import dask
import pytest

from ctxdask.batch import run_batch
from ctxdask.cli import main

from .conftest import IDS, make_images, query, write_pairs
from .tiled import ROOT, local_cluster, tiled_path, tiled_recipe, write_inputs

P1, P2 = (IDS[0], IDS[1]), (IDS[1], IDS[2])


@pytest.fixture(scope="module")
def tiled_client():
    from distributed import Client

    old = os.environ["PATH"]
    os.environ["PATH"] = tiled_path()
    sys.path.insert(0, ROOT)
    try:
        with local_cluster(2) as cluster, Client(cluster) as client:
            yield client
    finally:
        os.environ["PATH"] = old
        sys.path.remove(ROOT)


def _pid(pair):
    return f"{pair[0]}-{pair[1]}"


def test_batch_runs_tiles_as_tasks_and_retries_only_failed_tiles(tmp_path, tiled_client, capsys):
    edr = make_images(tmp_path / "edr", IDS[:3])
    pairs = write_pairs(tmp_path / "pairs.txt", [P1, P2])
    dem = write_inputs(tmp_path / "in")["dem"]
    env = {"CTXDASK_STANDIN_MAP_SIZE": "64x32", "CTXDASK_STANDIN_TILE_COUNTS": str(tmp_path / "counts"),
           "CTXDASK_STANDIN_TILE_FAULTS": "3:hang@1,6:fail"}
    out = tmp_path / "out"
    db = out / "ctxdask-batch.sqlite"
    # no fallback parameter sets: tile 6's ASP error is final (test_tiles.py tries the fallbacks)
    with dask.config.set({"ctxdask.batch.min-tile-fraction": 0.8, "ctxdask.tools.grace-period": 1,
                          "ctxdask.tools.asp.tile-fallbacks": []}):
        summary = run_batch(pairs, out, source=edr, client=tiled_client,
                            recipe=tiled_recipe(env=env, lowres_dem=dem, timeouts={"stereo_tile": 10}),
                            settings={"batch.progress": False})
    assert summary.ok, summary
    assert summary.pairs == {"done": 2}
    for pair in (P1, P2):
        pid = _pid(pair)
        tiles = query(db, "SELECT tile_index, status, attempts FROM tiles WHERE pair_id = ? ORDER BY tile_index",
                      (pid,))
        assert [(i, s) for i, s, _ in tiles] == [(i, "failed" if i == 6 else "done") for i in range(8)]
        assert dict((i, n) for i, _, n in tiles)[3] == 2  # the mad tile: a timeout, then done
        steps = dict(query(db, "SELECT step, status FROM steps WHERE subject = ?", (pid,)))
        # bundle_adjust: the stand-ins' bundle_adjust is on PATH, so tools.asp.bundle-adjust auto is on
        assert steps == {s: "done" for s in ("bundle_adjust", "mapproject_grid", "mapproject_left", "mapproject_right",
                                             "stereo_parse", "stereo_stats",
                                             "dem_mosaic", "dem_mosaic_ortho", "dem_mosaic_error", "pair_quality")}
        # the QA step of a tiled pair reads the prep step's residuals too
        qa = json.loads((out / "pairs" / pid / "qa_metrics.json").read_text())["bundle_adjust"]
        assert qa["final"]["mean_px"] < qa["initial"]["mean_px"]
        dems = query(db, "SELECT path FROM products WHERE subject = ? AND path LIKE '%-DEM.tif' "
                         "AND path NOT LIKE '%/tiles/%'", (pid,))
        assert dems and all((out / p).is_file() or os.path.isfile(p) for p, in dems)  # the mosaic's COG
        assert query(db, "SELECT error FROM pairs WHERE pair_id = ?", (pid,)) == [(None,)]
    workers = query(db, "SELECT DISTINCT worker FROM tile_attempts")
    assert len(workers) == 2  # the tiles ran on both workers, the two pairs' tiles interleaved
    assert query(db, "SELECT hillshade IS NOT NULL FROM pair_quality") == [(1,), (1,)]
    assert main(["status", str(out)]) == 0
    assert f"{_pid(P1)}: DEM from 7/8 tiles (holes recorded)" in capsys.readouterr().out

    attempts = query(db, "SELECT count(*) FROM tile_attempts")[0][0]
    again = run_batch(pairs, out, source=edr, client=tiled_client, recipe=tiled_recipe(env=env, lowres_dem=dem),
                      settings={"batch.progress": False})
    assert again.planned == 0 and again.already_done == 2
    assert query(db, "SELECT count(*) FROM tile_attempts")[0][0] == attempts

    fixed_env = {**env, "CTXDASK_STANDIN_TILE_FAULTS": ""}
    fixed = run_batch(pairs, out, source=edr, client=tiled_client, recipe=tiled_recipe(env=fixed_env, lowres_dem=dem),
                      settings={"batch.progress": False, "batch.retry-failed": True})
    assert fixed.ok and fixed.planned == 2, fixed.failures
    for pair in (P1, P2):
        rows = query(db, "SELECT tile_index, status FROM tile_attempts WHERE pair_id = ? ORDER BY id", (_pid(pair),))
        per_tile = {}
        for i, status in rows:
            per_tile.setdefault(i, []).append(status)
        assert per_tile[6] == ["failed", "done"] and per_tile[3] == ["timeout", "done"]
        assert all(per_tile[i] == ["done"] for i in (0, 1, 2, 4, 5, 7))
        assert query(db, "SELECT count(*) FROM tiles WHERE pair_id = ? AND status = 'done'", (_pid(pair),)) == [(8,)]
