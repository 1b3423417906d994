"""A batch with pc_align against per-pair MOLA files: the delivered products, catalog and provenance."""

from __future__ import annotations

import json
import pathlib
import sys

import dask
import pystac
import pytest

import ctxdask
from ctxdask.batch import run_batch
from ctxdask.batch.dem_products import pair_product_inputs
from ctxdask.quality.cog import validate_cog
from ctxdask.quality.stac import validate
from ctxdask.tools.recipe import build_recipe

from .conftest import IDS, make_images, query, statuses, write_pairs

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "standins"))
from _dem_testing import mola_shots, terrain  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

GOOD, NO_MOLA = (IDS[0], IDS[1]), (IDS[1], IDS[3])


def test_pair_product_inputs_from_the_recipe():
    left, right = IDS[0], IDS[1]
    pid = f"{left}-{right}"
    recipe = build_recipe(pc_align=True, dem_geoid=True)
    calls = recipe.pair_calls("/l.cub", "/r.cub", left_id=left, right_id=right, mola="/m.csv")
    inputs = pair_product_inputs(calls)
    assert inputs["dem"] == (f"point2dem_aligned-{pid}", "dem") and inputs["error"][0] == f"point2dem_aligned-{pid}"
    assert inputs["dem_before"] == (f"point2dem-{pid}", "dem") and inputs["dem_areoid"] == (f"dem_geoid-{pid}", "dem")
    assert inputs["runs"] == (f"pc_align-{pid}", "runs") and inputs["mola"] == (f"pc_align-{pid}", "points")
    plain = pair_product_inputs(build_recipe().pair_calls("/l.cub", "/r.cub", left_id=left, right_id=right))
    assert plain == {"dem": (f"point2dem-{pid}", "dem"), "ortho": (f"point2dem-{pid}", "ortho"),
                     "error": (f"point2dem-{pid}", "error")}


def test_aligned_batch_delivers_cogs_qa_provenance_and_a_catalog(tmp_path, cluster_client):
    spec = dict(terrain.DEFAULT, offset=[40.0, 30.0, -12.0])
    edr = make_images(tmp_path / "edr", IDS)
    pairs = write_pairs(tmp_path / "pairs.txt", [GOOD, NO_MOLA])
    folder = tmp_path / "mola"
    folder.mkdir()
    good_id = f"{GOOD[0]}-{GOOD[1]}"
    mola_shots(folder / f"{good_id}.csv", spec, n=200)
    recipe = build_recipe(pc_align=True, dem_geoid=True, env={"CTXDASK_STANDIN_SURFACE": json.dumps(spec)})
    out = tmp_path / "out"
    with dask.config.set({"ctxdask.tools.asp.mola-points": str(folder)}):
        summary = run_batch(pairs, out, edr_dir=edr, client=cluster_client, recipe=recipe, progress=False)
    db = out / "ctxdask-batch.sqlite"
    bad_id = f"{NO_MOLA[0]}-{NO_MOLA[1]}"
    assert statuses(db, "pairs") == {good_id: "done", bad_id: "failed"}
    (error,), = query(db, "SELECT error FROM steps WHERE key = ?", (f"pc_align-{bad_id}",))
    assert f"{bad_id}.csv" in error and "does not exist" in error
    pair = out / "pairs" / good_id
    for tif in pair.glob("*.tif"):
        assert validate_cog(tif)[0], tif
    assert {p.name for p in pair.glob("*.tif")} == {f"{good_id}-{s}.tif" for s in (
        "DEM", "DEM-areoid", "DRG", "IntersectionErr", "hillshade", "colour-relief")}
    qa = json.loads((pair / "qa_metrics.json").read_text())
    assert qa["before_alignment"]["count"] == qa["after_alignment"]["count"] > 150
    assert abs(qa["after_alignment"]["median"]) < 0.1 < abs(qa["before_alignment"]["median"])
    assert qa["pc_align"]["translation_ned_m"] == pytest.approx([30.0, 40.0, 12.0], abs=1e-3)
    prov = json.loads((pair / "provenance.json").read_text())
    runs = [s for s in prov["steps"] if s["program"] == "pc_align"]
    assert runs and all(r["argv"][0] == "pc_align" and r["exit_code"] == 0 for r in runs)
    assert all(s["started"] and s["argv"] for s in prov["steps"])
    assert prov["inputs"]["mola"]["path"].endswith("results/out-align-mola.csv")
    catalog = pystac.Catalog.from_file(str(out / "catalog.json"))
    items = list(catalog.get_items(recursive=True))
    assert [i.id for i in items] == [good_id]
    validate(items[0])
    ds = ctxdask.open_dem(items[0])
    assert set(ds.data_vars) == {"dem", "dem_areoid", "ortho", "error"}
    assert float(ds.error.max()) <= 4.2
    # every delivered file is recorded with its final size and checksum
    for path, size in query(db, "SELECT path, size FROM products"):
        assert pathlib.Path(path).stat().st_size == size, path
    assert summary.pairs == {"done": 1, "failed": 1}
