"""The preview pass through the stand-ins: its steps, its verdict, and the full pass seeded with its DEM."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from ctxdask.exceptions import RecipeError
from ctxdask.testing import make_edr
from ctxdask.tools.recipe import build_recipe
from ctxdask.tools.recipe.preview import PREVIEW_STEPS
from ctxdask.tools.tasks import RunOptions, run_step

from .conftest import STANDINS, standin_path

sys.path.insert(0, str(STANDINS))
from _dem_testing import mola_shots, terrain  # noqa: E402

L, R = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"
PAIR = f"{L}-{R}"


def _recipe(**changes):
    base = dict(calibration="native", bundle_adjust=False, stereo_mode="monolithic", lowres_dem="/data/mola.tif")
    return build_recipe(**{**base, **changes})


# ------------------------------------------------------------------ the recipe as data
def test_with_pc_align_the_full_pass_is_seeded_with_the_aligned_preview():
    calls = {c.step: c for c in _recipe(preview=True, pc_align=True).pair_calls(
        "/c/L.cub", "/c/R.cub", left_id=L, right_id=R, mola="/m/mola.csv")}
    assert list(calls)[:9] == [*PREVIEW_STEPS, "preview_seed"]
    assert calls["preview_seed"].inputs["dem"].source.key == f"preview_point2dem_aligned-{PAIR}"
    assert calls["preview_qa"].inputs["dem_before"].source.key == f"preview_point2dem-{PAIR}"


def test_the_preview_comes_first_and_seeds_the_full_pass():
    recipe = _recipe(preview=True)
    names = [s.name for s in recipe.pair_steps]
    preview = [s for s in PREVIEW_STEPS if "align" not in s]
    assert names[:len(preview)] == preview
    assert names[len(preview):] == ["preview_seed", "mapproject_grid", "mapproject_left", "mapproject_right",
                                    "parallel_stereo", "point2dem"]
    calls = {c.step: c for c in recipe.pair_calls("/c/L.cub", "/c/R.cub", left_id=L, right_id=R)}
    # the preview mapprojects onto the low-resolution DEM on a 4x coarser grid, correlates fast
    assert calls["preview_grid"].inputs["dem"].source == "/data/mola.tif"
    assert calls["preview_grid"].options["factor"] == 4.0
    stereo = calls["preview_stereo"].argv
    assert stereo[:5] == ("parallel_stereo", "--stereo-algorithm", "asp_bm", "--subpixel-mode", "1")
    assert stereo[-3:] == ("preview/out", "--dem", "lowres-dem.tif")
    assert "--errorimage" in calls["preview_point2dem"].argv and "--tr" not in calls["preview_point2dem"].argv
    # the full pass fills the preview DEM's holes first (dem_mosaic); every step of it that takes --dem reads
    # that seed, under the one name mapproject recorded
    assert calls["preview_seed"].argv == ("dem_mosaic", "--hole-fill-length", "50", "preview/out-DEM.tif", "-o",
                                          "preview/out-seed-DEM.tif")
    assert calls["preview_seed"].inputs["dem"].source.key == f"preview_point2dem-{PAIR}"
    for step in ("mapproject_grid", "mapproject_left", "mapproject_right", "parallel_stereo"):
        dem = calls[step].inputs["dem"]
        assert (dem.name, dem.source.key, dem.source.role) == ("lowres-dem.tif", f"preview_seed-{PAIR}", "seed"), step
    assert calls["parallel_stereo"].argv[-2:] == ("--dem", "lowres-dem.tif")


def test_without_seeding_the_full_pass_keeps_the_low_resolution_dem():
    calls = {c.step: c for c in _recipe(preview=True, preview_seed=False).pair_calls(
        "/c/L.cub", "/c/R.cub", left_id=L, right_id=R)}
    assert calls["mapproject_left"].inputs["dem"].source == "/data/mola.tif" and "preview_seed" not in calls
    unfilled = {c.step: c for c in _recipe(preview=True, preview_hole_fill=None).pair_calls(
        "/c/L.cub", "/c/R.cub", left_id=L, right_id=R)}
    assert unfilled["mapproject_left"].inputs["dem"].source.key == f"preview_point2dem-{PAIR}"


def test_auto_means_on_with_a_low_resolution_dem_and_off_without():
    assert _recipe(preview="auto").pair_steps[0].name == "preview_grid"
    recipe = build_recipe(calibration="native", bundle_adjust=False, stereo_mode="monolithic", preview="auto")
    assert [s.name for s in recipe.pair_steps] == ["cam2map4stereo", "parallel_stereo", "point2dem"]


def test_the_preview_needs_a_low_resolution_dem():
    recipe = build_recipe(calibration="native", bundle_adjust=False, stereo_mode="monolithic", preview=True)
    with pytest.raises(ValueError, match="low-resolution DEM"):
        recipe.pair_calls("/c/L.cub", "/c/R.cub", left_id=L, right_id=R)


def test_tiled_stereo_counts_the_preview_among_its_prep_steps():
    from ctxdask.tools.recipe import TILED_PREP_STEPS

    recipe = _recipe(preview=True, stereo_mode="tiled")
    assert set(PREVIEW_STEPS) <= set(TILED_PREP_STEPS)
    assert recipe.tile_step.inputs["dem"].source.step == "preview_seed"


def test_the_preview_factor_is_at_least_one():
    from ctxdask.settings import SettingsError

    with pytest.raises((SettingsError, RecipeError)):
        _recipe(preview=True, preview_factor=0.5)


# ------------------------------------------------------------- through the stand-ins
@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    """Native level-1 cubes of both images, a low-resolution DEM, run options."""
    d = tmp_path_factory.mktemp("preview")
    for pid in (L, R):
        make_edr(d / f"{pid}.IMG", lines=16, line_samples=128)
    dem = d / "mola.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=16, height=16, count=1, dtype="float32",
                       crs="+proj=longlat +a=3396190 +b=3396190 +no_defs",
                       transform=from_origin(354.0, 2.3, 0.1, 0.1)) as dst:
        dst.write(np.full((1, 16, 16), -1200.0, dtype="float32"))
    old = os.environ["PATH"]
    os.environ["PATH"] = os.pathsep.join([str(STANDINS / "asp37"), standin_path()])
    try:
        options = RunOptions.from_config(work_dir=str(d / "work"), grace=1.0, poll_interval=0.05)
        out = {}
        for pid in (L, R):
            results: dict = {}
            for call in build_recipe(calibration="native").image_calls(pid, str(d / f"{pid}.IMG")):
                results[call.key] = run_step(call, *[results[k] for k in call.upstream], options=options)
            out[pid] = str(d / f"{pid}.cal.cub")
            shutil.copyfile(results[call.key].outputs["cube"], out[pid])
    finally:
        os.environ["PATH"] = old
    mola, _, _ = mola_shots(d / "mola.csv", terrain.settings(), n=50)
    return {"dir": d, "dem": str(dem), "cubes": out, "options": options, "mola": str(mola)}


def _run(cubes, env, tmp_path, steps=None, pc_align=False):
    env = {"PATH": os.pathsep.join([str(STANDINS / "asp37"), standin_path()]),
           "CTXDASK_STANDIN_MAP_SIZE": "64x48", "CTXDASK_STANDIN_CALLS": str(tmp_path / "calls.jsonl"), **env}
    recipe = _recipe(preview=True, lowres_dem=cubes["dem"], env=env, pc_align=pc_align)
    calls = recipe.pair_calls(cubes["cubes"][L], cubes["cubes"][R], left_id=L, right_id=R,
                              mola=cubes["mola"] if pc_align else None)
    options = RunOptions.from_config(work_dir=str(tmp_path / "work"), grace=1.0, poll_interval=0.05)
    results = {}
    for call in calls:
        if steps is not None and call.step not in steps:
            continue
        results[call.step] = run_step(call, *[results[k.split("-", 1)[0]] for k in call.upstream], options=options)
    return results


@pytest.mark.timeout(240)
def test_a_good_pair_passes_and_its_full_pass_runs_on_its_aligned_preview_dem(cubes, tmp_path):
    results = _run(cubes, {"CTXDASK_STANDIN_SECONDS_PER_MEGAPIXEL": "100"}, tmp_path,
                   steps=(*PREVIEW_STEPS, "preview_seed", "mapproject_grid", "mapproject_left", "mapproject_right",
                          "parallel_stereo"),
                   pc_align=True)
    verdict = json.loads(open(results["preview_qa"].outputs["preview"]).read())
    assert verdict["verdict"] == "pass" and verdict["reasons"] == [], verdict
    metrics = verdict["metrics"]
    assert metrics["valid_fraction"] > 0.9 and metrics["after_alignment"]["count"] > 10
    assert metrics["dem"].endswith("preview/out-align-DEM.tif") and "before_alignment" in metrics
    with rasterio.open(results["preview_left"].outputs["map"]) as p, \
            rasterio.open(results["mapproject_left"].outputs["map"]) as f:
        assert p.res[0] == pytest.approx(4 * f.res[0])  # the preview's coarse --tr
        assert f.tags()["DEM_FILE"] == "lowres-dem.tif"
    staged = os.path.join(results["mapproject_left"].workdir, "lowres-dem.tif")
    assert os.path.realpath(staged) == os.path.realpath(results["preview_seed"].outputs["seed"])
    # correlation time in proportion to the pixels: the preview correlates about 1/16 of them
    pixels = {}
    for step in ("preview_stereo", "parallel_stereo"):
        text = open(results[step].log_path).read()
        pixels[step] = int(re.search(r"correlating (\d+) pixels", text).group(1))
    assert 8 < pixels["parallel_stereo"] / pixels["preview_stereo"] <= 16, pixels
