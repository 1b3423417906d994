"""The CTX recipe: argv against the documented ISIS/ASP commands, settings, native choice."""

from __future__ import annotations

import os
import shlex

import dask.config
import pytest

from ctxdask.settings import Settings, SettingsError, current
from ctxdask.tools.native import load_callable
from ctxdask.tools.recipe import Ref, build_recipe, check_product_id
from ctxdask.tools.recipe import settings as recipe_settings

# The ASP documentation's CTX example (docs/examples/ctx.rst) with its short product names
LEFT, RIGHT = "P02_001981_1823", "P03_002258_1817"
DOC_ISIS = [
    "mroctx2isis from = P02_001981_1823.IMG to = P02_001981_1823.cub",
    "spiceinit from = P02_001981_1823.cub web = true",
    "ctxcal from = P02_001981_1823.cub to = P02_001981_1823.cal.cub",
]
DOC_CAM2MAP = "cam2map4stereo.py P02_001981_1823.cal.cub P03_002258_1817.cal.cub"
DOC_STEREO = ("parallel_stereo --stereo-algorithm asp_mgm --subpixel-mode 9 "
              "P02_001981_1823.map.cub P03_002258_1817.map.cub results/out")


def isis_tokens(command: str) -> tuple[str, dict]:
    """ISIS command -> (program, {parameter: value}); spaces around '=' and the
    spelling of booleans (true/yes) do not matter to ISIS."""
    program, *rest = shlex.split(command.replace(" = ", "="))
    params = {}
    for token in rest:
        key, _, value = token.partition("=")
        value = {"true": "yes", "t": "yes", "y": "yes"}.get(value.lower(), value)
        params[key.lower()] = value
    return program, params


def asp_options(argv) -> tuple[dict, list]:
    """ASP argv -> ({option: value or True}, positionals) for order-free comparison."""
    flags = {"--orthoimage", "--errorimage", "--save-inv-transformed-reference-points"}
    opts, pos, it = {}, [], iter(argv[1:])
    for token in it:
        if token.startswith("-") and not token[1:2].isdigit():
            opts[token] = True if token in flags else next(it)
        else:
            pos.append(token)
    return opts, pos


def without_stereo_file() -> Settings:
    """The configured settings with no stereo.default option set (the documented commands pass none).

    A mapping keyword is merged into the configured mapping, so the empty one is given whole.
    """
    return current().override({"tools.asp.stereo-default": {}})


@pytest.fixture
def doc_recipe():
    return build_recipe(without_stereo_file(), calibration="isis", even_odd=False, spiceinit_web=True)


def test_image_steps_match_the_documented_isis_commands(doc_recipe):
    calls = doc_recipe.image_calls(LEFT, "/data/P02_001981_1823_XI_02N356W.IMG")
    assert [c.step for c in calls] == ["mroctx2isis", "spiceinit", "ctxcal"]
    for call, doc in zip(calls, DOC_ISIS):
        assert isis_tokens(shlex.join(call.argv)) == isis_tokens(doc)
    # the EDR is staged under the documented name; spiceinit works on its own copy
    assert calls[0].inputs["edr"].source == "/data/P02_001981_1823_XI_02N356W.IMG"
    assert calls[1].inputs["cube"].copy and calls[1].inputs["cube"].source == Ref(calls[0].key, "cube")


def test_pair_steps_match_the_documented_asp_commands(doc_recipe):
    left = doc_recipe.image_calls(LEFT, "/d/l.IMG")[-1]
    right = doc_recipe.image_calls(RIGHT, "/d/r.IMG")[-1]
    calls = {c.step: c for c in doc_recipe.pair_calls(left, right)}
    assert list(calls) == ["cam2map4stereo", "parallel_stereo", "point2dem"]
    assert list(calls["cam2map4stereo"].argv) == shlex.split(DOC_CAM2MAP)
    # cam2map4stereo.py names its outputs <first dot-part>.map.cub
    assert dict(calls["cam2map4stereo"].outputs) == {"left": f"{LEFT}.map.cub", "right": f"{RIGHT}.map.cub"}
    assert list(calls["parallel_stereo"].argv) == shlex.split(DOC_STEREO)
    assert calls["parallel_stereo"].outputs["pc"] == "results/out-PC.tif"
    # point2dem docs: "point2dem run/run-PC.tif -r moon --errorimage --orthoimage run/run-L.tif",
    # with the clouds first and the L.tif textures after them
    opts, pos = asp_options(calls["point2dem"].argv)
    assert opts == {"-r": "mars", "--orthoimage": True, "--errorimage": True}
    assert pos == ["results/out-PC.tif", "results/out-L.tif"]
    assert dict(calls["point2dem"].outputs) == {
        "dem": "results/out-DEM.tif", "ortho": "results/out-DRG.tif",
        "error": "results/out-IntersectionErr.tif"}
    assert calls["parallel_stereo"].resources == {"stereo": 1}
    assert calls["cam2map4stereo"].upstream == sorted([left.key, right.key])


def test_alignment_and_geoid_steps():
    recipe = build_recipe(without_stereo_file(), pc_align=True, dem_geoid=True, dem_spacing=18)
    calls = {c.step: c for c in recipe.pair_calls("/x/l.cub", "/x/r.cub", left_id=LEFT,
                                                    right_id=RIGHT, mola="/m/mola.csv")}
    pc = calls["pc_align"]
    # native (ctxdask.tools.align): max displacement from the data, rerun on pc_align's warning
    assert pc.kind == "native" and pc.callable == "ctxdask.tools.align:align_to_mola"
    assert list(pc.argv[4:6]) == ["results/out-PC.tif", "results/out-align-trans_reference.tif"]
    assert "mola=mola.csv" in pc.argv and "dem=results/out-DEM.tif" in pc.argv
    assert pc.options["csv_format"] == "1:lon 2:lat 3:radius_km" and pc.options["max_displacement"] is None
    assert pc.options["factor"] == 3.0
    assert set(pc.outputs) == {"cloud", "transform", "runs", "beg_errors", "end_errors", "points"}
    assert pc.inputs["mola"].source == "/m/mola.csv"
    assert pc.inputs["dem"].source.key == calls["point2dem"].key
    # native (ctxdask.tools.align:grid_aligned): point2dem on the unaligned DEM's --tr and --t_srs
    grid = calls["point2dem_aligned"]
    assert grid.kind == "native" and grid.callable == "ctxdask.tools.align:grid_aligned"
    assert list(grid.argv[4:6]) == ["results/out-align-trans_reference.tif", "results/out-align-DEM.tif"]
    assert {"like=results/out-DEM.tif", "texture=results/out-L.tif", "ortho=results/out-align-DRG.tif",
            "error=results/out-align-IntersectionErr.tif"} <= set(grid.argv)
    assert grid.inputs["like"].source.key == calls["point2dem"].key
    assert grid.inputs["cloud"].source == Ref(pc.key, "cloud")
    assert asp_options(calls["point2dem"].argv)[0]["--tr"] == "18"
    # without -o dem_geoid writes ./<stem>-adj.tif (dem_geoid.cc:248): the prefix is explicit
    assert list(calls["dem_geoid"].argv) == ["dem_geoid", "--geoid", "MOLA", "results/out-align-DEM.tif",
                                             "-o", "results/out-align-DEM"]
    assert calls["dem_geoid"].outputs["dem"] == "results/out-align-DEM-adj.tif"
    assert calls["dem_geoid"].inputs["dem"].source.key == calls["point2dem_aligned"].key
    with pytest.raises(ValueError, match="MOLA"):
        recipe.pair_calls("/x/l.cub", "/x/r.cub", left_id=LEFT, right_id=RIGHT)


def test_stereo_default_option_set_is_written_and_passed():
    recipe = build_recipe(stereo_default={"alignment-method": "none", "force-use-entire-range": True,
                                          "corr-kernel": [7, 7], "skipped": False})
    call = recipe.pair_calls("/l.cub", "/r.cub", left_id=LEFT, right_id=RIGHT)[1]
    argv = list(call.argv)
    assert argv[argv.index("--stereo-file") + 1] == "stereo.default"
    lines = call.files["stereo.default"].splitlines()[1:]
    assert lines == ["alignment-method none", "force-use-entire-range", "corr-kernel 7 7"]
    # the CTX defaults from the ASP documentation still come first on the command line
    assert argv[1:5] == ["--stereo-algorithm", "asp_mgm", "--subpixel-mode", "9"]


def test_settings_are_read_at_call_time_and_overridable():
    with dask.config.set({"ctxdask.tools.timeouts.parallel_stereo": 123,
                          "ctxdask.tools.asp.subpixel-mode": 3}):
        recipe = build_recipe(timeouts={"point2dem": 7})
    steps = {s.name: s for s in recipe.pair_steps}
    assert steps["parallel_stereo"].timeout == 123 and steps["point2dem"].timeout == 7
    assert steps["cam2map4stereo"].timeout == 7200  # untouched default from ctxdask.yaml
    assert "3" in steps["parallel_stereo"].args
    assert build_recipe().settings.tools.asp.subpixel_mode == 9  # outside the context: the default again
    with pytest.raises(TypeError, match="unknown"):
        build_recipe(no_such_setting=1)
    with pytest.raises(TypeError, match="'retries' is unknown"):  # batch.retries: not a setting the recipe reads
        build_recipe(retries=3)
    with pytest.raises(SettingsError, match="isis"):
        build_recipe(calibration="gdal")


def test_keywords_name_the_model_settings_the_recipe_reads():
    """A keyword is the field name of one setting under tools, quality.dem-alignment or flat.dir."""
    known = recipe_settings.keywords()
    assert known["stereo_mode"] == ("tools.asp.stereo_mode",) and known["size"] == ("tools.asp.tiles.size",)
    assert known["factor"] == ("quality.dem_alignment.factor",) and known["dir"] == ("flat.dir",)
    assert known["spiceinit_web"] == ("tools.isis.spiceinit_web",) and "method" not in known  # flat.build: not read
    recipe = build_recipe(factor=4.0, corr_memory_limit_mb=1024, stereo_mode="tiled", lowres_dem="/m.tif")
    assert recipe.settings.quality.dem_alignment.factor == 4.0
    assert recipe.settings.tools.asp.corr_memory_limit_mb == 1024


def test_a_keyword_naming_several_settings_is_refused(monkeypatch):
    both = recipe_settings.keywords(("tools", "batch"))
    assert both["timeouts"] == ("tools.timeouts", "batch.timeouts")
    monkeypatch.setattr(recipe_settings, "keywords", lambda: both)
    with pytest.raises(TypeError, match=r"'timeouts' is ambiguous: tools.timeouts or batch.timeouts"):
        build_recipe(timeouts={"ctxcal": 5})


def test_mapping_keywords_are_merged_and_given_settings_are_used():
    with dask.config.set({"ctxdask.tools.env": {"ISISROOT": "/isis"}, "ctxdask.tools.asp.subpixel-mode": 3}):
        recipe = build_recipe(env={"PATH": "/bin"}, resources={"ctxcal": {"cal": 1}})
        shipped = build_recipe(Settings(), calibration="isis")  # the settings given, not the configuration
    assert recipe.settings.tools.env == {"ISISROOT": "/isis", "PATH": "/bin"}
    assert recipe.settings.tools.resources["ctxcal"] == {"cal": 1}
    assert recipe.settings.tools.resources["parallel_stereo"] == {"stereo": 1}
    assert shipped.settings.tools.asp.subpixel_mode == 9 and shipped.settings.tools.env == {}
    assert shipped.image_calls(LEFT, "/e")[0].env == {}
    assert recipe.image_calls(LEFT, "/e")[0].env == {"ISISROOT": "/isis", "PATH": "/bin"}


def test_native_calibration_replaces_the_isis_programs():
    recipe = build_recipe(calibration="native", native_calibrate="shutil:copyfile")
    calls = recipe.image_calls(LEFT, "/d/l.IMG")
    assert [c.step for c in calls] == ["calibrate", "spiceinit"]
    native, spice = calls
    assert native.kind == "native" and native.callable == "shutil:copyfile"
    assert list(native.argv[:4]) == ["python", "-m", "ctxdask.tools.native", "shutil:copyfile"]
    assert list(native.argv[4:6]) == [f"{LEFT}.IMG", f"{LEFT}.cal.cub"]
    assert native.options == {"even_odd": True}
    assert spice.inputs["cube"].source == Ref(native.key, "cube") and spice.inputs["cube"].copy
    assert "mroctx2isis" not in recipe.programs() and "python" in recipe.programs()
    import shutil

    assert load_callable(native.callable) is shutil.copyfile
    # summing 2: no even/odd correction (ISIS defines it for summing 1 only)
    assert recipe.image_calls(LEFT, "/d/l.IMG", summing=2)[0].options == {"even_odd": False}
    # the pair steps consume whichever cube the image chain ends with
    pair = recipe.pair_calls(spice, recipe.image_calls(RIGHT, "/d/r.IMG")[-1])
    assert pair[0].inputs["left"].source == Ref(spice.key, "cube")


def test_isis_even_odd_selection():
    recipe = build_recipe(calibration="isis", even_odd=True)
    assert [c.step for c in recipe.image_calls(LEFT, "/e")][-1] == "ctxevenodd"
    assert [c.step for c in recipe.image_calls(LEFT, "/e", summing=2)][-1] == "ctxcal"
    with dask.config.set({"ctxdask.tools.calibration": "native"}):
        assert build_recipe().image_steps[0].name == "calibrate"


def test_keys_are_deterministic_and_unique():
    recipe = build_recipe(calibration="isis", pc_align=True, dem_geoid=True)
    a = recipe.image_calls(LEFT, "/l") + recipe.image_calls(RIGHT, "/r")
    calls = a + recipe.pair_calls(a[3], a[7], mola="/m.csv")
    again = recipe.image_calls(LEFT, "/l")
    assert [c.key for c in again] == [c.key for c in a[:4]]
    assert len({c.key for c in calls}) == len(calls)
    assert calls[-1].key == f"dem_geoid-{LEFT}-{RIGHT}"


@pytest.mark.parametrize("bad", ["../etc", "a b", "x;rm -rf", "P02.IMG", "", "a=b", "$(id)"])
def test_unsafe_product_ids_never_reach_argv(bad):
    with pytest.raises(ValueError):
        check_product_id(bad)
    with pytest.raises(ValueError):
        build_recipe().image_calls(bad, "/e")


def test_settings_object_pickles():
    import pickle

    s = build_recipe(timeouts={"ctxcal": 5}).settings
    assert s.tools.timeouts["ctxcal"] == 5 and pickle.loads(pickle.dumps(s)) == s
    call = build_recipe().image_calls(LEFT, "/e")[0]
    assert pickle.loads(pickle.dumps(call)) == call


def test_native_calibration_gets_the_flat_folder_setting(tmp_path):
    """Setting ctxdask.flat.dir reaches calibrate(flat=FOLDER) through the native step's options."""
    assert "flat" not in build_recipe(calibration="native").image_calls(LEFT, "/d/l.IMG")[0].options
    with dask.config.set({"ctxdask.flat.dir": str(tmp_path)}):
        recipe = build_recipe(calibration="native")
    native = recipe.image_calls(LEFT, "/d/l.IMG")[0]
    assert native.options == {"even_odd": True, "flat": str(tmp_path)}
    assert recipe.image_calls(LEFT, "/d/l.IMG", summing=2)[0].options["flat"] == str(tmp_path)


def test_recipe_settings_defaults_are_the_yaml_ones():
    """Every default is written once, in ctxdask.yaml: the bare settings are the configured ones.

    (In a fresh process: the tests' own configuration here sets some.)"""
    import subprocess
    import sys

    code = ("from ctxdask.settings import Settings, current\n"
            "from ctxdask.tools.recipe import build_recipe\n"
            "print(Settings() == current(), build_recipe(Settings()).settings == build_recipe().settings,\n"
            "      build_recipe().settings.tools.asp.stereo_algorithm)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.split() == ["True", "True", "asp_mgm"], out.stderr


def test_a_step_without_a_deadline_is_named():
    from ctxdask.exceptions import RecipeError
    from ctxdask.tools.recipe import Recipe

    settings = Settings()
    timeouts = {k: v for k, v in settings.tools.timeouts.items() if k != "ctxcal"}
    with pytest.raises(RecipeError, match=r"no deadline for recipe step 'ctxcal': set tools.timeouts.ctxcal"):
        Recipe(settings.override({"tools.calibration": "isis", "tools.timeouts": timeouts}))
