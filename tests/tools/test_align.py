"""pc_align as the USGS runs it: max displacement from the data, a rerun when pc_align warns."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from ctxdask.exceptions import ToolFailedError
from ctxdask.quality import QualityError
from ctxdask.quality.alignment import parse_pc_align_log, read_mola_csv

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "standins"))
from _dem_testing import mola_shots, placeholder_cloud, terrain, use_dem_standins  # noqa: E402

from ctxdask.tools.align import align_to_mola  # noqa: E402


@pytest.fixture
def dem_standins(monkeypatch):
    return use_dem_standins(monkeypatch)


@pytest.fixture
def stage(dem_standins, tmp_path, monkeypatch):
    """A work dir with the unaligned DEM of a terrain offset by (60, -45, 15) m and MOLA shots."""
    spec = dem_standins(offset=[60.0, -45.0, 15.0])
    monkeypatch.chdir(tmp_path)
    cloud, texture = placeholder_cloud(tmp_path / "results")
    subprocess.run(["point2dem", "-r", "mars", str(cloud)], check=True, capture_output=True)
    mola, _, _ = mola_shots(tmp_path / "mola.csv", spec)
    return spec, cloud, mola


def _align(tmp_path, cloud, mola, **kw):
    return align_to_mola(str(cloud), str(tmp_path / "results/out-align-trans_reference.tif"), mola=str(mola),
                         dem=str(tmp_path / "results/out-DEM.tif"), runs=str(tmp_path / "runs.json"), **kw)


def test_first_max_displacement_is_three_times_the_median_offset(stage, tmp_path):
    spec, cloud, mola = stage
    runs = _align(tmp_path, cloud, mola)
    pts = read_mola_csv(mola, "1:lon 2:lat 3:radius_km")
    x, y = np.radians(pts.lon) * terrain.R_MARS, np.radians(pts.lat) * terrain.R_MARS
    expected = 3 * np.median(np.abs(terrain.dem_heights(x, y, spec) - pts.height))
    assert runs[0]["max_displacement"] == pytest.approx(expected, rel=0.02)
    # the shift is ~76 m in 3-D, more than 3x the median vertical offset here: pc_align warns,
    # and the rerun uses the observed displacement (with a margin) and does not warn
    observed = float(np.linalg.norm(spec["offset"]))
    assert expected < observed
    assert [r["displacement_warning"] for r in runs] == [True, False]
    assert runs[1]["max_displacement"] == pytest.approx(observed * 1.2, rel=1e-4)
    assert runs[1]["argv"][:3] == ["pc_align", "--max-displacement", f"{observed * 1.2:.6g}"]
    assert all(r["exit_code"] == 0 and os.path.isfile(r["log"]) for r in runs)
    assert json.loads((tmp_path / "runs.json").read_text()) == runs
    log = parse_pc_align_log(open(runs[-1]["log"]).read())
    # pc_align moves MOLA (the source) onto the CTX cloud: by +offset, in North-East-Down
    assert log.translation_ned == pytest.approx((-45.0, 60.0, -15.0), abs=1e-3)


def test_no_rerun_without_warning_and_forced_warning(stage, tmp_path, dem_standins):
    spec, cloud, mola = stage
    runs = _align(tmp_path, cloud, mola, max_displacement=500.0)
    assert [r["displacement_warning"] for r in runs] == [False]
    # the stand-in warns on request (it reports a larger observed displacement than 500 m)
    dem_standins(offset=[60.0, -45.0, 15.0], observed_displacement=900.0)
    runs = _align(tmp_path, cloud, mola, max_displacement=500.0, reruns=1)
    assert [r["displacement_warning"] for r in runs] == [True, False]
    assert runs[1]["max_displacement"] == pytest.approx(1080.0)


def test_failing_pc_align_is_recorded_and_raised(stage, tmp_path, monkeypatch):
    _, cloud, mola = stage
    monkeypatch.setenv("CTXDASK_STANDIN_FAULT", "fail")
    with pytest.raises(ToolFailedError, match="pc_align exited with status 1"):
        _align(tmp_path, cloud, mola)
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert runs[0]["exit_code"] == 1


def test_mola_off_the_dem_is_a_clear_error(stage, tmp_path):
    _, cloud, _ = stage
    far = tmp_path / "far.csv"
    far.write_text("120.0,-40.0,3390.0\n121.0,-41.0,3390.1\n")
    with pytest.raises(QualityError, match="no MOLA point falls on a valid DEM pixel"):
        _align(tmp_path, cloud, far)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,five,6\n")
    with pytest.raises(QualityError, match="line 2"):
        _align(tmp_path, cloud, bad)
