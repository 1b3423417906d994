"""The recipe's DEM end (point2dem, pc_align, point2dem_aligned, dem_geoid) run through ASP-faithful stand-ins.

Issue 19, break 1: ``dem_geoid`` without ``-o`` writes ``./<stem>-adj.tif`` (dem_geoid.cc:248-249), so
the step's output was missing. Break 2: in tiled mode pc_align's cloud of the mosaic DEM has 3 bands
(pc_align_utils.cc:462-486), so ``point2dem --errorimage`` wrote no error image (PointToDem2.cc:336-341);
without ``--tr`` the aligned DEM was 4x coarser than the mosaic (point2dem.cc:202); and the delivered
orthoimage was the unaligned mosaic's.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from ctxdask.batch.dem_products import pair_product_inputs
from ctxdask.settings import current
from ctxdask.tools.recipe import TILED_PREP_STEPS, Ref, StagedInput, build_recipe
from ctxdask.tools.tasks import RunOptions, run_step

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "standins"))
from _dem_testing import mola_shots, placeholder_cloud, terrain, use_dem_standins  # noqa: E402

LEFT, RIGHT = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"
#: whole 20 m grid steps, so that a moved grid node lands on another node
OFFSET = [60.0, -40.0, 15.0]
#: a local stereographic projection at the terrain's centre (a Mars t_srs as ASP's users set it)
T_SRS = "+proj=stere +lat_0=2.15 +lon_0=16.92 +k=1 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"


@pytest.fixture
def stage(monkeypatch, tmp_path):
    spec = use_dem_standins(monkeypatch)(offset=OFFSET)
    mola, _, _ = mola_shots(tmp_path / "mola.csv", spec, n=300)
    cloud, texture = placeholder_cloud(tmp_path / "stereo")
    options = RunOptions.from_config(work_dir=str(tmp_path / "work"), grace=1.0, poll_interval=0.05)
    return spec, mola, cloud, texture, options


def _run(calls, files: dict[str, str], options) -> dict:
    """Run the calls in order; refs to steps not among them are staged from ``files`` (by output role)."""
    keys = {c.key for c in calls}
    results: dict = {}
    for call in calls:
        inputs = {role: (i if not isinstance(i.source, Ref) or i.source.key in keys
                         else StagedInput(i.name, files[i.source.role], i.copy)) for role, i in call.inputs.items()}
        call = dataclasses.replace(call, inputs=inputs)
        results[call.step] = run_step(call, *[next(r for r in results.values() if r.key == k)
                                              for k in call.upstream], options=options)
    return results


def _grid(path):
    with rasterio.open(path) as src:
        return src.crs, src.res, src.transform, src.shape, src.read(1, masked=True)


def _on_lattice(transform, reference) -> bool:
    """Same pixel size, and the origins a whole number of pixels apart."""
    steps = np.array([(transform.c - reference.c) / reference.a, (transform.f - reference.f) / reference.e])
    return transform.a == reference.a and transform.e == reference.e and np.allclose(steps, np.round(steps), atol=1e-6)


def _moved(aligned, before, transform, shift):
    """``before`` sampled where each node of ``aligned`` came from (node - shift), nearest pixel."""
    rows, cols = np.mgrid[0:aligned.shape[0], 0:aligned.shape[1]]
    x, y = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
    return x, y, np.array(x) - shift[0], np.array(y) - shift[1]


def _sample(path, x, y):
    with rasterio.open(path) as src:
        r, c = rasterio.transform.rowcol(src.transform, x, y)
        r, c = np.asarray(r), np.asarray(c)
        data = src.read(1, masked=True)
        inside = (r >= 0) & (r < src.height) & (c >= 0) & (c < src.width)
        out = np.full(len(r), np.nan)
        values = data[r[inside], c[inside]]
        out[inside] = np.ma.filled(values.astype(float), np.nan)
        return out


@pytest.mark.parametrize("errorimage", [True, False], ids=["with-error", "dem-and-ortho"])
def test_tiled_alignment_grids_the_mosaic_cloud_on_the_mosaic_grid(stage, tmp_path, errorimage):
    spec, mola, cloud, texture, options = stage
    # the mosaics of the tiles (DEM, orthoimage, error) on one grid: point2dem --tr --t_srs, as the tiles are
    mosaic = tmp_path / "mosaic" / "out"
    subprocess.run(["point2dem", "-r", "mars", "--tr", "20", "--t_srs", T_SRS, "--orthoimage", "--errorimage",
                    str(cloud), str(texture), "-o", str(mosaic)], check=True, capture_output=True)
    files = {"dem": f"{mosaic}-DEM.tif", "ortho": f"{mosaic}-DRG.tif", "error": f"{mosaic}-IntersectionErr.tif"}
    # (the second variant leaves dem_geoid out: on the old recipe it shows the grid, not break 1)
    recipe = build_recipe(stereo_mode="tiled", lowres_dem="/x/lowres.tif", pc_align=True, dem_geoid=errorimage,
                          errorimage=errorimage)
    calls = [c for c in recipe.pair_calls("/x/l.cub", "/x/r.cub", left_id=LEFT, right_id=RIGHT, mola=str(mola))
             if c.step in ("pc_align", "point2dem_aligned", "dem_geoid")]
    results = _run(calls, files, options)
    out = results["point2dem_aligned"].outputs
    with rasterio.open(results["pc_align"].outputs["cloud"]) as src:
        assert src.count == 3  # the mosaic DEM as a cloud: no triangulation error
    crs, res, transform, shape, dem = _grid(out["dem"])
    mcrs, mres, mtransform, mshape, mdem = _grid(files["dem"])
    # the aligned DEM lies on the mosaic's grid: its projection, its spacing, its lattice, its extent
    assert crs == mcrs and res == mres == (20.0, 20.0) and _on_lattice(transform, mtransform)
    assert (transform, shape) == (mtransform, mshape)
    # the delivered orthoimage and error image are those of the aligned DEM: its grid, its valid pixels
    for role in ("ortho", "error") if errorimage else ("ortho",):
        _, _, t, s, image = _grid(out[role])
        assert t == transform and s == shape and np.array_equal(np.ma.getmaskarray(image), np.ma.getmaskarray(dem))
    # ... and they moved with it: a node's orthoimage value is the mosaic's where its point came from
    shift = (-OFFSET[0], -OFFSET[1])
    x, y, sx, sy = _moved(dem, mdem, transform, shift)
    drg = _grid(out["ortho"])[4].filled(np.nan).ravel()
    came_from, stayed = _sample(files["ortho"], sx, sy), _sample(files["ortho"], x, y)
    ok = np.isfinite(drg) & np.isfinite(came_from) & np.isfinite(stayed)
    assert ok.sum() > 0.8 * drg.size
    assert np.median(np.abs(drg[ok] - came_from[ok])) < 0.2 * np.median(np.abs(drg[ok] - stayed[ok]))
    # the heights too (point2dem's Gaussian-weighted mean of the moved points smooths them by a metre or so)
    heights = dem.filled(np.nan).ravel()
    below, there = _sample(files["dem"], sx, sy) - OFFSET[2], _sample(files["dem"], x, y) - OFFSET[2]
    good = np.isfinite(heights) & np.isfinite(below) & np.isfinite(there)
    assert np.median(np.abs(heights[good] - below[good])) < 0.2 * np.median(np.abs(heights[good] - there[good]))
    # products: the aligned DEM with its own orthoimage and error image; the areoid DEM beside it
    inputs = pair_product_inputs(recipe.pair_calls("/x/l.cub", "/x/r.cub", left_id=LEFT, right_id=RIGHT,
                                                   mola=str(mola)))
    key = results["point2dem_aligned"].key
    roles = ("dem", "ortho", "error") if errorimage else ("dem", "ortho")
    assert {inputs[r][0] for r in roles} == {key} and errorimage == ("error" in inputs)
    if errorimage:
        assert results["dem_geoid"].outputs["dem"].endswith("results/out-align-DEM-adj.tif")


@pytest.mark.parametrize("t_srs", [None, T_SRS], ids=["images-projection", "t-srs"])
def test_monolithic_alignment_keeps_the_dem_grid_and_projection(stage, t_srs):
    spec, mola, cloud, texture, options = stage
    files = {"pc": str(cloud), "aligned_left": str(texture)}
    recipe = build_recipe(pc_align=True, dem_geoid=True, t_srs=t_srs, dem_spacing=20)
    calls = [c for c in recipe.pair_calls("/x/l.cub", "/x/r.cub", left_id=LEFT, right_id=RIGHT, mola=str(mola))
             if c.step in ("point2dem", "pc_align", "point2dem_aligned", "dem_geoid")]
    results = _run(calls, files, options)
    before, out = results["point2dem"].outputs, results["point2dem_aligned"].outputs
    crs, res, transform, shape, dem = _grid(out["dem"])
    bcrs, bres, btransform, bshape, _ = _grid(before["dem"])
    # without tools.asp.t-srs the cloud keeps the images' map projection, here the terrain's
    # (point2dem.rst "Determination"); with it, point2dem --t_srs and the aligned DEM follow it
    assert crs == bcrs == rasterio.crs.CRS.from_string(t_srs or terrain.CRS) and res == bres == (20.0, 20.0)
    assert (transform, shape) == (btransform, bshape)
    for role in ("ortho", "error"):
        _, _, t, s, image = _grid(out[role])
        assert t == transform and s == shape and np.array_equal(np.ma.getmaskarray(image), np.ma.getmaskarray(dem))
    # the orthoimage moved with the DEM: node for node it is the unaligned one where the point came from
    x, y, sx, sy = _moved(dem, dem, transform, (-OFFSET[0], -OFFSET[1]))
    drg = _grid(out["ortho"])[4].filled(np.nan).ravel()
    came_from = _sample(before["ortho"], sx, sy)
    ok = np.isfinite(drg) & np.isfinite(came_from)
    assert ok.sum() > 0.8 * drg.size and np.median(np.abs(drg[ok] - came_from[ok])) < 2e-3
    # break 1: the areoid DEM is where the step says it is
    adj = results["dem_geoid"].outputs["dem"]
    assert adj.endswith("results/out-align-DEM-adj.tif") and _grid(adj)[2] == transform


def test_dem_geoid_step_output_is_where_the_recipe_says(stage, tmp_path):
    spec, mola, cloud, texture, options = stage
    dem = tmp_path / "dem" / "out-DEM.tif"
    subprocess.run(["point2dem", "-r", "mars", str(cloud), "-o", str(dem)[: -len("-DEM.tif")]], check=True,
                   capture_output=True)
    recipe = build_recipe(dem_geoid=True)
    call = next(c for c in recipe.pair_calls("/x/l.cub", "/x/r.cub", left_id=LEFT, right_id=RIGHT)
                if c.step == "dem_geoid")
    result = _run([call], {"dem": str(dem)}, options)["dem_geoid"]
    assert pathlib.Path(result.outputs["dem"]).is_file()
    assert pathlib.Path(result.outputs["dem"]).relative_to(result.workdir) == pathlib.Path("results/out-DEM-adj.tif")
    with rasterio.open(result.outputs["dem"]) as adj, rasterio.open(dem) as src:
        lon, lat = (np.degrees(v / terrain.R_MARS) for v in src.xy(3, 4))
        assert src.read(1)[3, 4] - adj.read(1)[3, 4] == pytest.approx(terrain.areoid(lon, lat), abs=0.01)


def test_tiled_chain_with_pc_align_through_the_tiled_stand_ins(tmp_path, monkeypatch):
    """Prep, tiles (stereo_tile runs point2dem), mosaics, pc_align, point2dem_aligned, dem_geoid: one grid."""
    from ctxdask.tools.tiling import mosaic_calls, read_tile_list, tile_call

    from ..batch.tiled import ASP37, write_inputs
    from .conftest import standin_path

    use_dem_standins(monkeypatch)(offset=OFFSET)
    monkeypatch.setenv("PATH", os.pathsep.join([str(ASP37), standin_path()]))
    given = write_inputs(tmp_path / "in")
    cubes, mola = given["cubes"], tmp_path / "mola.csv"
    small_tiles = current().override({"tools.asp.tiles": {"size": 16, "padding": 4}, "tools.asp.stereo-default": {}})
    recipe = build_recipe(small_tiles, stereo_mode="tiled", dem_spacing=12.0, pc_align=True, dem_geoid=True,
                          env={"PATH": os.environ["PATH"]})
    calls = recipe.pair_calls(cubes[LEFT], cubes[RIGHT], left_id=LEFT, right_id=RIGHT, mola=str(mola),
                              lowres_dem=given["dem"])
    options = RunOptions(work_dir=str(tmp_path / "work"), grace=1.0, poll_interval=0.05, tail_lines=40)
    done: dict = {}

    def run(call):
        done[call.key] = run_step(call, *(done[k] for k in call.upstream), options=options)
        return done[call.key]

    # bundle_adjust too (the stand-ins' one is on PATH): the tiles read its .adjust files
    prep = {c.step: run(c) for c in calls if c.step in TILED_PREP_STEPS}
    with rasterio.open(prep["mapproject_left"].outputs["map"]) as src:
        t_srs = src.crs.to_wkt()  # as plan_tiles: the left map's projection, the recipe's --tr
    tiles = read_tile_list(prep["stereo_parse"].outputs["tiles"])
    made = [(t, run(tile_call(recipe, t, left=LEFT, right=RIGHT, left_cube=cubes[LEFT], right_cube=cubes[RIGHT],
                              lowres_dem=given["dem"], t_srs=t_srs, spacing=12.0)).key) for t in tiles]
    mosaics = {c.step: run(c) for c in mosaic_calls(recipe, left=LEFT, right=RIGHT, tiles=made)}
    # MOLA shots on the mosaic's valid pixels
    with rasterio.open(mosaics["dem_mosaic"].outputs["dem"]) as src:
        z = src.read(1, masked=True)
        rows, cols = np.nonzero(~np.ma.getmaskarray(z))
        pick = np.linspace(0, len(rows) - 1, 60).astype(int)
        xs, ys = rasterio.transform.xy(src.transform, rows[pick], cols[pick])
        lon, lat = Transformer.from_crs(src.crs, terrain.LONLAT, always_xy=True).transform(xs, ys)
        radius = (terrain.R_MARS + z[rows[pick], cols[pick]].astype(float) - 7.0) / 1000.0
    np.savetxt(mola, np.column_stack([lon, lat, radius]), delimiter=",", fmt="%.12f")
    after = {c.step: run(c) for c in calls if c.step in ("pc_align", "point2dem_aligned", "dem_geoid")}
    out = after["point2dem_aligned"].outputs
    crs, res, transform, shape, dem = _grid(out["dem"])
    mcrs, mres, mtransform, mshape, _ = _grid(mosaics["dem_mosaic"].outputs["dem"])
    assert crs == mcrs and res == mres == (12.0, 12.0) and (transform, shape) == (mtransform, mshape)
    for role in ("ortho", "error"):
        _, _, t, s, image = _grid(out[role])
        assert t == transform and s == shape and np.array_equal(np.ma.getmaskarray(image), np.ma.getmaskarray(dem))
    assert _grid(after["dem_geoid"].outputs["dem"])[2] == transform
