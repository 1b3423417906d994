"""The point2dem, pc_align and dem_geoid stand-ins keep ASP's contract (src/asp/Tools/*.cc at 55bf46022)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import rasterio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _dem_testing import mola_shots, placeholder_cloud, terrain, use_dem_standins  # noqa: E402

OFFSET = [60.0, -40.0, 15.0]


@pytest.fixture
def work(monkeypatch, tmp_path):
    """A folder with a stereo cloud and texture, MOLA shots, and the stand-ins first on PATH."""
    spec = use_dem_standins(monkeypatch)(offset=OFFSET)
    monkeypatch.chdir(tmp_path)
    cloud, texture = placeholder_cloud(tmp_path / "results")
    mola, _, _ = mola_shots(tmp_path / "mola.csv", spec, n=200)
    return spec, cloud, texture, mola


def run(*argv, cwd=None):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd)


def pc_align(reference, mola, prefix, *extra):
    return run("pc_align", "--max-displacement", "200", "--datum", "D_MARS", "--csv-format",
               "1:lon 2:lat 3:radius_km", "--save-inv-transformed-reference-points", *extra, reference, mola,
               "-o", prefix)


@pytest.mark.parametrize("program, argv, option", [
    ("point2dem", ["--bogus", "results/out-PC.tif"], "--bogus"),
    ("pc_align", ["--max-displacement", "5", "--save-inv-transformed-ref", "--frobnicate", "a", "b", "-o", "x"],
     "--frobnicate"),
    # dem_geoid spells it with an underscore (dem_geoid.cc:205), not as its documentation does
    ("dem_geoid", ["--nodata-value", "-9999", "results/out-DEM.tif"], "--nodata-value"),
])
def test_an_unknown_option_is_boost_s_error_and_exit_1(work, program, argv, option):
    done = run(program, *argv)
    # check_command_line (AspProgramOptions.cc:107-110) through ASP_STANDARD_CATCHES (Macros.h:26-28)
    assert done.returncode == 1
    assert f"ERROR: Error parsing input:\nunrecognised option '{option}'" in done.stdout
    assert f"Usage: {program} " in done.stdout


def test_long_options_may_be_abbreviated_but_not_ambiguously(work):
    # unix_style allows guessing a unique prefix
    assert run("point2dem", "-r", "mars", "--nodata", "-9999", "results/out-PC.tif").returncode == 0
    with rasterio.open("results/out-DEM.tif") as src:
        assert src.nodata == -9999
    done = run("point2dem", "-r", "mars", "--ortho", "results/out-PC.tif")
    assert done.returncode == 1 and "option '--ortho' is ambiguous and matches '--orthographic'," in done.stdout
    assert run("dem_geoid", "--nodata_value", "5", "--help").returncode == 0


def test_dem_geoid_without_o_writes_the_stem_in_the_current_folder(work, tmp_path):
    assert run("point2dem", "-r", "mars", "results/out-PC.tif").returncode == 0
    done = run("dem_geoid", "--geoid", "MOLA", "results/out-DEM.tif")
    assert done.returncode == 0, done.stdout
    # dem_geoid.cc:248-249 (the stem, no folder) and :489
    assert (tmp_path / "out-DEM-adj.tif").is_file() and not (tmp_path / "results/out-DEM-adj.tif").exists()
    assert "Writing adjusted DEM: out-DEM-adj.tif" in done.stdout
    assert run("dem_geoid", "--geoid", "mola", "results/out-DEM.tif", "-o", "results/out-DEM").returncode == 0
    with rasterio.open("results/out-DEM.tif") as dem, rasterio.open("results/out-DEM-adj.tif") as adj:
        assert adj.transform == dem.transform and adj.crs == dem.crs and adj.nodata == dem.nodata
        lon, lat = (np.degrees(v / terrain.R_MARS) for v in dem.xy(5, 7))
        assert dem.read(1)[5, 7] - adj.read(1)[5, 7] == pytest.approx(terrain.areoid(lon, lat), abs=0.01)
    wrong = run("dem_geoid", "--geoid", "EGM96", "results/out-DEM.tif")
    assert wrong.returncode == 1 and "must be either empty (auto-detected) or MOLA. Got instead: egm96." in wrong.stdout
    missing = run("dem_geoid")
    assert missing.returncode == 1 and "Requires <dem> in order to proceed." in missing.stdout


def test_automatic_spacing_is_four_times_the_point_spacing(work):
    spec = work[0]
    # a stereo cloud of the terrain has points spacing / 4 apart: the automatic grid is `spacing`
    assert run("point2dem", "-r", "mars", "results/out-PC.tif").returncode == 0
    x, y, transform = terrain.grid(spec)
    with rasterio.open("results/out-DEM.tif") as src:
        assert src.transform == transform and src.shape == (len(y), len(x)) and src.nodata == -1e6
    # a cloud made from that DEM has the DEM's spacing: four times coarser without --tr (point2dem.cc:202)
    assert pc_align("results/out-DEM.tif", "mola.csv", "results/dem").returncode == 0
    assert run("point2dem", "-r", "mars", "results/dem-trans_reference.tif", "-o", "results/auto").returncode == 0
    with rasterio.open("results/auto-DEM.tif") as src:
        assert src.res[0] == pytest.approx(4 * spec["spacing"], rel=0.01)
    # with --tr and --t_srs: grid nodes at integer multiples of --tr (OrthoRasterizer.cc:634-645)
    with rasterio.open("results/out-DEM.tif") as src:
        wkt = src.crs.to_wkt()
    assert run("point2dem", "-r", "mars", "--tr", "20", "--t_srs", wkt, "results/dem-trans_reference.tif",
               "-o", "results/grid").returncode == 0
    with rasterio.open("results/grid-DEM.tif") as src:
        assert src.res == (20.0, 20.0) and src.crs.to_wkt() == wkt
        node = src.transform * (0.5, 0.5)
        assert np.allclose(np.remainder(node, 20.0), 0.0, atol=1e-6)


def test_a_3_band_cloud_writes_no_error_image_and_exits_0(work):
    assert run("point2dem", "-r", "mars", "results/out-PC.tif").returncode == 0
    assert pc_align("results/out-DEM.tif", "mola.csv", "results/dem").returncode == 0
    with rasterio.open("results/dem-trans_reference.tif") as src, rasterio.open("results/out-DEM.tif") as dem:
        # a DEM reference gives a 3-band cloud with the DEM's georeference, no nodata (pc_align_utils.cc:462-486)
        assert src.count == 3 and src.crs == dem.crs and src.transform == dem.transform and src.nodata is None
    done = run("point2dem", "-r", "mars", "--errorimage", "results/dem-trans_reference.tif", "-o", "results/a")
    assert done.returncode == 0
    assert "must be 4 or 6 to be able to process the intersection error" in done.stdout
    assert os.path.isfile("results/a-DEM.tif") and not os.path.exists("results/a-IntersectionErr.tif")
    # a stereo cloud keeps its 4 bands through pc_align, and its error
    assert pc_align("results/out-PC.tif", "mola.csv", "results/pc").returncode == 0
    with rasterio.open("results/pc-trans_reference.tif") as src:
        assert src.count == 4 and src.shape == (8, 8)
    assert run("point2dem", "-r", "mars", "--errorimage", "results/pc-trans_reference.tif",
               "-o", "results/b").returncode == 0
    assert os.path.isfile("results/b-IntersectionErr.tif")


def test_pc_align_outputs_and_checks(work):
    assert run("point2dem", "-r", "mars", "results/out-PC.tif").returncode == 0
    done = pc_align("results/out-DEM.tif", "mola.csv", "results/al")
    assert done.returncode == 0
    names = {p.name for p in pathlib.Path("results").glob("al-*")}
    assert names == {f"al-{n}" for n in ("transform.txt", "inverse-transform.txt", "beg_errors.csv",
                                          "end_errors.csv", "iterationInfo.csv", "trans_reference.tif")}
    assert pathlib.Path("results/al-end_errors.csv").read_text().startswith("# lon,lat,radius_km,error (meters)\n")
    no_max = run("pc_align", "--datum", "D_MARS", "results/out-DEM.tif", "mola.csv", "-o", "results/x")
    assert no_max.returncode == 1
    assert "The max-displacement option was not set. Use -1 if it is desired not to use it." in no_max.stdout
    no_prefix = run("pc_align", "--max-displacement", "5", "results/out-DEM.tif", "mola.csv")
    assert no_prefix.returncode == 1 and "Missing output prefix." in no_prefix.stdout


def test_textures_follow_the_clouds_with_their_dimensions(work, tmp_path):
    done = run("point2dem", "-r", "mars", "--orthoimage", "results/out-PC.tif", "results/out-L.tif")
    assert done.returncode == 0 and os.path.isfile("results/out-DRG.tif")
    with rasterio.open("results/out-DRG.tif") as drg, rasterio.open("results/out-DEM.tif") as dem:
        assert drg.transform == dem.transform and drg.shape == dem.shape
    small = tmp_path / "small.tif"
    with rasterio.open(small, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32") as dst:
        dst.write(np.zeros((1, 4, 4), "float32"))
    bad = run("point2dem", "-r", "mars", "--orthoimage", "results/out-PC.tif", small)
    assert bad.returncode == 1 and "do not have the same dimensions." in bad.stdout
    alone = run("point2dem", "-r", "mars", "results/out-PC.tif", "results/out-L.tif")
    assert alone.returncode == 1 and "No ortho image was requested, yet texture files were passed" in alone.stdout
    gone = run("point2dem", "-r", "mars", "results/nope-PC.tif")
    assert gone.returncode == 1 and "File does not exist: results/nope-PC.tif." in gone.stdout


@pytest.mark.parametrize("program", ["point2dem", "pc_align", "dem_geoid"])
def test_fault_hooks(work, monkeypatch, program):
    assert run("point2dem", "-r", "mars", "results/out-PC.tif").returncode == 0
    argv = {"point2dem": ["-r", "mars", "results/out-PC.tif", "-o", "results/f"],
            "pc_align": ["--max-displacement", "200", "--datum", "D_MARS", "--csv-format", "1:lon 2:lat 3:radius_km",
                         "results/out-DEM.tif", "mola.csv", "-o", "results/f"],
            "dem_geoid": ["results/out-DEM.tif", "-o", "results/f"]}[program]
    first = {"point2dem": "results/f-DEM.tif", "pc_align": "results/f-transform.txt",
             "dem_geoid": "results/f-adj.tif"}[program]
    monkeypatch.setenv("CTXDASK_STANDIN_FAULT", "fail")
    assert run(program, *argv).returncode == 1 and not os.path.exists(first)
    monkeypatch.setenv("CTXDASK_STANDIN_FAULT", "partial")
    assert run(program, *argv).returncode == 0
    whole = {"point2dem": "results/out-DEM.tif"}.get(program)
    assert os.path.getsize(first) > 0
    if whole:
        assert os.path.getsize(first) < os.path.getsize(whole)
