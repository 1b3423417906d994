"""bundle_adjust's residual files, read as write_residual_logs writes them (BundleAdjustResiduals.cc:303-466)."""

from __future__ import annotations

import pytest

from ctxdask.quality.bundle import bundle_adjust_summary, read_pointmap, read_residual_stats
from ctxdask.quality.errors import QualityError

STATS = """# Pixel reprojection error per camera
# Image, mean, median, count
{a}, 2.5, 2.0, 40
{b}, 1.5, 1.25, 60
"""


def _write(path, text):
    path.write_text(text)
    return path


def test_cameras_are_read_with_their_names_and_nan_is_none(tmp_path):
    path = _write(tmp_path / "s.txt", STATS.format(a="dir/a, with comma.cub", b="b.cub")
                  + "c.cub, nan, nan, 0\nreference terrain residual errors:\n0, 3.5\n")
    cams = read_residual_stats(path)
    assert cams == [{"image": "dir/a, with comma.cub", "mean_px": 2.5, "median_px": 2.0, "count": 40},
                    {"image": "b.cub", "mean_px": 1.5, "median_px": 1.25, "count": 60},
                    {"image": "c.cub", "mean_px": None, "median_px": None, "count": 0}]


@pytest.mark.parametrize("text, message", [
    ("# Pixel reprojection error per camera\n", "no camera lines"),
    ("a.cub, 1.0, 2.0\n", "line 1: expected 'image, mean, median, count'"),
    ("a.cub, 1.0, x, 3\n", "line 1: 'x' is not a number"),
])
def test_a_file_not_in_the_format_is_one_line_naming_it(tmp_path, text, message):
    path = _write(tmp_path / "bad_stats.txt", text)
    with pytest.raises(QualityError) as caught:
        read_residual_stats(path)
    assert str(caught.value).startswith(f"{path}: {message}") and "\n" not in str(caught.value)
    with pytest.raises(QualityError, match="missing.txt: cannot read"):
        read_residual_stats(tmp_path / "missing.txt")


def test_point_map_counts_points_and_flags(tmp_path):
    path = _write(tmp_path / "p.csv", "# lon, lat, height_above_datum, mean_residual, num_observations\n"
                  "# Geodetic Datum --> Name: D_MARS\n1, 2, 3, 0.5, 2\n1, 2, 3, 0.25, 2 # from DEM\n"
                  "1, 2, 3, 1.5, 3 # GCP\n")
    assert read_pointmap(path) == {"points": 3, "mean_px": 0.75, "median_px": 0.5, "gcp": 1, "from_dem": 1}
    with pytest.raises(QualityError, match="line 1: expected 'lon, lat"):
        read_pointmap(_write(tmp_path / "q.csv", "1, 2, 3\n"))


def test_summary_weights_cameras_by_their_residuals(tmp_path):
    files = {"initial_stats": _write(tmp_path / "i.txt", STATS.format(a="a.cub", b="b.cub")),
             "final_stats": _write(tmp_path / "f.txt", STATS.format(a="a.cub", b="b.cub").replace("2.5", "0.5")
                                   .replace("1.5, 1.25", "0.25, 0.2"))}
    summary = bundle_adjust_summary(files)
    assert summary["initial"]["mean_px"] == pytest.approx((2.5 * 40 + 1.5 * 60) / 100)
    assert summary["final"]["mean_px"] == pytest.approx((0.5 * 40 + 0.25 * 60) / 100)
    assert summary["final"]["residuals"] == 100 and summary["initial"]["max_camera_median_px"] == 2.0
    assert summary["improvement"] == pytest.approx(0.35 / 1.9)
    with pytest.raises(QualityError, match="needs the final_stats residual file"):
        bundle_adjust_summary({"initial_stats": files["initial_stats"]})
