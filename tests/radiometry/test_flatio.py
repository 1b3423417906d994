"""Flat products on disk: the ISIS cube ctxcal reads (band 1, line 1, 5000 samples), GeoTIFF, .npy, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctxdask.io.isis_read import read_cube, read_label
from ctxdask.radiometry.flat import FlatError, load_flat
from ctxdask.radiometry.flatbuild import CCD_PIXELS, FlatResult
from ctxdask.radiometry.flatio import BAND_NAMES, write_flat


def _result(ok: bool = True) -> FlatResult:
    rng = np.random.default_rng(3)
    flat = 1 + 0.05 * rng.standard_normal(CCD_PIXELS)
    unc = np.full(CCD_PIXELS, 0.004)
    unc[:10] = np.nan  # interpolated pixels
    count = np.full(CCD_PIXELS, 42.0)
    count[:10] = 0
    images = [{"source": "/d/a.IMG", "product_id": "A", "accepted": True, "median_signal_dn": 812.5},
              {"source": "/d/<b>.IMG", "rejected": "too dark: median signal 3.0 DN", "median_signal_dn": float("nan")}]
    settings = {"min_images": 5, "method": "median"}
    if not ok:
        return FlatResult("2009-06", None, None, None, images, "median", settings, problem="1 usable images")
    return FlatResult("2009-06", flat, unc, count, images, "median", settings, notes=["10 pixels interpolated"])


def test_cube_is_what_ctxcal_reads_plus_two_bands(tmp_path):
    result = _result()
    files = write_flat(result, tmp_path / "flat_2009-06")
    assert [f.name for f in files] == ["flat_2009-06.cub", "flat_2009-06.tif", "flat_2009-06.npy", "flat_2009-06.json"]
    label = read_label(files[0])
    core = label["IsisCube"]["Core"]
    assert core["Dimensions"]["Samples"] == 5000 and core["Dimensions"]["Lines"] == 1
    assert core["Dimensions"]["Bands"] == 3 and core["Pixels"]["Type"] == "Real"
    assert list(label["IsisCube"]["BandBin"]["Name"]) == list(BAND_NAMES)
    assert label["IsisCube"]["FlatField"]["ImagesUsed"] == 1
    text = files[0].read_bytes()[:2000].decode("ascii", "replace")
    assert "End_Group\n" in text and "End_Group =" not in text  # written the way ISIS writes labels
    bands = read_cube(files[0], dtype=np.float64).compute()
    np.testing.assert_allclose(bands[0, 0], result.flat, rtol=1e-6)  # Real is float32
    assert np.isnan(bands[1, 0, :10]).all()  # Null where interpolated
    np.testing.assert_array_equal(bands[2, 0], result.count)


@pytest.mark.parametrize("suffix", [".cub", ".tif", ".npy"])
def test_load_flat_reads_every_format(tmp_path, suffix):
    result = _result()
    write_flat(result, tmp_path / "f")
    values = load_flat(tmp_path / f"f{suffix}").values
    assert values.shape == (CCD_PIXELS,)
    np.testing.assert_allclose(values, result.flat, rtol=1e-6)


def test_json_sidecar_records_how_the_flat_was_made(tmp_path):
    write_flat(_result(), tmp_path / "f.cub")  # a suffix given is dropped
    record = json.loads((tmp_path / "f.json").read_text())
    assert record["method"] == "median" and record["images_accepted"] == 1 and record["images_rejected"] == 1
    assert record["images"][1]["median_signal_dn"] is None  # NaN is not JSON
    assert record["uncertainty"][0] is None and record["count"][0] == 0 and len(record["count"]) == CCD_PIXELS


def test_a_failed_build_writes_only_its_record(tmp_path):
    files = write_flat(_result(ok=False), tmp_path / "f")
    assert [f.name for f in files] == ["f.json"]
    assert json.loads(files[0].read_text())["problem"] == "1 usable images"
    with pytest.raises(ValueError, match="unknown flat formats"):
        write_flat(_result(), tmp_path / "g", formats=["fits"])


def test_a_two_line_npy_is_still_refused(tmp_path):
    np.save(tmp_path / "two.npy", np.ones((2, 5000)))
    with pytest.raises(FlatError, match="one line"):
        load_flat(tmp_path / "two.npy")
