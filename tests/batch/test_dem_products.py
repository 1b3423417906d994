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


def _file_names(value, key=None):
    """Every value of a JSON document under a key that names a file (``log``, ``path``, ``href``...)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _file_names(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _file_names(v, key)
    elif isinstance(value, str) and key in ("log", "path", "href", "dem", "source", "thumbnail"):
        yield value


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
        summary = run_batch(pairs, out, source=edr, client=cluster_client, recipe=recipe,
                            settings={"batch.progress": False})
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
    # break 9: delivered JSON names files relative to the pair folder, never by a worker's scratch path
    assert prov["inputs"]["mola"]["path"] == f"{good_id}-mola.csv" == qa["mola_points"]["source"]
    assert qa["dem"] == f"{good_id}-DEM.tif"
    for document in [*pair.glob("*.json"), *out.glob("images/*/*.json")]:
        for name in _file_names(json.loads(document.read_text())):
            assert not pathlib.PurePath(name).is_absolute() and (document.parent / name).is_file(), (document, name)
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


# ------------------------------------------------- pair_quality steps sharing one worker
def _dem(path: pathlib.Path, rows: int, cols: int, seed: int) -> pathlib.Path:
    """A float32 DEM in a Mars equirectangular CRS (heights of a tilted, noisy plane)."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    z = np.add.outer(np.arange(rows) * 0.4, np.arange(cols) * 0.3)
    z += np.random.default_rng(seed).normal(0.0, 2.0, z.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
                       crs="+proj=eqc +R=3396190 +units=m +no_defs", transform=from_origin(0.0, 0.0, 20.0, 20.0),
                       nodata=-3.4028226550889045e38, tiled=True, blockxsize=256, blockysize=256) as dst:
        dst.write(z.astype("float32"), 1)
    return path


def _pair_quality_task(pair_id: str, dem_key: str):
    from ctxdask.batch.model import StepTask

    params = {"inputs": {"dem": (dem_key, "dem")}, "datetime": "2007-01-02T03:04:05Z", "left": "L", "right": "R",
              "steps": {}, "deliver": []}
    return StepTask(key=f"pair_quality-{pair_id}", step="pair_quality", kind="pair_quality", scope="pair",
                    subject=pair_id, timeout=600.0, params=params, needs=(dem_key,))


def _upstream(dem: pathlib.Path, key: str):
    from ctxdask.batch.model import Outcome
    from ctxdask.tools.tasks import StepResult

    result = StepResult(key=key, step="point2dem", program="point2dem", workdir=str(dem.parent),
                        outputs={"dem": str(dem)}, log_path="", returncode=0, duration=0.0, started="", host="",
                        cached=False, fingerprint=key)
    return Outcome(key=key, step="point2dem", subject="L-R", status="done", result=result)


def _execute_later(delay: float, task, ctx, upstream):
    """:func:`ctxdask.batch.work.execute` after ``delay`` seconds (staggered starts on one worker)."""
    import time

    from ctxdask.batch.work import execute

    time.sleep(delay)
    return execute(task, ctx, upstream)


def test_concurrent_pair_quality_steps_on_one_worker_never_compute_on_the_cluster(tmp_path):
    """Break 10: the steps' reads stay in their own threads, whatever the other steps on the worker do.

    Three pair_quality steps of different sizes start staggered on one worker
    (three threads) of a two-worker cluster; every task the cluster ran is
    seen in its task stream, and only the three steps may be there.
    """
    import dask
    from distributed import Client, LocalCluster, get_task_stream

    from ctxdask.batch.model import BatchContext
    from ctxdask.tools.tasks import RunOptions

    scheduler_before = dask.config.get("scheduler", None)  # another test's client may be the default
    sizes = {"a": (500, 400), "b": (1000, 900), "c": (700, 600)}
    upstream = {name: _upstream(_dem(tmp_path / "in" / name / "out-DEM.tif", *shape, seed=i), f"point2dem-{name}")
                for i, (name, shape) in enumerate(sizes.items())}
    ctx = BatchContext(recipe=build_recipe(), source=None,
                       options=RunOptions.from_config(work_dir=str(tmp_path / "work")))
    with LocalCluster(n_workers=2, threads_per_worker=3, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        worker = sorted(client.scheduler_info()["workers"])[0]
        with get_task_stream(client) as stream:
            futures = [client.submit(_execute_later, 0.4 * i, _pair_quality_task(f"p{name}", up.key), ctx, up,
                                     key=f"step-{name}", workers=[worker], allow_other_workers=False, pure=False)
                       for i, (name, up) in enumerate(upstream.items())]
            outcomes = client.gather(futures)
    assert [o.status for o in outcomes] == ["done"] * 3, [o.error for o in outcomes]
    ran = sorted({t["key"] if isinstance(t["key"], str) else str(t["key"]) for t in stream.data})
    assert ran == ["step-a", "step-b", "step-c"]
    assert dask.config.get("scheduler", None) == scheduler_before  # the process-wide setting is as it was


def test_two_executions_of_one_pair_quality_step_never_write_one_path(tmp_path, cluster_client):
    """Break 11: each execution writes its own folder, so what it hashed is what is delivered.

    The same pair_quality step runs twice at once on one worker (a retry, a
    remake, a task run twice): every file each execution hashed still has
    that hash afterwards, and no path is shared.
    """
    from ctxdask.batch.model import BatchContext, sha256_file
    from ctxdask.tools.tasks import RunOptions

    up = _upstream(_dem(tmp_path / "in" / "out-DEM.tif", 700, 600, seed=3), "point2dem-L-R")
    ctx = BatchContext(recipe=build_recipe(), source=None,
                       options=RunOptions.from_config(work_dir=str(tmp_path / "work")))
    task = _pair_quality_task("L-R", up.key)
    worker = sorted(cluster_client.scheduler_info()["workers"])[0]
    futures = [cluster_client.submit(_execute_later, delay, task, ctx, up, key=f"twice-{i}", workers=[worker],
                                     allow_other_workers=False, pure=False) for i, delay in enumerate((0.0, 0.5))]
    first, second = cluster_client.gather(futures)
    assert first.ok and second.ok, (first.error, second.error)
    assert first.result.workdir != second.result.workdir
    assert not {f.path for f in first.files} & {f.path for f in second.files}
    for outcome in (first, second):
        assert {f.relpath for f in outcome.files} >= {"qa_metrics.json", "provenance.json", "L-R-DEM.tif",
                                                       "L-R-colour-relief.tif", "L-R-hillshade.tif"}
        for f in outcome.files:
            assert sha256_file(f.path) == f.sha256, f.relpath
    # the pixels are the same, so are the rasters, byte for byte
    tifs = {f.relpath: f.sha256 for f in first.files if f.relpath.endswith((".tif", ".png"))}
    assert tifs == {f.relpath: f.sha256 for f in second.files if f.relpath.endswith((".tif", ".png"))}
