"""The bundle_adjust stand-in, and --bundle-adjust-prefix in the others, keep ASP's contract (at 55bf46022).

Citations: tests/standins/_asp_ba.py (bundle_adjust) and _asp_adjust.py (how programs find .adjust files).
"""

from __future__ import annotations

import pytest
import rasterio

from ctxdask.quality.bundle import bundle_adjust_summary, read_pointmap, read_residual_stats
from ctxdask.quality.errors import QualityError

from ..batch.tiled import LEFT, RIGHT, asp_runner

L_CUB, R_CUB = f"{LEFT}.cal.cub", f"{RIGHT}.cal.cub"
L_MAP, R_MAP = f"{LEFT}.map.tif", f"{RIGHT}.map.tif"
#: everything bundle_adjust writes for two ISIS cubes and -o ba/run (but the log, named by time and pid)
OUTPUTS = {f"run-{name}" for name in (
    f"{LEFT}.cal-stats.tif", f"{RIGHT}.cal-stats.tif", f"{LEFT}.cal__{RIGHT}.cal.match",
    f"{LEFT}.cal__{RIGHT}.cal-clean.match", f"{LEFT}.cal.adjust", f"{RIGHT}.cal.adjust",
    "initial_residuals_stats.txt", "initial_residuals_raw_pixels.txt", "initial_residuals_pointmap.csv",
    "final_residuals_stats.txt", "final_residuals_raw_pixels.txt", "final_residuals_pointmap.csv",
    "initial_points.kml", "final_points.kml", "image_list.txt", "camera_list.txt", "convergence_angles.txt",
    "camera_offsets.txt", "triangulation_offsets.txt")}


@pytest.fixture
def asp(tmp_path, monkeypatch):
    """Run a stand-in (ASP 3.7 on PATH) in a folder holding two spiceinit-ed cubes and ``dem.tif``."""
    return asp_runner(tmp_path, monkeypatch)


def _ba(asp, *extra, prefix="ba/run", **env):
    return asp("bundle_adjust", "--camera-weight", "0", "--tri-weight", "0.1", "--tri-robust-threshold", "0.1",
               *extra, L_CUB, R_CUB, "-o", prefix, **env)


def test_an_unknown_option_is_boost_s_error_and_exit_1(asp):
    r = asp("bundle_adjust", "--frobnicate", L_CUB, R_CUB, "-o", "ba/run")
    # check_command_line (AspProgramOptions.cc:103-106) -> ASP_STANDARD_CATCHES (Macros.h:26-28): stdout, 1
    assert r.returncode == 1
    assert "ERROR: Error parsing input:\nunrecognised option '--frobnicate'" in r.stdout
    assert "Usage: bundle_adjust <images> <cameras> <optional ground control points> -o <output prefix>" in r.stdout
    assert not (asp.dir / "ba").exists()


@pytest.mark.parametrize("argv, message", [
    ([L_CUB, R_CUB], "ERROR: Missing the output prefix.\nUsage: bundle_adjust"),  # BundleAdjustParse.cc:1317
    (["missing.cub", R_CUB, "-o", "ba/run"], "ERROR: Cannot find the file: missing.cub."),  # FileUtils.cc:274-277
    ([L_CUB, "old-run.adjust", "-o", "ba/run"], "is an adjustment. Use the original cameras and the option "
                                                "--bundle-adjust-prefix."),
    ([L_CUB, R_CUB, "-o", "ba/run", "--heights-from-dem", "dem.tif"],
     "The value of --heights-from-dem-uncertainty must be positive."),  # :415-418
    ([L_CUB, R_CUB, "-o", "ba/run", "--heights-from-dem-uncertainty", "5"],
     "is set, but neither --heights-from-dem nor --heights-from-dem-list is set."),
    ([L_CUB, R_CUB, "-o", "ba/run", "--num-iterations", "10", "--max-iterations", "10"],
     "Cannot set both --num-iterations and --max-iterations."),
    ([L_CUB, R_CUB, "-o", "ba/run", "--num-passes", "0"], "Error: Expecting at least one bundle adjust pass."),
    ([L_CUB, R_CUB, "-o", "ba/run", "--min-matches", "1000"], "Error: Too few points remain after filtering."),
])
def test_refusals_are_argument_errors_on_stdout_with_exit_1(asp, argv, message):
    (asp.dir / "old-run.adjust").write_text("0 0 0\n1 0 0 0\n")
    r = asp("bundle_adjust", *argv)
    assert r.returncode == 1 and message in r.stdout, r.stdout + r.stderr
    assert not list(asp.dir.glob("ba/*.adjust"))


def test_outputs_are_named_as_asp_names_them_and_residuals_fall(asp):
    r = _ba(asp)
    assert r.returncode == 0, r.stdout + r.stderr
    made = {p.name for p in (asp.dir / "ba").iterdir()}
    logs = {n for n in made if n.startswith("run-log-bundle_adjust-")}
    assert made - logs == OUTPUTS and len(logs) == 1
    # .adjust: translation, then the quaternion w x y z (BaseCameraUtils.cc:172-182)
    adjust = (asp.dir / "ba" / f"run-{LEFT}.cal.adjust").read_text().split("\n")
    assert len(adjust[0].split()) == 3 and len(adjust[1].split()) == 4
    first = read_residual_stats(asp.dir / "ba" / "run-initial_residuals_stats.txt")
    last = read_residual_stats(asp.dir / "ba" / "run-final_residuals_stats.txt")
    assert [c["image"] for c in first] == [L_CUB, R_CUB] == [c["image"] for c in last]
    for before, after in zip(first, last):
        assert after["mean_px"] < 1.0 < before["mean_px"] and after["median_px"] < before["median_px"]
        # outliers are removed between the two passes: fewer residuals at the end, still more than a dozen
        assert 12 < after["count"] < before["count"]
    points = read_pointmap(asp.dir / "ba" / "run-final_residuals_pointmap.csv")
    assert points["points"] == last[0]["count"] and points["from_dem"] == 0
    # the same pair gives the same numbers
    again = _ba(asp, prefix="again/run")
    assert again.returncode == 0
    assert (asp.dir / "again" / "run-final_residuals_stats.txt").read_text() == \
        (asp.dir / "ba" / "run-final_residuals_stats.txt").read_text()


def test_one_pass_keeps_every_point_and_the_dem_constraint_flags_them(asp):
    r = _ba(asp, "--num-passes", "1", "--heights-from-dem", "dem.tif", "--heights-from-dem-uncertainty", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    summary = bundle_adjust_summary({f"{w}_{k}": asp.dir / "ba" / f"run-{w}_residuals_{f}"
                                     for w in ("initial", "final") for k, f in (("stats", "stats.txt"),
                                                                                 ("pointmap", "pointmap.csv"))})
    assert summary["initial"]["residuals"] == summary["final"]["residuals"]
    assert summary["final"]["pointmap"]["from_dem"] == summary["final"]["pointmap"]["points"] > 0
    assert 0 < summary["improvement"] < 1


def test_a_partial_run_leaves_residual_statistics_the_parser_refuses(asp):
    r = _ba(asp, CTXDASK_STANDIN_FAULT="partial")
    assert r.returncode == 0
    with pytest.raises(QualityError, match="run-initial_residuals_stats.txt: line 3: expected .image, mean, median, count."):
        read_residual_stats(asp.dir / "ba" / "run-initial_residuals_stats.txt")
    failed = _ba(asp, prefix="other/run", CTXDASK_STANDIN_FAULT="fail", CTXDASK_STANDIN_FAULT_PROGRAMS="bundle_adjust")
    assert failed.returncode == 1 and not (asp.dir / "other" / f"run-{LEFT}.cal.adjust").exists()


# ------------------------------------------------------- --bundle-adjust-prefix
def _grid(asp):
    q = asp("mapproject_single", "--query-projection", "--write-wkt", "--bundle-adjust-prefix", "ba/run", "dem.tif",
            L_CUB, "q.tif")
    assert q.returncode == 0, q.stdout + q.stderr
    wkt_file = dict(ln.split(",", 1) for ln in q.stdout.splitlines() if "," in ln)["projection_wkt_file"]
    return (asp.dir / wkt_file).read_text().strip()


def test_mapproject_needs_the_adjustment_and_records_the_prefix(asp):
    missing = asp("mapproject", "--bundle-adjust-prefix", "ba/run", "dem.tif", L_CUB, L_MAP)
    # load_adjusted_model (BaseCameraUtils.cc:109-110): InputErr, printed on stderr (Macros.h:29-31)
    assert missing.returncode == 1 and f"ERROR: Missing adjusted camera model: ba/run-{LEFT}.cal.adjust." in \
        missing.stdout + missing.stderr
    assert _ba(asp).returncode == 0
    wkt = _grid(asp)
    for cub, out in ((L_CUB, L_MAP), (R_CUB, R_MAP)):
        r = asp("mapproject", "--bundle-adjust-prefix", "ba/run", "--t_srs", wkt, "--tr", "6", "dem.tif", cub, out)
        assert r.returncode == 0, r.stdout + r.stderr
    with rasterio.open(asp.dir / L_MAP) as src:
        tags = src.tags()
    # MapprojectImage.cc:215-238
    assert tags["BUNDLE_ADJUST_PREFIX"] == "ba/run" and tags["ADJUSTMENT_TRANSLATION"].count(",") == 2


def test_stereo_programs_find_adjustments_by_camera_name_and_by_the_recorded_prefix(asp):
    assert _ba(asp).returncode == 0
    wkt = _grid(asp)
    for cub, out in ((L_CUB, L_MAP), (R_CUB, R_MAP)):
        assert asp("mapproject", "--bundle-adjust-prefix", "ba/run", "--t_srs", wkt, "--tr", "6", "dem.tif", cub,
                   out).returncode == 0
    files = [L_MAP, R_MAP, L_CUB, R_CUB, "run/out", "--dem", "dem.tif"]
    ok = asp("stereo_parse", *files, "--bundle-adjust-prefix", "ba/run")
    assert ok.returncode == 0 and "out_prefix,run/out" in ok.stdout, ok.stdout + ok.stderr
    other = asp("stereo_parse", *files, "--bundle-adjust-prefix", "elsewhere/run")
    assert other.returncode == 1 and f"Missing adjusted camera model: elsewhere/run-{LEFT}.cal.adjust." in other.stderr
    epipolar = asp("stereo_parse", *files, "--bundle-adjust-prefix", "ba/run", "--alignment-method", "epipolar")
    assert "Epipolar alignment does not support using a bundle adjust prefix." in epipolar.stdout
    # the map images were made with ba/run: without its .adjust the cameras that undo them cannot load
    (asp.dir / "ba" / f"run-{RIGHT}.cal.adjust").unlink()
    gone = asp("stereo_parse", *files)
    assert gone.returncode == 1 and f"Failed to load the camera model from {R_CUB} for image: {R_CUB}." in gone.stdout


def test_parallel_stereo_of_the_cubes_with_adjustments(asp):
    cubes = [L_CUB, R_CUB, "results/out"]
    missing = asp("parallel_stereo", "--alignment-method", "affineepipolar", "--bundle-adjust-prefix", "ba/run", *cubes)
    assert missing.returncode == 1 and "Missing adjusted camera model" in missing.stdout + missing.stderr
    assert _ba(asp).returncode == 0
    ok = asp("parallel_stereo", "--alignment-method", "affineepipolar", "--bundle-adjust-prefix", "ba/run", *cubes)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (asp.dir / "results" / "out-PC.tif").exists()
