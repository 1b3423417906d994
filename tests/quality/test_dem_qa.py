"""DEM QA against MOLA, checked against the stand-ins' known terrain, offsets, tilt and holes."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from ctxdask.quality.alignment import parse_pc_align_log, read_mola_csv
from ctxdask.quality.dem_qa import holes, measure_dem, sample_dem, write_residuals

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "standins"))
from _dem_testing import mola_shots, placeholder_cloud, terrain, use_dem_standins  # noqa: E402

from ctxdask.tools.align import align_to_mola  # noqa: E402

OFFSET = [60.0, -45.0, 15.0]


@pytest.fixture
def dem_standins(monkeypatch):
    return use_dem_standins(monkeypatch)


def _products(tmp_path, monkeypatch, **spec):
    """Unaligned DEM, pc_align (native step), aligned DEM and error image of a stand-in terrain."""
    spec = use_dem_standins(monkeypatch)(**spec)
    monkeypatch.chdir(tmp_path)
    cloud, texture = placeholder_cloud(tmp_path / "results")
    subprocess.run(["point2dem", "-r", "mars", "--errorimage", str(cloud)], check=True, capture_output=True)
    mola, px, py = mola_shots(tmp_path / "mola.csv", spec, n=600)
    runs = align_to_mola(str(cloud), "results/out-align-trans_reference.tif", mola=str(mola),
                         dem="results/out-DEM.tif", runs="runs.json")
    subprocess.run(["point2dem", "-r", "mars", "--errorimage", "results/out-align-trans_reference.tif",
                    "-o", "results/out-align"], check=True, capture_output=True)
    return spec, mola, px, py, runs


def _stats(d):
    med = np.median(d)
    return {"count": d.size, "min": d.min(), "max": d.max(), "mean": d.mean(), "median": med, "std": d.std(),
            "nmad": 1.4826 * np.median(np.abs(d - med))}


def test_metrics_equal_the_known_terrain_and_offsets(tmp_path, monkeypatch):
    spec, mola, px, py, runs = _products(tmp_path, monkeypatch, offset=OFFSET)
    points = read_mola_csv(mola, "1:lon 2:lat 3:radius_km")
    reports = [parse_pc_align_log(open(r["log"]).read()) for r in runs]
    qa, arrays = measure_dem("results/out-align-DEM.tif", points, dem_before="results/out-DEM.tif",
                             error="results/out-align-IntersectionErr.tif", pc_align=reports,
                             max_displacements=[r["max_displacement"] for r in runs], chunks={"x": 64, "y": 64})
    m = qa.metrics
    truth = terrain.truth(px, py)
    # independent: the analytic DEM surfaces at the shots minus the shots' heights
    before = terrain.dem_heights(px, py, spec) - truth
    for key, value in _stats(before).items():
        # bilinear interpolation of a smooth 20 m grid and float32 heights: centimetres
        assert m["before_alignment"][key] == pytest.approx(value, abs=0.15), key
    after = m["after_alignment"]
    assert after["count"] == 600
    assert abs(after["median"]) < 0.1 and after["nmad"] < 0.1 and after["std"] < 0.2
    assert m["pc_align"]["runs"] == 2 and m["pc_align"]["displacement_warnings"] == [True, False]
    assert m["pc_align"]["translation_ned_m"] == pytest.approx([OFFSET[1], OFFSET[0], -OFFSET[2]], abs=1e-3)
    # intersection error: 0.2 + 4 * (col + 0.5) / cols over every row: percentiles of that ramp
    err = terrain.error_image(spec).ravel()
    for q in (50, 90, 99):
        assert m["intersection_error"][f"p{q}"] == pytest.approx(np.percentile(err, q), rel=0.01)
    assert m["valid_fraction"] == 1.0 and m["holes"]["count"] == 0
    assert m["tilt"]["slope_m_per_km"] < 0.05
    assert qa.grade == "pass", qa.grade_reasons
    written = json.loads(qa.write(tmp_path / "qa_metrics.json").read_text())
    assert written["grade"] == "pass" and written["after_alignment"]["count"] == 600
    table = np.genfromtxt(write_residuals(arrays, tmp_path / "residuals.csv"), delimiter=",", names=True)
    assert table.size == 600
    assert np.allclose(table["ctx_minus_mola_before_m"], before, atol=0.15)


def test_tilted_surface_is_flagged(tmp_path, monkeypatch):
    tilt = (3.0, -4.0)  # m/km east, north: 5 m/km rising towards the south-east
    _, mola, px, py, _ = _products(tmp_path, monkeypatch, offset=OFFSET, tilt=list(tilt))
    qa, _ = measure_dem("results/out-align-DEM.tif", read_mola_csv(mola, "1:lon 2:lat 3:radius_km"))
    t = qa.metrics["tilt"]
    assert t["slope_m_per_km"] == pytest.approx(5.0, rel=0.01)
    assert t["east_m_per_km"] == pytest.approx(3.0, rel=0.01) and t["north_m_per_km"] == pytest.approx(-4.0, rel=0.01)
    assert qa.grade == "fail" and any(r.startswith("tilt 5") for r in qa.grade_reasons)


def test_tile_shaped_holes_are_flagged_and_round_ones_are_not(tmp_path, monkeypatch):
    spec = dict(shape=[400, 500], holes=[[64, 128, 128, 128], [256, 320, 96, 100]],
                round_holes=[[300, 100, 30]])
    _, mola, *_ = _products(tmp_path, monkeypatch, **spec)
    qa, _ = measure_dem("results/out-align-DEM.tif", read_mola_csv(mola, "1:lon 2:lat 3:radius_km"))
    h = qa.metrics["holes"]
    assert h["count"] == 3 and h["tile_shaped"] == 2
    tiles = sorted((x["row"], x["col"], x["rows"], x["cols"]) for x in h["largest"] if x["tile_shaped"])
    assert tiles == [(64, 128, 128, 128), (256, 320, 96, 100)]
    expected_valid = 1 - terrain.hole_mask(terrain.settings()).mean()
    assert qa.metrics["valid_fraction"] == pytest.approx(expected_valid)
    assert qa.grade in ("warn", "fail") and any("tile_holes" in r for r in qa.grade_reasons)


def test_holes_on_a_reduced_map_and_edges():
    mask = np.zeros((40, 40), bool)
    mask[:, :3] = True  # the footprint's ragged edge: not a hole
    mask[10:20, 10:20] = True
    assert holes(mask, 8)["count"] == 1 and holes(mask, 8)["tile_shaped"] == 1
    assert holes(mask, 1, min_tile_pixels=64)["tile_shaped"] == 0  # 10 px: too small for a tile


def test_sampling_across_block_edges_is_bilinear(tmp_path, monkeypatch):
    spec = use_dem_standins(monkeypatch)()
    monkeypatch.chdir(tmp_path)
    cloud, _ = placeholder_cloud(tmp_path / "results")
    subprocess.run(["point2dem", "-r", "mars", str(cloud)], check=True, capture_output=True)
    from ctxdask.quality.dem import open_dem

    dem = open_dem("results/out-DEM.tif", chunks={"x": 32, "y": 32})
    x, y, _ = terrain.grid(spec)
    # points exactly on block edges and between pixel centres
    px = np.array([x[31] + 10.0, x[63] + 7.0, x[100], x[0] - 30.0])
    py = np.array([y[31] - 10.0, y[32] - 3.0, y[95] - 10.0, y[5]])
    got = sample_dem(dem, px, py)
    assert np.allclose(got[:3], terrain.truth(px[:3], py[:3]), atol=0.2)
    assert np.isnan(got[3])  # outside the DEM
