"""The ASP 3.7 distributed-stereo stand-ins keep the real programs' contract (issue 19, Deliver 1),
and the tiled recipe meets it (break 3: both images on one explicit grid, as stereo_dist does).

The stand-ins are rebuilt from NeoGeographyToolkit/StereoPipeline (see tests/standins/_standin_tiles.py
and _asp_map.py for the file:line they follow); these tests pin what our code relies on.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from ctxdask.settings import current
from ctxdask.tools.recipe import TILED_PREP_STEPS, build_recipe
from ctxdask.tools.tasks import RunOptions, run_step

from ..batch.tiled import LEFT, RIGHT, asp_runner

L_MAP, R_MAP = f"{LEFT}.map.tif", f"{RIGHT}.map.tif"
L_CUB, R_CUB = f"{LEFT}.cal.cub", f"{RIGHT}.cal.cub"
EQC = "+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"


@pytest.fixture
def asp(tmp_path, monkeypatch):
    """Run an ASP 3.7 stand-in in a folder holding two cubes and a lon/lat DEM ``dem.tif``."""
    return asp_runner(tmp_path, monkeypatch)


def _eqc_dem(path):
    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=1, dtype="float32", crs=EQC,
                       transform=from_origin(21012000.0, 136000.0, 6000.0, 6000.0)) as dst:
        dst.write(np.full((1, 16, 16), -1200.0, dtype="float32"))


def _query(asp, dem, cub, out, *extra):
    r = asp("mapproject_single", "--query-projection", "--write-wkt", dem, cub, out, *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(ln.split(",", 1) for ln in r.stdout.splitlines() if "," in ln)


def _maps_on_one_grid(asp, dem="dem.tif", t_srs=None):
    """What stereo_dist does (asp_dist_utils.py:195-286), by hand through the stand-ins."""
    left = _query(asp, dem, L_CUB, "lq.tif", *(["--t_srs", t_srs] if t_srs else []))
    wkt = (asp.dir / left["projection_wkt_file"]).read_text().strip()
    right = _query(asp, dem, R_CUB, "rq.tif", "--t_srs", wkt)
    box = [max(float(left[f"proj_box_{k}"]), float(right[f"proj_box_{k}"])) for k in ("xmin", "ymin")]
    box += [min(float(left[f"proj_box_{k}"]), float(right[f"proj_box_{k}"])) for k in ("xmax", "ymax")]
    gsd = min(float(left["pixel_size"]), float(right["pixel_size"]))
    for cub, out in ((L_CUB, L_MAP), (R_CUB, R_MAP)):
        r = asp("mapproject", "--t_srs", t_srs or wkt, "--tr", repr(gsd), "--t_projwin", *map(repr, box), dem, cub,
                out)
        assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------ unknown options
@pytest.mark.parametrize("program", ["stereo_parse", "stereo_pprc", "mapproject_single", "dem_mosaic"])
def test_cxx_programs_reject_an_unknown_option_as_boost_does(asp, program):
    r = asp(program, "--no-such-option", "a.tif", "b.tif", "out")
    # check_command_line (AspProgramOptions.cc:103-106) -> ASP_STANDARD_CATCHES (Macros.h:26-28): stdout, 1
    assert r.returncode == 1
    assert "ERROR: Error parsing input:\nunrecognised option '--no-such-option'" in r.stdout


def test_boost_accepts_unambiguous_abbreviations_and_rejects_ambiguous_ones(asp):
    _maps_on_one_grid(asp)
    ok = asp("stereo_parse", L_MAP, R_MAP, L_CUB, R_CUB, "run/out", "--dem", "dem.tif", "--stereo-algo", "asp_mgm")
    assert ok.returncode == 0, ok.stdout
    bad = asp("stereo_parse", L_MAP, R_MAP, "run/out", "--dem", "dem.tif", "--corr")
    assert bad.returncode == 1 and "option '--corr' is ambiguous" in bad.stdout


def test_python_wrappers_pass_unknown_options_to_the_cxx_program(asp):
    # mapproject: parse_known_args, then mapproject_single --parse-options fails (mapproject:309-320)
    r = asp("mapproject", "--no-such-option", "dem.tif", L_CUB, "x.tif")
    assert r.returncode == 1
    assert "unrecognised option '--no-such-option'" in r.stdout
    assert "Exception: Failed executing: " in r.stderr and not (asp.dir / "x.tif").exists()
    # stereo_tile: parse_known_args, then stereo_parse fails (stereo_tile:166, 214-216)
    _maps_on_one_grid(asp)
    t = asp("stereo_tile", "--tile-index", "0", "--dem", "dem.tif", "--no-such-option", L_MAP, R_MAP, L_CUB, R_CUB,
            "run/out")
    assert t.returncode == 1 and "unrecognised option '--no-such-option'" in t.stdout
    assert "Failed executing: stereo_parse" in t.stderr


# ------------------------------------------------------------- break 3
def test_ref_map_on_a_lonlat_dem_lands_in_another_projection_and_stereo_refuses(asp):
    """Break 3 in the stand-ins: mapproject drops --ref-map for its tiles and never passes --t_srs."""
    assert asp("mapproject", "dem.tif", L_CUB, L_MAP).returncode == 0
    assert asp("mapproject", "--ref-map", L_MAP, "dem.tif", R_CUB, R_MAP).returncode == 0
    with rasterio.open(asp.dir / L_MAP) as left, rasterio.open(asp.dir / R_MAP) as right:
        assert left.crs.to_dict()["proj"] == "stere"  # a lon/lat DEM: auto stereographic (CartographyUtils.cc:44)
        assert left.crs != right.crs and left.res == right.res
    for program, extra in (("stereo_parse", ["--stereo-dist-tile-params", "16", "4"]),
                           ("stereo_pprc", ["--stop-after-stats"])):
        r = asp(program, L_MAP, R_MAP, L_CUB, R_CUB, "run/out", "--dem", "dem.tif", *extra)
        assert r.returncode == 1
        assert "ERROR: The left and right images must use the same projection." in r.stdout
    assert not (asp.dir / "run" / "out-distTileList.txt").exists()


def test_t_srs_on_the_left_and_ref_map_on_the_right_differ_too(asp):
    _eqc_dem(asp.dir / "eqc.tif")
    stere = "+proj=stere +lat_0=1.5 +lon_0=354.8 +k=1 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"
    assert asp("mapproject", "--t_srs", stere, "eqc.tif", L_CUB, L_MAP).returncode == 0
    assert asp("mapproject", "--ref-map", L_MAP, "eqc.tif", R_CUB, R_MAP).returncode == 0
    with rasterio.open(asp.dir / R_MAP) as right:
        assert right.crs.to_dict()["proj"] == "eqc"  # the DEM's projection, not the reference map's
    r = asp("stereo_parse", L_MAP, R_MAP, L_CUB, R_CUB, "run/out", "--dem", "eqc.tif")
    assert r.returncode == 1 and "must use the same projection" in r.stdout


def test_explicit_grid_for_both_images_is_accepted(asp):
    _maps_on_one_grid(asp)
    r = asp("stereo_parse", L_MAP, R_MAP, L_CUB, R_CUB, "run/out", "--dem", "dem.tif",
            "--stereo-dist-tile-params", "16", "4")
    assert r.returncode == 0, r.stdout
    rows = [ln.split() for ln in (asp.dir / "run" / "out-distTileList.txt").read_text().splitlines()]
    assert rows[0] == ["0", "0", "16", "16", "4"] and len(rows) == 12 and all(len(x) == 5 for x in rows)


# ---------------------------------------------------- recorded DEM and camera
def test_the_recorded_dem_must_be_the_dem_given_to_stereo(asp):
    _maps_on_one_grid(asp)
    with rasterio.open(asp.dir / L_MAP) as src:
        assert src.tags()["DEM_FILE"] == "dem.tif" and src.tags()["INPUT_IMAGE_FILE"] == L_CUB
    shutil.copy(asp.dir / "dem.tif", asp.dir / "same.tif")
    for dem in ("same.tif", str(asp.dir / "dem.tif")):  # another name, even of the same file, is refused
        r = asp("stereo_pprc", L_MAP, R_MAP, L_CUB, R_CUB, "run/out", "--dem", dem, "--stop-after-stats")
        assert r.returncode == 1
        assert "The DEM used for map projection is different from the one provided currently." in r.stdout
        assert f"Mapprojection DEM: dem.tif\nCurrent DEM: {dem}" in r.stdout
    ok = asp("stereo_pprc", L_MAP, R_MAP, L_CUB, R_CUB, "run/out", "--dem", "same.tif", "--stop-after-stats",
             "--accept-provided-mapproj-dem")
    assert ok.returncode == 0, ok.stdout
    # the camera is loaded from the recorded image (StereoSession.cc:121-131)
    os.rename(asp.dir / L_CUB, asp.dir / "elsewhere.cub")
    r = asp("stereo_parse", L_MAP, R_MAP, "elsewhere.cub", R_CUB, "run/out", "--dem", "dem.tif")
    assert r.returncode == 1 and f"Failed to load the camera model from {L_CUB}" in r.stdout


def test_different_grid_sizes_are_refused(asp):
    for cub, out, tr in ((L_CUB, L_MAP, "6"), (R_CUB, R_MAP, "7")):
        assert asp("mapproject", "--t_srs", EQC, "--tr", tr, "dem.tif", cub, out).returncode == 0
    r = asp("stereo_parse", L_MAP, R_MAP, L_CUB, R_CUB, "run/out", "--dem", "dem.tif")
    assert r.returncode == 1 and "must have the same ground resolution" in r.stdout


# ------------------------------------------------------------ mapproject
def test_mapproject_single_query_and_contract(asp):
    r = asp("mapproject_single", "--query-projection", "--write-wkt", "dem.tif", L_CUB, "q.tif")
    assert r.returncode == 0
    q = dict(ln.split(",", 1) for ln in r.stdout.splitlines() if "," in ln)
    assert set(q) >= {"image_width", "image_height", "pixel_size", "proj_box_xmin", "proj_box_ymin",
                      "proj_box_xmax", "proj_box_ymax", "model_occlusion", "projection_wkt_file"}
    assert q["projection_wkt_file"] == "q.tif.wkt" and "Stereographic" in (asp.dir / "q.tif.wkt").read_text()
    assert int(q["image_width"]) == 65 and float(q["pixel_size"]) == 6.0  # both end points (mapproject_single:331)
    assert not (asp.dir / "q.tif").exists()
    both = asp("mapproject_single", "--ref-map", "q.tif", "--tr", "5", "dem.tif", L_CUB, "x.tif")
    assert both.returncode == 1 and "Cannot specify both --ref-map and --tr." in both.stdout
    assert asp("mapproject_single", "--t_srs", "", "dem.tif", L_CUB, "x.tif").returncode == 1


def test_mapproject_honours_t_srs_tr_and_t_projwin(asp):
    # edges at half-grid points: the pixel centres land on multiples of --tr (mapproject_single.cc:300-311)
    r = asp("mapproject", "--t_srs", EQC, "--tr", "12", "--t_projwin", "21060006", "88926", "21060486", "89166",
            "dem.tif", L_CUB, "sub/x.tif")
    assert r.returncode == 0, r.stdout + r.stderr
    with rasterio.open(asp.dir / "sub" / "x.tif") as src:
        assert src.crs.to_dict()["proj"] == "eqc" and src.res == (12.0, 12.0)
        assert (src.bounds.left, src.bounds.top, src.width, src.height) == (21060006.0, 89166.0, 40, 20)
    assert not any(p.name.endswith("_tiles") for p in (asp.dir / "sub").iterdir())  # its tile folder is removed


# ------------------------------------------------------------- stereo_tile
def _prepared(asp):
    _maps_on_one_grid(asp)
    files = [L_MAP, R_MAP, L_CUB, R_CUB, "run/out"]
    assert asp("stereo_parse", *files, "--dem", "dem.tif", "--stereo-dist-tile-params", "16", "4").returncode == 0
    assert asp("stereo_pprc", *files, "--dem", "dem.tif", "--stop-after-stats").returncode == 0
    assert sorted(p.name for p in (asp.dir / "run").glob("*stats.tif")) == [
        f"out-{LEFT}.map-stats.tif", f"out-{RIGHT}.map-stats.tif"]
    return files


def test_stereo_tile_runs_the_stages_into_the_tile_folder(asp):
    files = _prepared(asp)
    p2d = f"-r mars --tr 12 --t_srs '{EQC}' --orthoimage --errorimage"
    r = asp("stereo_tile", "--tile-index", "5", "--entry-point", "0", "--stop-point", "8", "--dem", "dem.tif",
            "--point2dem-options", p2d, *files)
    assert r.returncode == 0, r.stdout + r.stderr
    tile = asp.dir / "run" / "out-16_16_16_16"
    assert {p.name for p in tile.iterdir()} >= {"out-L.tif", "out-R.tif", "out-D.tif", "out-RD.tif", "out-F.tif",
                                                "out-PC.tif", "out-DEM.tif", "out-DRG.tif", "out-IntersectionErr.tif"}
    stats = tile / f"out-{LEFT}.map-stats.tif"
    assert stats.is_symlink() and os.readlink(stats) == f"../out-{LEFT}.map-stats.tif"
    with rasterio.open(tile / "out-DEM.tif") as dem:
        assert dem.crs.to_dict()["proj"] == "eqc" and dem.res == (12.0, 12.0)


@pytest.mark.parametrize("argv, code, message", [
    (["--point2dem-options", "-r mars"], 255, "Error: The option --point2dem-options must include --tr"),
    (["--tile-index", "99"], 255, "Error: Tile index 99 out of range [0, 11]"),
    (["--left-image-crop-win", "0", "0", "5", "5"], 255, "not supported by stereo_tile"),
])
def test_stereo_tile_refuses_like_the_real_script(asp, argv, code, message):
    files = _prepared(asp)
    base = {"--tile-index": "0", "--dem": "dem.tif", "--point2dem-options": "--tr 12"}
    for i in range(0, len(argv) - 1, 2):
        base.pop(argv[i], None)
    args = [a for kv in base.items() for a in kv] + argv
    r = asp("stereo_tile", *args, *files)
    assert r.returncode == code and message in r.stderr
    assert asp("stereo_tile", "--dem", "dem.tif", *files).returncode == 2


def test_stereo_tile_ignores_point2dem_failing_and_stops_before_the_stop_point(asp):
    files = _prepared(asp)
    r = asp("stereo_tile", "--tile-index", "0", "--dem", "dem.tif", "--point2dem-options", "--tr 12", *files,
            CTXDASK_STANDIN_TILE_FAULTS="0:no-dem")
    tile = asp.dir / "run" / "out-0_0_16_16"
    assert r.returncode == 0 and "ERROR: point2dem" in r.stderr and not (tile / "out-DEM.tif").exists()
    assert (tile / "out-PC.tif").exists()
    r = asp("stereo_tile", "--tile-index", "1", "--dem", "dem.tif", "--stop-point", "3", *files)
    one = asp.dir / "run" / "out-16_0_16_16"
    assert r.returncode == 0 and (one / "out-D.tif").exists() and not (one / "out-RD.tif").exists()
    later = asp("stereo_tile", "--tile-index", "2", "--dem", "dem.tif", "--entry-point", "5", "--stop-point", "6",
                *files)
    assert later.returncode == 1 and "Stereo step stereo_tri failed" in later.stderr


# -------------------------------------------------------------- dem_mosaic
def test_dem_mosaic_outputs_and_checks(asp):
    files = _prepared(asp)
    for i in (0, 1):
        asp("stereo_tile", "--tile-index", str(i), "--dem", "dem.tif", "--point2dem-options", "--tr 12", *files)
    dems = ["run/out-0_0_16_16/out-DEM.tif", "run/out-16_0_16_16/out-DEM.tif"]
    (asp.dir / "list.txt").write_text("\n".join(dems) + "\n")
    assert asp("dem_mosaic", "--dem-list", "list.txt", "-o", "m").returncode == 0
    assert asp("dem_mosaic", "-l", "list.txt", "-o", "m.tif").returncode == 0
    with rasterio.open(asp.dir / "m-tile-0.tif") as a, rasterio.open(asp.dir / "m.tif") as b:
        assert a.res == (12.0, 12.0) and np.array_equal(a.read(), b.read())
        assert set(np.unique(a.read(1))) >= {-1500.0, -1501.0}
    both = asp("dem_mosaic", "--dem-list", "list.txt", dems[0], "-o", "x.tif")
    assert both.returncode == 1 and "extraneous files or options passed in" in both.stdout
    assert "No output prefix was specified." in asp("dem_mosaic", dems[0]).stdout
    (asp.dir / "bad.txt").write_text("run/none/out-DEM.tif\n")
    missing = asp("dem_mosaic", "--dem-list", "bad.txt", "-o", "y.tif")
    assert missing.returncode == 1 and "run/none/out-DEM.tif" in missing.stderr


def test_dem_mosaic_fills_only_small_holes_inside_one_dem(asp):
    """--hole-fill-length as VW's fill_holes_grass decides (tests/standins/_asp_holes.py) and the one-operation,
    one-DEM checks of handle_arguments (src/asp/Core/DemMosaicParse.cc:221-223, 357-369)."""
    nodata = -32768.0
    data = np.full((24, 24), -1500.0, dtype="float32")
    data[4:7, 4:10] = nodata  # 3 x 6 inside: filled with 6
    data[10:20, 12:14] = nodata  # 10 tall: too big for 6
    data[0:2, 18:20] = nodata  # on the edge: left
    with rasterio.open(asp.dir / "holes.tif", "w", driver="GTiff", width=24, height=24, count=1, dtype="float32",
                       crs=EQC, transform=from_origin(0.0, 0.0, 12.0, 12.0), nodata=nodata) as dst:
        dst.write(data[None])
    r = asp("dem_mosaic", "--hole-fill-length", "6", "holes.tif", "-o", "filled.tif")
    assert r.returncode == 0, r.stdout + r.stderr
    with rasterio.open(asp.dir / "filled.tif") as src:
        out = src.read(1)
    assert (out[4:7, 4:10] != nodata).all() and np.allclose(out[4:7, 4:10], -1500.0)
    assert (out[10:20, 12:14] == nodata).all() and (out[0:2, 18:20] == nodata).all()
    assert (out != nodata).sum() == (data != nodata).sum() + 18
    for argv, message in [(("--hole-fill-length", "-1"), "The hole fill length must not be negative."),
                          (("--hole-fill-length", "6", "--erode-length", "2"), "and erode the input DEM at the same"),
                          (("--hole-fill-length", "6", "--tr", "24"), "if there is more than one input DEM, or "
                                                                       "reprojection")]:
        bad = asp("dem_mosaic", *argv, "holes.tif", "-o", "bad.tif")
        assert bad.returncode == 1 and message in bad.stdout, bad.stdout
    two = asp("dem_mosaic", "--hole-fill-length", "6", "holes.tif", "filled.tif", "-o", "bad.tif")
    assert two.returncode == 1 and "more than one input DEM" in two.stdout


# --------------------------------------------- break 3 through the recipe
@pytest.mark.parametrize("dem_kind, t_srs", [("lonlat", None), ("lonlat", EQC), ("eqc", None),
                                            ("eqc", "+proj=stere +lat_0=1.5 +lon_0=354.8 +R=3396190 +units=m")])
def test_tiled_prep_steps_pass_stereo_parse_and_pprc(asp, tmp_path, dem_kind, t_srs):
    """Break 3: the recipe's map images share one projection and grid and record the --dem they get."""
    dem = asp.dir / "dem.tif"
    if dem_kind == "eqc":
        _eqc_dem(dem)
    small_tiles = current().override({"tools.asp.tiles": {"size": 16, "padding": 4}, "tools.asp.stereo-default": {}})
    recipe = build_recipe(small_tiles, stereo_mode="tiled", t_srs=t_srs, env={"PATH": os.environ["PATH"]})
    calls = recipe.pair_calls(str(asp.dir / L_CUB), str(asp.dir / R_CUB), left_id=LEFT, right_id=RIGHT,
                              lowres_dem=str(dem))
    options = RunOptions(work_dir=str(tmp_path / "work"), grace=1.0, poll_interval=0.05, tail_lines=40)
    results = {}
    for call in calls:
        if call.step in TILED_PREP_STEPS:  # bundle_adjust too: the stand-ins' one is on PATH
            results[call.key] = run_step(call, *(results[k] for k in call.upstream), options=options)
    by_step = {r.key.split("-")[0]: r for r in results.values()}
    tiles = by_step["stereo_parse"].outputs["tiles"]
    assert open(tiles).read().count("\n") == 12
    parse = next(c for c in calls if c.step == "stereo_parse")
    dem_arg = parse.argv[parse.argv.index("--dem") + 1]
    crs = set()
    for side in ("left", "right"):
        with rasterio.open(by_step[f"mapproject_{side}"].outputs["map"]) as src:
            assert src.tags()["DEM_FILE"] == dem_arg and not os.path.isabs(dem_arg)
            crs.add(src.crs.to_wkt())
            assert src.res == (6.0, 6.0)
    assert len(crs) == 1
    if t_srs:
        assert rasterio.crs.CRS.from_wkt(crs.pop()) == rasterio.crs.CRS.from_user_input(t_srs)
    elif dem_kind == "eqc":
        assert rasterio.crs.CRS.from_wkt(crs.pop()).to_dict()["proj"] == "eqc"  # the DEM's own projection


# ------------------------------------------------ monolithic chain stand-ins
def test_cam2map4stereo_options_names_and_exit_codes(asp):
    bad = asp("cam2map4stereo.py", "--no-such-option", L_CUB, R_CUB)
    assert bad.returncode == 2 and "error: no such option: --no-such-option" in bad.stderr  # optparse
    assert asp("cam2map4stereo.py").returncode == 2
    ok = asp("cam2map4stereo.py", "--prefix", "maps/run", L_CUB, R_CUB)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # mapfile (cam2map4stereo.py:67-88): <first dot-part>.<suffix>.cub, then <prefix>-<basename>
    assert (asp.dir / "maps" / f"run-{LEFT}.map.cub").exists() and (asp.dir / "maps" / f"run-{RIGHT}.map.cub").exists()
    again = asp("cam2map4stereo.py", "--prefix", "maps/run", L_CUB, R_CUB)
    assert again.returncode == 3 and "already exists, delete first." in again.stderr
    dry = asp("cam2map4stereo.py", "-n", L_CUB, R_CUB)
    assert dry.returncode == 0 and f"to={LEFT}.map.cub" in dry.stdout and not (asp.dir / f"{LEFT}.map.cub").exists()


def test_parallel_stereo_passes_unknown_options_to_stereo_parse(asp):
    assert asp("cam2map4stereo.py", L_CUB, R_CUB).returncode == 0
    maps = [f"{LEFT}.map.cub", f"{RIGHT}.map.cub", "results/out"]
    bad = asp("parallel_stereo", "--no-such-option", *maps)
    assert bad.returncode == 1 and "unrecognised option '--no-such-option'" in bad.stdout
    assert "Failed executing: stereo_parse" in bad.stderr
    none = asp("parallel_stereo")
    assert none.returncode == 2 and "Error: Missing input files" in none.stderr
    ok = asp("parallel_stereo", "--stereo-algorithm", "asp_mgm", "--subpixel-mode", "9", "--processes", "2", *maps)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert {f"out-{s}.tif" for s in ("L", "R", "D", "RD", "F", "PC")} <= {p.name for p in (asp.dir / "results").iterdir()}
    with rasterio.open(asp.dir / "results" / "out-PC.tif") as pc:
        assert pc.count == 4
    later = asp("parallel_stereo", "--entry-point", "5", *maps[:2], "other/out")
    assert later.returncode == 1 and "Stereo step stereo_tri failed" in later.stderr
