"""ASP's tiled stereo contract: tile lists, failure kinds, the rendered tile and mosaic calls."""

from __future__ import annotations

import shlex

import pytest

from ctxdask.exceptions import CTXError
from ctxdask.tools.recipe import Ref, build_recipe
from ctxdask.tools.tiling import (
    Tile,
    TileListError,
    asp_errors,
    failure_kind,
    mosaic_calls,
    param_sets,
    read_tile_list,
    tile_call,
    with_stereo_options,
)

L, R = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"


def test_read_tile_list_like_readDistTileList(tmp_path):
    path = tmp_path / "out-distTileList.txt"
    path.write_text("0 0 2048 2048 256\n\n2048 0 1000 2048 256\n")
    tiles = read_tile_list(path)
    assert tiles == (Tile(0, 0, 0, 2048, 2048, 256), Tile(1, 2048, 0, 1000, 2048, 256))
    assert tiles[1].name == "2048_0_1000_2048"
    assert tiles[1].prefix() == "results/out-2048_0_1000_2048/out"


@pytest.mark.parametrize("text, what", [("0 0 16 16\n", "line 1"), ("0 0 16 x 4\n", "line 1"),
                                        ("0 0 16 16 4\n0 0 0 16 4\n", "line 2"), ("\n", "no tiles")])
def test_bad_tile_lists_name_the_file_and_line(tmp_path, text, what):
    path = tmp_path / "out-distTileList.txt"
    path.write_text(text)
    with pytest.raises(TileListError) as err:
        read_tile_list(path)
    assert isinstance(err.value, CTXError) and str(path) in str(err.value) and what in str(err.value)


def test_failure_kinds():
    assert failure_kind(timed_out=True, returncode=-15) == "timeout"
    assert failure_kind(returncode=-11) == "signal"
    # the C++ program explained itself: the same error would come again
    assert failure_kind(returncode=1, log_text="...\n\nERROR: Not enough valid matches\n") == "error"
    assert failure_kind(returncode=255, log_text="Error: Tile index 15 out of range [0, 11]") == "error"
    # stereo_run's own message only: a stereo program died of a signal
    assert failure_kind(returncode=1, log_text="Exception: Stereo step stereo_corr failed") == "crash"
    assert failure_kind(cancelled=True) == "cancelled"
    assert failure_kind(missing_program=True) == "missing"
    assert asp_errors("# ctxdask: header\nERROR: a\nfine\n  Error: b\n") == ["ERROR: a", "Error: b"]


def test_tile_call_carries_the_real_contract():
    recipe = build_recipe(stereo_mode="tiled", lowres_dem="/data/mola.tif", resources={"stereo_tile": {
        "stereo": 1, "memory_mb": 8000}}, env={"X": "1"})
    tile = Tile(7, 48, 16, 16, 16, 4)
    call = tile_call(recipe, tile, left=L, right=R, left_cube=Ref(f"ctxevenodd-{L}", "cube"),
                     right_cube="/data/R.cal.cub", lowres_dem="/data/mola.tif", t_srs="+proj=stere +R=3396190",
                     spacing=18.0)
    argv = list(call.argv)
    assert call.key == f"stereo_tile-{L}-{R}-007" and call.step == "stereo_tile"
    assert argv[:9] == ["stereo_tile", "--tile-index", "7", "--entry-point", "0", "--stop-point", "8",
                        "--point2dem-options", argv[8]]
    p2d = shlex.split(argv[8])
    assert p2d[p2d.index("--tr") + 1] == "18" and p2d[p2d.index("--t_srs") + 1] == "+proj=stere +R=3396190"
    assert "--orthoimage" in p2d and "--errorimage" in p2d
    assert argv[argv.index("--corr-memory-limit-mb") + 1] == "6400"  # 0.8 x the tile's memory resource
    assert argv[-7:] == [f"{L}.map.tif", f"{R}.map.tif", f"{L}.cal.cub", f"{R}.cal.cub", "results/out",
                         "--dem", "lowres-dem.tif"]
    assert call.inputs["tiles"].source == Ref(f"stereo_parse-{L}-{R}", "tiles")
    assert call.inputs["left_stats"].name == f"results/out-{L}.map-stats.tif"
    assert call.inputs["left_cam"].source == Ref(f"ctxevenodd-{L}", "cube")
    assert call.outputs == {"dem": "results/out-48_16_16_16/out-DEM.tif",
                            "ortho": "results/out-48_16_16_16/out-DRG.tif",
                            "error": "results/out-48_16_16_16/out-IntersectionErr.tif"}
    assert call.resources == {"stereo": 1, "memory_mb": 8000} and call.env == {"X": "1"}


def test_a_fallback_set_replaces_or_joins_the_stereo_options():
    recipe = build_recipe(stereo_mode="tiled", lowres_dem="/data/mola.tif")
    call = tile_call(recipe, Tile(7, 48, 16, 16, 16, 4), left=L, right=R, left_cube="/l.cub", right_cube="/r.cub",
                     lowres_dem="/data/mola.tif", t_srs=None, spacing=18.0)
    sets = param_sets(recipe.settings)
    assert [s.label for s in sets] == ["asp_mgm", "asp_sgm, corr-kernel 7 7",
                                       "asp_bm, corr-kernel 35 35, subpixel-mode 3"]
    assert with_stereo_options(call, sets[0].options) is call
    bm = list(with_stereo_options(call, sets[2].options).argv)
    # replaced in place (boost refuses an option given twice), new ones after the algorithm
    assert bm.count("--stereo-algorithm") == 1 and bm.count("--subpixel-mode") == 1
    at = bm.index("--stereo-algorithm")
    assert bm[at:at + 5] == ["--stereo-algorithm", "asp_bm", "--corr-kernel", "35", "35"]
    assert bm[bm.index("--subpixel-mode") + 1] == "3"
    assert bm[-7:] == list(call.argv[-7:]) and len(bm) == len(call.argv) + 3


def test_mosaic_calls_list_the_done_tiles():
    recipe = build_recipe(stereo_mode="tiled", lowres_dem="/data/mola.tif", orthoimage=False)
    tiles = [(Tile(1, 16, 0, 16, 16, 4), "k1"), (Tile(0, 0, 0, 16, 16, 4), "k0")]
    (dem, err) = mosaic_calls(recipe, left=L, right=R, tiles=tiles)
    assert dem.key == f"dem_mosaic-{L}-{R}" and err.step == "dem_mosaic_error"
    assert list(dem.argv) == ["dem_mosaic", "--dem-list", "DEM-tiles.txt", "-o", "results/out-DEM.tif"]
    assert dem.files["DEM-tiles.txt"] == "results/out-0_0_16_16/out-DEM.tif\nresults/out-16_0_16_16/out-DEM.tif\n"
    assert dem.inputs["tile001"].source == Ref("k1", "dem")
    assert err.inputs["tile000"].name == "results/out-0_0_16_16/out-IntersectionErr.tif"


def test_tiled_recipe_prep_and_later_steps():
    recipe = build_recipe(stereo_mode="tiled", pc_align=True, dem_geoid=True)
    assert [s.name for s in recipe.pair_steps] == ["mapproject_grid", "mapproject_left", "mapproject_right",
                                                  "stereo_parse", "stereo_stats", "pc_align", "point2dem_aligned",
                                                  "dem_geoid"]
    with pytest.raises(ValueError, match="lowres-dem"):
        recipe.pair_calls("/a.cub", "/b.cub", left_id=L, right_id=R, mola="m.csv")
    calls = {c.step: c for c in recipe.pair_calls("/a.cub", "/b.cub", left_id=L, right_id=R, mola="m.csv",
                                                 lowres_dem="/mola.tif")}
    # break 3: no --ref-map; both images on the grid the mapproject_grid step chose (as stereo_dist)
    assert "--ref-map" not in calls["mapproject_right"].argv
    for side in ("left", "right"):
        assert calls[f"mapproject_{side}"].inputs["grid"].source == Ref(f"mapproject_grid-{L}-{R}", "grid")
        assert calls[f"mapproject_{side}"].inputs["dem"].name == "lowres-dem.tif"
    assert calls["stereo_parse"].argv[-3:] == ("--stereo-dist-tile-params", "2048", "256")
    assert "--stop-after-stats" in calls["stereo_stats"].argv and calls["stereo_stats"].program == "stereo_pprc"
    assert calls["pc_align"].inputs["cloud"].source == Ref(f"dem_mosaic-{L}-{R}", "dem")


def test_auto_mode_follows_stereo_tile_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert build_recipe(stereo_mode="auto").tile_step is None
    prog = tmp_path / "stereo_tile"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    assert build_recipe(stereo_mode="auto").settings.tools.asp.stereo_mode == "monolithic"  # no low-resolution DEM
    assert build_recipe(stereo_mode="auto", lowres_dem="/m.tif").settings.tools.asp.stereo_mode == "tiled"
    with pytest.raises(ValueError, match="stereo-mode"):
        build_recipe(stereo_mode="fast")
