"""Recipe steps as tasks: work dirs, idempotent reruns, failures that keep their logs."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import dask
import pvl
import pytest
import rasterio

from ctxdask.exceptions import ToolFailedError, ToolTimeoutError
from ctxdask.tools.recipe import build_recipe
from ctxdask.tools.tasks import MANIFEST, RunOptions, run_step, step_graph

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "standins"))
from _dem_testing import mola_shots, terrain  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def _run_all(calls, options):
    results = {}
    for call in calls:
        results[call.key] = run_step(call, *[results[k] for k in call.upstream], options=options)
    return results


@pytest.fixture
def chain(standins, edr_pair, tmp_path):
    """Rendered calls of the full chain (with pc_align and dem_geoid) for one pair."""
    lid, ledr, rid, redr = edr_pair
    mola, _, _ = mola_shots(tmp_path / "mola.csv", terrain.settings(), n=50)
    recipe = build_recipe(calibration="isis", pc_align=True, dem_geoid=True)
    left = recipe.image_calls(lid, str(ledr))
    right = recipe.image_calls(rid, str(redr))
    calls = left + right + recipe.pair_calls(left[-1], right[-1], mola=str(mola))
    options = RunOptions.from_config(work_dir=str(tmp_path / "work"), grace=1.0, poll_interval=0.05)
    return calls, options


def test_full_chain_with_standins_produces_real_formats(chain, tmp_path, monkeypatch):
    calls, options = chain
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CTXDASK_STANDIN_CALLS", str(log))
    results = _run_all(calls, options)
    last = {c.step: results[c.key] for c in calls}
    # the programs ran with the recipe's argv, in the step's own work dir
    ran = [json.loads(line) for line in log.read_text().splitlines()]
    # (the native pc_align step runs pc_align itself, with a data-driven --max-displacement, and
    # point2dem_aligned runs point2dem on the unaligned DEM's grid)
    native = {c.key: c for c in calls if c.kind == "native" and c.step != "calibrate"}
    by_native = [r for r in ran if any(r["cwd"].split("/")[-1].startswith(k + ".tmp-") for k in native)]
    direct = [r for r in ran if r not in by_native]
    programs = [c for c in calls if c.kind == "program"]
    assert [r["program"] for r in direct] == [c.argv[0] for c in programs]
    for r, call in zip(direct, programs):
        assert r["argv"] == list(call.argv[1:])
        assert os.path.basename(r["cwd"]).startswith(call.key + ".tmp-")
    assert [r["program"] for r in by_native] == ["pc_align", "point2dem"]
    # ISIS cubes: pvl-readable labels; spiceinit worked on a copy, not on mroctx2isis' output
    label = pvl.load(results[calls[3].key].outputs["cube"])
    assert label["IsisCube"]["Core"]["Pixels"]["Type"] == "Real"
    assert "Kernels" in label["IsisCube"] and "Radiometry" in label["IsisCube"]
    assert "InstrumentPointing" not in pvl.load(results[calls[0].key].outputs["cube"])["IsisCube"]["Kernels"]
    # DEM: a georeferenced float32 GeoTIFF with -DEM.tif name
    dem = last["point2dem"].outputs["dem"]
    assert dem.endswith("results/out-DEM.tif")
    with rasterio.open(dem) as src:
        assert src.dtypes[0] == "float32" and src.crs is not None
    assert last["dem_geoid"].outputs["dem"].endswith("results/out-align-DEM-adj.tif")
    # results are small, point into final work dirs, and carry the log
    for res in results.values():
        assert not res.cached and os.path.isdir(res.workdir) and os.path.isfile(res.log_path)
        assert all(p.startswith(res.workdir) and os.path.exists(p) for p in res.outputs.values())
        assert len(json.dumps(res.to_dict())) < 4000
    assert not list((tmp_path / "work").glob("*.tmp-*"))


def test_rerun_is_cached_and_a_change_reruns(chain, tmp_path, monkeypatch):
    calls, options = chain
    first = _run_all(calls[:4], options)
    again = _run_all(calls[:4], options)
    assert all(r.cached for r in again.values())
    assert [r.outputs for r in again.values()] == [r.outputs for r in first.values()]
    # a different recipe setting changes the fingerprint of ctxcal and everything after it
    lid = calls[0].names["id"]
    edr = calls[0].inputs["edr"].source
    changed = build_recipe(calibration="isis", spiceinit_web=True).image_calls(lid, edr)
    res = _run_all(changed, options)
    assert [r.cached for r in res.values()] == [True, False, False, False]
    # a damaged output is not trusted: the step runs again
    out = pathlib.Path(res[changed[2].key].outputs["cube"])
    out.write_bytes(out.read_bytes()[:1000])
    assert not _run_all(changed, options)[changed[2].key].cached


def test_partial_output_fails_the_step_and_keeps_the_log(chain, monkeypatch):
    calls, options = chain
    done = _run_all(calls[:2], options)
    monkeypatch.setenv("CTXDASK_STANDIN_FAULT", "partial")
    with pytest.raises(ToolFailedError, match="exited 0 but its cube output is ISIS cube is truncated") as info:
        run_step(calls[2], *done.values(), options=options)
    err = info.value
    failed = pathlib.Path(options.work_dir) / f"{calls[2].key}.failed"
    assert err.log_path == str(failed / "ctxcal.log") and os.path.isfile(err.log_path)
    assert "TEST STAND-IN" in err.log_tail
    assert not (pathlib.Path(options.work_dir) / calls[2].key).exists()


def test_timeout_through_run_step(chain, monkeypatch):
    calls, options = chain
    monkeypatch.setenv("CTXDASK_STANDIN_FAULT", "hang")
    opts = RunOptions.from_config(work_dir=options.work_dir, grace=0.5, poll_interval=0.05,
                                  timeouts={"mroctx2isis": 0.5})
    with pytest.raises(ToolTimeoutError) as info:
        run_step(calls[0], options=opts)
    assert info.value.duration < 0.5 + 0.5 + 0.5
    assert pathlib.Path(info.value.log_path).parent.name == f"{calls[0].key}.failed"


def test_native_step_runs_in_its_own_process(standins, edr_pair, tmp_path):
    lid, ledr, _, _ = edr_pair
    recipe = build_recipe(calibration="native", native_calibrate="native_helper:write_level1",
                          env={"PYTHONPATH": str(HERE)})
    calls = recipe.image_calls(lid, str(ledr), summing=2)
    results = _run_all(calls, RunOptions.from_config(work_dir=str(tmp_path / "w"), poll_interval=0.05))
    native = results[calls[0].key]
    assert '"even_odd": false' in pathlib.Path(native.log_path).read_text()
    label = pvl.load(results[calls[1].key].outputs["cube"])["IsisCube"]
    assert label["Radiometry"]["Native"] == "Yes" and "Kernels" in label


def test_step_graph_is_a_delayed_graph_with_the_recipe_keys(chain):
    calls, options = chain
    graph = step_graph(calls[:4], options)
    assert list(graph) == [c.key for c in calls[:4]]
    (result,) = dask.compute(graph[calls[3].key], scheduler="sync")
    assert result.key == calls[3].key and os.path.isfile(result.outputs["cube"])
    manifest = json.loads((pathlib.Path(result.workdir) / MANIFEST).read_text())
    assert manifest["argv"] == list(calls[3].argv)


def test_native_calibration_writes_a_level1_cube(tmp_path):
    """The default native step (ctxdask's own calibration) as the recipe runs it."""
    testing = pytest.importorskip("ctxdask.testing")
    lid = "B10_013341_1010_XN_79S172W"
    edr = testing.make_edr(tmp_path / f"{lid}.IMG", lines=64, product_id=lid)
    call = build_recipe(calibration="native", even_odd=True).image_calls(lid, str(edr))[0]
    assert call.callable == "ctxdask.tools.native:calibrate_to_cube"
    result = run_step(call, options=RunOptions.from_config(work_dir=str(tmp_path / "w")))
    core = pvl.load(result.outputs["cube"])["IsisCube"]
    assert core["Core"]["Pixels"]["Type"] == "Real"
    assert core["Core"]["Dimensions"]["Lines"] == 64
    assert "Radiometry" in core
