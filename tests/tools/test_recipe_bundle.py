"""Bundle adjustment in the recipe: the step, its options, and the adjustments every camera user gets."""

from __future__ import annotations

import pytest

from ctxdask.exceptions import RecipeError
from ctxdask.tools.recipe import build_recipe
from ctxdask.tools.recipe.bundle import PREFIX

from .conftest import STANDINS

LEFT, RIGHT = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"
ADJUSTS = {"left_adjust": f"{PREFIX}-{LEFT}.cal.adjust", "right_adjust": f"{PREFIX}-{RIGHT}.cal.adjust"}
#: the programs that take cameras, and which .adjust each needs (a mapproject maps one image)
CAMERA_USERS = {"mapproject_grid": ADJUSTS, "mapproject_left": {"left_adjust": ADJUSTS["left_adjust"]},
                "mapproject_right": {"right_adjust": ADJUSTS["right_adjust"]}, "stereo_parse": ADJUSTS,
                "stereo_stats": ADJUSTS, "parallel_stereo": ADJUSTS}


def _calls(recipe, **kw):
    return {c.step: c for c in recipe.pair_calls("/l.cub", "/r.cub", left_id=LEFT, right_id=RIGHT, **kw)}


def _recipe(mode: str, adjust=True, path: str = "/nowhere", **kw):
    return build_recipe(stereo_mode=mode, bundle_adjust=adjust, lowres_dem="/data/megdr.tif" if mode == "tiled"
                        else kw.pop("lowres_dem", None), env={"PATH": path}, **kw)


def test_the_step_is_the_documented_isis_command():
    calls = _calls(_recipe("monolithic"))
    ba = calls["bundle_adjust"]
    # docs/tools/bundle_adjust.rst, "ISIS cameras"; -o at the end as in the usage line
    assert list(ba.argv) == ["bundle_adjust", "--camera-weight", "0", "--tri-weight", "0.1", "--tri-robust-threshold",
                             "0.1", f"{LEFT}.cal.cub", f"{RIGHT}.cal.cub", "-o", PREFIX]
    assert ba.inputs["left"].source == "/l.cub" and ba.inputs["left"].name == f"{LEFT}.cal.cub"
    assert {r: ba.outputs[r] for r in ADJUSTS} == ADJUSTS
    assert ba.outputs["final_stats"] == f"{PREFIX}-final_residuals_stats.txt"
    assert ba.timeout == 7200.0


@pytest.mark.parametrize("mode", ["monolithic", "tiled"])
def test_on_in_both_modes_first_and_every_camera_user_gets_the_prefix_and_its_files(mode):
    recipe = _recipe(mode)
    calls = _calls(recipe)
    assert recipe.pair_steps[0].name == "bundle_adjust" and next(iter(calls)) == "bundle_adjust"
    users = {name: call for name, call in calls.items() if name in CAMERA_USERS}
    assert len(users) == (5 if mode == "tiled" else 1)
    steps = [*users.values()]
    if recipe.tile_step is not None:
        tile = recipe.tile_step
        assert "--bundle-adjust-prefix" in tile.args and tile.args[tile.args.index("--bundle-adjust-prefix") + 1] == \
            PREFIX
        assert {r: tile.inputs[r].source for r in ADJUSTS} == {r: ("bundle_adjust", r) for r in ADJUSTS}
    ba_key = calls["bundle_adjust"].key
    for call in steps:
        wanted = CAMERA_USERS[call.step]
        # each .adjust staged under the name ASP looks for, from the bundle_adjust step's output of that role
        assert {r: call.inputs[r].name for r in wanted} == wanted
        assert all(call.inputs[r].source.key == ba_key and call.inputs[r].source.role == r for r in wanted)
        if call.kind == "native":  # mapgrid's callables run mapproject(_single) with the prefix
            assert call.options["bundle_adjust_prefix"] == PREFIX
        else:
            assert call.argv[call.argv.index("--bundle-adjust-prefix") + 1] == PREFIX
    assert "cam2map4stereo" not in calls  # cam2map cannot use adjustments (docs/examples/ctx.rst:86-89)


def test_monolithic_with_a_lowres_dem_mapprojects_as_tiled_mode_does():
    calls = _calls(_recipe("monolithic", lowres_dem="/data/megdr.tif"))
    assert list(calls) == ["bundle_adjust", "mapproject_grid", "mapproject_left", "mapproject_right",
                           "parallel_stereo", "point2dem"]
    argv = list(calls["parallel_stereo"].argv)
    assert argv[argv.index(f"{LEFT}.map.tif"):argv.index("--dem") + 2] == [
        f"{LEFT}.map.tif", f"{RIGHT}.map.tif", f"{LEFT}.cal.cub", f"{RIGHT}.cal.cub", "results/out", "--dem",
        "lowres-dem.tif"]


def test_monolithic_without_a_dem_runs_stereo_on_the_cubes_with_asp_s_own_alignment():
    argv = list(_calls(_recipe("monolithic"))["parallel_stereo"].argv)
    # stereo-default's alignment-method none is for map cubes; the command line wins over stereo.default
    assert argv[argv.index("--alignment-method") + 1] == "affineepipolar"
    assert argv[-3:] == [f"{LEFT}.cal.cub", f"{RIGHT}.cal.cub", "results/out"]


@pytest.mark.parametrize("mode", ["monolithic", "tiled"])
def test_off_or_not_installed_leaves_the_chain_as_it_was(mode):
    for recipe in (_recipe(mode, adjust=False, path=str(STANDINS)), _recipe(mode, adjust="auto")):
        calls = _calls(recipe)
        assert "bundle_adjust" not in calls
        assert not any("--bundle-adjust-prefix" in c.argv or "bundle_adjust_prefix" in c.options
                       for c in calls.values())
        assert not any(r in c.inputs for c in calls.values() for r in ADJUSTS)
    auto = _recipe(mode, adjust="auto", path=str(STANDINS))  # the stand-in bundle_adjust is installed
    assert auto.settings.tools.asp.bundle_adjust is True and "bundle_adjust" in _calls(auto)


def test_heights_from_dem_constrains_to_the_lowres_dem():
    recipe = _recipe("monolithic", heights_from_dem=True, heights_from_dem_uncertainty=25.0)
    with pytest.raises(ValueError, match="tools.asp.lowres-dem"):
        _calls(recipe)
    ba = _calls(recipe, lowres_dem="/data/megdr.tif")["bundle_adjust"]
    argv = list(ba.argv)
    assert argv[argv.index("--heights-from-dem") + 1] == "lowres-dem.tif" == ba.inputs["dem"].name
    assert argv[argv.index("--heights-from-dem-uncertainty") + 1] == "25"
    assert ba.inputs["dem"].source == "/data/megdr.tif"
    assert "--heights-from-dem" not in _calls(_recipe("monolithic"))["bundle_adjust"].argv  # off by default


def test_options_are_rendered_and_the_recipe_s_own_are_refused():
    options = {"num-passes": 3, "datum": "D_MARS", "remove-outliers-params": [75, 3, 5, 8], "skip-matching": True,
               "ip-per-tile": None}
    argv = list(_calls(_recipe("monolithic", bundle_adjust_options=options))["bundle_adjust"].argv)
    assert argv[1:argv.index(f"{LEFT}.cal.cub")] == ["--camera-weight", "0", "--tri-weight", "0.1",
                                                     "--tri-robust-threshold", "0.1", "--num-passes", "3", "--datum",
                                                     "D_MARS", "--remove-outliers-params", "75 3 5 8",
                                                     "--skip-matching"]
    with pytest.raises(RecipeError, match="--heights-from-dem is set by the recipe itself"):
        _recipe("monolithic", bundle_adjust_options={"heights-from-dem": "x.tif"})


@pytest.mark.parametrize("mode", ["monolithic", "tiled"])
def test_the_graph_check_passes_and_catches_a_missing_bundle_adjust(mode, monkeypatch):
    recipe = _recipe(mode)  # check_graph ran when it was built
    assert "bundle_adjust" in [s.name for s in recipe.pair_steps]
    from ctxdask.tools.recipe import chain

    def without(s):  # a recipe whose cameras users read .adjust files nobody makes
        stereo, steps = real(s)
        return stereo, tuple(x for x in steps if x.name != "bundle_adjust")

    real = chain.pair_stages
    monkeypatch.setattr(chain, "pair_stages", without)
    with pytest.raises(RecipeError, match="reads 'bundle_adjust:left_adjust', which no pair step produces"):
        _recipe(mode)
