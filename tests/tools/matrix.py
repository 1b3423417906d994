"""What the configuration-matrix tests share (tests/tools/test_matrix*.py): the matrix, its inputs
(module fixture ``inputs``), running a pair chain step by step, the products it must deliver."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys

import numpy as np
import rasterio
from rasterio.transform import from_origin

from ctxdask.batch.dem_products import pair_product_inputs
from ctxdask.settings import current
from ctxdask.testing import make_edr
from ctxdask.tools.recipe import build_recipe
from ctxdask.tools.tasks import RunOptions, run_step
from ctxdask.tools.tiling import mosaic_calls, read_tile_list, tile_call

from .conftest import STANDINS, standin_path

sys.path.insert(0, str(STANDINS))
from _dem_testing import mola_shots, terrain  # noqa: E402

L, R = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"
LONLAT = "+proj=longlat +a=3396190 +b=3396190 +no_defs"
PROJECTED = "+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=354 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"
T_SRS = "+proj=stere +lat_0=1.5 +lon_0=354.8 +k=1 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"
TILE = 16
ENV = {"CTXDASK_STANDIN_MAP_SIZE": "32x16"}  # two 16 px tiles a pair

MONOLITHIC = [dict(mode="monolithic", pc_align=a, dem_geoid=g, lowres=None, t_srs=t)
              for a, g, t in itertools.product((False, True), repeat=3)]
TILED = [dict(mode="tiled", pc_align=a, dem_geoid=g, lowres=d, t_srs=t)
         for a, g, d, t in itertools.product((False, True), (False, True), ("projected", "lonlat"), (False, True))]
MATRIX = [dict(c, calibration=("native", "isis")[i % 2]) for i, c in enumerate(MONOLITHIC + TILED)]


def _id(c: dict) -> str:
    parts = [c["calibration"], c["mode"], "align" if c["pc_align"] else "noalign",
             "geoid" if c["dem_geoid"] else "nogeoid"]
    if c["mode"] == "tiled":
        parts.append(c["lowres"])
    parts.append("tsrs" if c["t_srs"] else "notsrs")
    return "-".join(parts)


def _asp_path() -> str:
    return os.pathsep.join([str(STANDINS / "asp37"), standin_path()])


def _recipe(c: dict, inputs: dict):
    return build_recipe(
        current().override({"tools.asp.tiles": {"size": TILE, "padding": 4}}),
        calibration=c["calibration"], stereo_mode=c["mode"], pc_align=c["pc_align"], dem_geoid=c["dem_geoid"],
        lowres_dem=inputs["dems"][c["lowres"]] if c["lowres"] else None,
        t_srs=T_SRS if c["t_srs"] else None, bundle_adjust=c.get("bundle_adjust", "auto"),
        env={**ENV, "PATH": _asp_path()})


def make_inputs(tmp_path_factory):
    """(each test file's module fixture ``inputs``) EDRs, MOLA shots, both low-resolution DEMs, and both calibrations' level-1 cubes."""
    d = tmp_path_factory.mktemp("matrix")
    for pid in (L, R):
        make_edr(d / f"{pid}.IMG", lines=16, line_samples=128)
    mola, _, _ = mola_shots(d / "mola.csv", terrain.settings(), n=50)
    dems = {}
    for kind, crs, origin, res in (("lonlat", LONLAT, (354.0, 2.3), 0.1),
                                   ("projected", PROJECTED, (0.0, 136330.0), 5927.0)):
        path = d / f"mola-{kind}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=1, dtype="float32",
                           crs=crs, transform=from_origin(*origin, res, res)) as dst:
            dst.write(np.full((1, 16, 16), -1200.0, dtype="float32"))
        dems[kind] = str(path)
    old = os.environ["PATH"]
    os.environ["PATH"] = _asp_path()
    try:
        options = RunOptions.from_config(work_dir=str(d / "work"), grace=1.0, poll_interval=0.05)
        cubes = {}
        for calibration in ("native", "isis"):
            recipe = build_recipe(calibration=calibration)
            for pid in (L, R):
                results: dict = {}
                for call in recipe.image_calls(pid, str(d / f"{pid}.IMG")):
                    results[call.key] = run_step(call, *[results[k] for k in call.upstream], options=options)
                # the image steps of both calibrations share keys (spiceinit-<id>): keep each cube
                cube = d / calibration / f"{pid}.cal.cub"
                cube.parent.mkdir(exist_ok=True)
                shutil.copyfile(results[call.key].outputs["cube"], cube)
                cubes[calibration, pid] = str(cube)
    finally:
        os.environ["PATH"] = old
    return {"dir": d, "mola": str(mola), "dems": dems, "cubes": cubes, "options": options}


def run_pair_chain(recipe, inputs: dict, calibration: str) -> dict:
    """Every pair call in order through run_step; tiled: tiles and mosaics as the batch renders them."""
    cubes = {pid: inputs["cubes"][calibration, pid] for pid in (L, R)}
    # monolithic: shots of the DEM stand-ins' terrain; tiled: of the tile stand-ins' mosaic (below)
    mola = inputs["mola"] if recipe.tile_step is None else str(inputs["dir"] / "mola-tiled.csv")
    calls = recipe.pair_calls(cubes[L], cubes[R], left_id=L, right_id=R, mola=mola)
    options, results, rendered = inputs["options"], {}, []

    def run(call):
        rendered.append(call)
        results[call.key] = run_step(call, *[results[k] for k in call.upstream if k in results],
                                     options=options)

    mosaics = {m.key_for({"left": L, "right": R, "pair": f"{L}-{R}"}) for m in recipe.mosaic_steps}
    late, later = set(mosaics), []
    for call in calls:  # the steps after the mosaics, directly or not
        if set(call.upstream) & late:
            late.add(call.key)
            later.append(call)
    for call in calls:
        if call not in later:
            run(call)
    if recipe.tile_step is not None:
        parse = results[f"stereo_parse-{L}-{R}"]
        left_map = next(r for k, r in results.items() if k.startswith("mapproject_left"))
        with rasterio.open(left_map.outputs["map"]) as src:
            crs, pixel = src.crs.to_wkt(), abs(src.res[0])
        s = recipe.settings.tools.asp
        t_srs, spacing = s.t_srs or crs, float(s.dem_spacing or pixel * 3)  # batch/tiles.py plan_tiles
        done = []
        for tile in read_tile_list(parse.outputs["tiles"]):
            call = tile_call(recipe, tile, left=L, right=R, left_cube=cubes[L], right_cube=cubes[R],
                             lowres_dem=s.lowres_dem, t_srs=t_srs, spacing=spacing)
            run(call)
            done.append((tile, call.key))
        for call in mosaic_calls(recipe, left=L, right=R, tiles=done):
            run(call)
        if s.pc_align:
            write_mola_of(results[mosaic_calls(recipe, left=L, right=R, tiles=done)[0].key].outputs["dem"],
                          mola)
    for call in later:
        run(call)
    return {"calls": rendered, "results": results}


def write_mola_of(dem: str, path: str, n: int = 40) -> None:
    """MOLA shots ('lon,lat,radius_km') of the tiled stand-ins' mosaic: the terrain they made."""
    from pyproj import Transformer

    with rasterio.open(dem) as src:
        heights = src.read(1, masked=True)
        rows, cols = np.nonzero(~np.ma.getmaskarray(heights))
        pick = np.linspace(0, len(rows) - 1, min(n, len(rows))).astype(int)
        xs, ys = rasterio.transform.xy(src.transform, rows[pick], cols[pick])
        lon, lat = Transformer.from_crs(src.crs, LONLAT, always_xy=True).transform(xs, ys)
        radius_km = (np.asarray(heights[rows[pick], cols[pick]]) + 3396190.0) / 1000.0
    np.savetxt(path, np.column_stack([lon, lat, radius_km]), delimiter=",", fmt="%.12f",
               header="lon,lat,radius_km (test MOLA shots of the stand-ins' mosaic)")


def _grid(path: str) -> tuple:
    with rasterio.open(path) as src:
        return src.crs, tuple(round(v, 6) for v in src.transform[:6]), src.shape


def check_products(chain: dict, c: dict) -> None:
    """The products a pair delivers, as pair_quality would pick them (pair_product_inputs)."""
    products = pair_product_inputs(chain["calls"])
    path = {p: chain["results"][key].outputs[role] for p, (key, role) in products.items()}
    dem_crs, dem_transform, dem_shape = _grid(path["dem"])
    with rasterio.open(path["dem"]) as src:
        assert src.count == 1 and np.isfinite(src.read(1, masked=True)).any()
    if c["t_srs"]:
        assert dem_crs == rasterio.crs.CRS.from_string(T_SRS), dem_crs
    if c["pc_align"]:
        # aligned DEM on the grid of the DEM it was aligned from (the mosaic in tiled mode)
        assert "dem_before" in path
        before = _grid(path["dem_before"])
        assert (dem_crs, dem_transform[0], dem_transform[4]) == (before[0], before[1][0], before[1][4])
        if c["mode"] == "tiled":
            assert (dem_transform, dem_shape) == (before[1], before[2])
    assert "ortho" in path  # the orthoimage matches the delivered DEM
    assert _grid(path["ortho"]) == (dem_crs, dem_transform, dem_shape)
    if c["pc_align"]:  # ... and is made from the aligned cloud, not the unaligned one
        downstream = {next(x.key for x in chain["calls"] if x.step == "pc_align")}
        for x in chain["calls"]:
            if set(x.upstream) & downstream:
                downstream.add(x.key)
        assert products["ortho"][0] in downstream, f"the orthoimage comes from {products['ortho'][0]}"
    if c["dem_geoid"]:
        assert path["dem_areoid"].endswith("-DEM-adj.tif") and os.path.isfile(path["dem_areoid"])
        assert _grid(path["dem_areoid"]) == (dem_crs, dem_transform, dem_shape)
    else:
        assert "dem_areoid" not in path


# ------------------------------------------------------------ whole batches
#: a covering subset: every value of every axis runs in at least one whole batch
BATCHES = [
    dict(calibration="native", mode="monolithic", pc_align=True, dem_geoid=True, lowres=None, t_srs=False),
    dict(calibration="isis", mode="tiled", pc_align=False, dem_geoid=True, lowres="lonlat", t_srs=True),
    dict(calibration="native", mode="tiled", pc_align=True, dem_geoid=False, lowres="projected", t_srs=False),
]


@contextlib.contextmanager
def batch_cluster():
    """A 2-process LocalCluster (stereo=1 each) whose workers see every stand-in."""
    import logging

    from distributed import Client, LocalCluster

    old = os.environ["PATH"]
    os.environ["PATH"] = _asp_path()  # workers inherit PATH when they spawn
    try:
        with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, resources={"stereo": 1},
                          dashboard_address=":0", silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            yield client
    finally:
        os.environ["PATH"] = old


def chain_delivers_the_right_products(inputs: dict, c: dict, monkeypatch) -> None:
    """One matrix chain through the stand-ins (ASP 3.7 launchers first on PATH), then its products checked."""
    monkeypatch.setenv("PATH", _asp_path())
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    check_products(run_pair_chain(_recipe(c, inputs), inputs, c["calibration"]), c)
