"""Thumbnails (lazy block means, stretch, PNG read back) and grading."""

from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from PIL import Image

import ctxdask
from ctxdask.companding import SQROOT_TABLE
from ctxdask.quality import Grade, QualityError, grade, measure, stretch, thumbnail, write_png
from ctxdask.testing import make_edr


def _reference_means(values: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = -(-values.shape[0] // factor), -(-values.shape[1] // factor)
    out = np.full((rows, cols), np.nan)
    for i in range(rows):
        for j in range(cols):
            cell = values[i * factor : (i + 1) * factor, j * factor : (j + 1) * factor]
            if np.isfinite(cell).any():
                out[i, j] = np.nanmean(cell)
    return out


@pytest.mark.parametrize("chunks", [(7, 5), (64, 100), (100, 33)])
def test_thumbnail_is_block_means_whatever_the_chunks(chunks):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(100, 70)).astype(np.float32)
    values[10:14, :] = np.nan
    values[40:50, 20:30] = np.nan  # a whole 10 x 10 cell empty
    image = xr.DataArray(da.from_array(values, chunks=chunks), dims=("line", "sample"))
    thumb = thumbnail(image, size=10)
    assert thumb.attrs["factor"] == 10 and thumb.shape == (10, 7)
    assert isinstance(thumb.data, da.Array)
    np.testing.assert_allclose(thumb.values, _reference_means(values, 10), rtol=1e-5, equal_nan=True)
    assert np.isnan(thumb.values[4, 2])
    eager = thumbnail(image.compute(), size=10)
    np.testing.assert_allclose(eager.values, thumb.values, rtol=1e-6, equal_nan=True)


def test_thumbnail_size_and_edge_cells():
    image = xr.DataArray(np.arange(23 * 9, dtype=np.float64).reshape(23, 9), dims=("y", "x"))
    thumb = thumbnail(image, size=5)  # factor ceil(23 / 5) = 5 -> 5 x 2 cells
    assert thumb.shape == (5, 2) and max(thumb.shape) <= 5
    assert thumb.values[-1, -1] == pytest.approx(image.values[20:, 5:].mean())
    assert thumbnail(image, size=100).shape == image.shape  # never enlarged
    with pytest.raises(QualityError):
        thumbnail(image, size=0)


def test_raw_thumbnail_is_decompanded_with_fill_left_out(tmp_path):
    path = make_edr(tmp_path / "t.IMG", lines=64, line_samples=256, lost_lines=range(0, 30))
    ds = ctxdask.open_edr(path, chunks={"line": 16})
    thumb = thumbnail(ds.image, size=8)
    factor = thumb.attrs["factor"]
    dn = SQROOT_TABLE[ds.image.values].astype(np.float64)
    dn[ds.image.values == 0] = np.nan
    np.testing.assert_allclose(thumb.values, _reference_means(dn, factor), rtol=1e-5, equal_nan=True)
    assert factor == 25 and np.isnan(thumb.values[0]).all()  # lost lines 0-29 fill cell row 0
    assert thumb.attrs["units"] == "DN"


def test_stretch_maps_percentiles_to_black_and_white():
    values = np.linspace(0, 100, 101)
    out = stretch(values, (10, 90))
    assert out[10] == 0 and out[90] == 255 and out[0] == 0 and out[100] == 255
    assert out[50] == 128
    assert (stretch(np.full(5, 3.0)) == 128).all()  # constant: mid-grey
    assert (stretch(np.full(3, np.nan)) == 0).all()


@pytest.mark.parametrize("nan", ["transparent", "black"])
def test_png_written_and_read_back(tmp_path, nan):
    values = np.tile(np.linspace(0, 1, 40), (30, 1))
    values[:5] = np.nan
    path = write_png(xr.DataArray(values), tmp_path / "a.png", percentiles=(0, 100), nan=nan)
    with Image.open(path) as im:
        assert im.size == (40, 30)
        assert im.mode == ("LA" if nan == "transparent" else "L")
        pixels = np.asarray(im)
    grey = pixels[..., 0] if nan == "transparent" else pixels
    assert grey[10, 0] == 0 and grey[10, -1] == 255
    assert (grey[:5] == 0).all()
    if nan == "transparent":
        assert (pixels[:5, :, 1] == 0).all() and (pixels[5:, :, 1] == 255).all()
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary left behind


def test_measure_thumbnail_follows_config(tmp_path):
    path = make_edr(tmp_path / "c.IMG", lines=200, line_samples=256)
    ds = ctxdask.open_edr(path, chunks={"line": 64})
    with dask.config.set({"ctxdask.quality.thumbnail-size": 50}):
        qa = measure(ds)
    assert max(qa.thumbnail.shape) <= 50 and qa.attrs["thumbnail_factor"] == 4
    png = write_png(qa.thumbnail, tmp_path / "thumb.png")
    with Image.open(png) as im:
        assert im.size == (qa.thumbnail.shape[1], qa.thumbnail.shape[0])


# -- grades --------------------------------------------------------------------------------

THRESHOLDS = {
    "snr": {"warn-below": 20, "fail-below": 5},
    "saturated-fraction": {"warn-above": 0.001, "fail-above": 0.02},
    "haze": None,  # disabled
}


def test_grade_pass_warn_fail_with_reasons():
    good = {"snr": 50.0, "saturated_fraction": 0.0, "haze": 0.99}
    assert grade(good, THRESHOLDS) == Grade("pass", ())
    warn = grade({**good, "snr": 10.0}, THRESHOLDS)
    assert warn.status == "warn" and warn.reasons == ("snr 10 < warn limit 20",)
    fail = grade({**good, "snr": 10.0, "saturated_fraction": 0.5}, THRESHOLDS)
    assert fail.status == "fail"
    assert fail.reasons == ("saturated_fraction 0.5 > fail limit 0.02", "snr 10 < warn limit 20")
    assert fail.to_dict() == {"grade": "fail", "grade_reasons": list(fail.reasons)}
    # at the limit is not beyond it
    assert grade({**good, "snr": 20.0}, THRESHOLDS).status == "pass"


def test_unmeasurable_metric_warns():
    result = grade({"snr": None, "saturated_fraction": 0.0}, THRESHOLDS)
    assert result.status == "warn" and result.reasons == ("snr: not measurable",)


def test_summing_2_images_are_not_graded_on_the_even_odd_offset(tmp_path):
    """ctxevenodd applies to summing 1 only: its NaN metrics give no "not measurable" warning."""
    from ctxdask.quality import QualityMetrics

    limits = {"even-odd-relative": {"warn-above": 0.02, "fail-above": 0.05}, **THRESHOLDS}
    good = {"snr": 50.0, "saturated_fraction": 0.0}
    assert grade({**good, "summing": 2, "even_odd_relative": None}, limits) == Grade("pass", ())
    # the same missing value on a summing-1 image is still a warning
    assert grade({**good, "summing": 1, "even_odd_relative": None}, limits).reasons == (
        "even_odd_relative: not measurable",)
    # and from a real measurement of a summing-2 EDR with the configured thresholds
    path = make_edr(tmp_path / "D10_031011_1864_XI_06N201W.IMG", lines=256, line_samples=2528, summing=2)
    qa = QualityMetrics.from_dataset(measure(ctxdask.open_edr(path)))
    assert qa.summing == 2 and math.isnan(qa.even_odd_relative)
    assert not [r for r in qa.grade().reasons if "even_odd" in r]


def test_grade_thresholds_come_from_config_at_call_time():
    metrics = {"snr": 10.0, "saturated_fraction": 0.0}
    with dask.config.set({"ctxdask.quality.grade": {"snr": {"fail-below": 15}}}):
        assert grade(metrics).status == "fail"
    with dask.config.set({"ctxdask.quality.grade": {"snr": {"warn-below": 5}}}):
        assert grade(metrics).status == "pass"


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"snrr": {"warn-below": 1}}, "unknown metric"),
        ({"snr": {"warn_under": 1}}, "unknown keys"),
        ({"snr": {"warn-below": 5, "fail-below": 10}}, "fail-below"),
        ({"saturated-fraction": {"warn-above": 0.1, "fail-above": 0.01}}, "fail-above"),
    ],
)
def test_bad_thresholds_are_refused(bad, match):
    with pytest.raises(QualityError, match=match):
        grade({"snr": 1.0, "saturated_fraction": 0.0}, bad)


def test_default_thresholds_grade_every_metric_they_name(tmp_path):
    from ctxdask import config
    from ctxdask.quality import QualityMetrics

    path = make_edr(tmp_path / "g.IMG", lines=128, line_samples=256)
    metrics = QualityMetrics.from_dataset(measure(ctxdask.open_edr(path)))
    names = {k.replace("-", "_") for k in config.get("quality.grade")}
    assert names <= metrics.to_dict().keys()
    assert metrics.grade().status in ("pass", "warn", "fail")
