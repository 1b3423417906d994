"""Picking an image's flat from a folder of monthly flats, and calibrate(flat=FOLDER)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ctxdask
from ctxdask.radiometry.calibrate import calibrate
from ctxdask.radiometry.flat import FlatError
from ctxdask.radiometry.flatdir import flat_for_image, month_of
from ctxdask.testing import make_edr


def _touch(folder, *names):
    for name in names:
        np.save(folder / name, np.full(5000, 1.0)) if name.endswith(".npy") else (folder / name).write_bytes(b"x")


def test_month_then_isis_phase_then_nearest_then_all(tmp_path):
    _touch(tmp_path, "flat_2009-06.npy", "flat_2009-06.cub", "flat_2009-09.tif", "B10.flat.cub", "flat_all.npy",
           ".flat_2009-07.cub.partial", "notes.txt")
    assert flat_for_image(tmp_path, "2009-06-01T00:38:16.057").name == "flat_2009-06.cub"  # .cub preferred
    assert flat_for_image(tmp_path, "2009-07-30T00:00:00", "B10_013341_1010_XN_79S172W").name == "B10.flat.cub"
    assert flat_for_image(tmp_path, "2009-07-30T00:00:00", max_month_gap=1).name == "flat_2009-06.cub"
    assert flat_for_image(tmp_path, "2009-08-30T00:00:00", max_month_gap=1).name == "flat_2009-09.tif"
    assert flat_for_image(tmp_path, "2012-01-01T00:00:00").name == "flat_all.npy"
    assert month_of("2009-06-30T23:59:59.999Z") == "2009-06"


def test_no_suitable_flat_names_the_folder_and_the_months(tmp_path):
    _touch(tmp_path, "flat_2009-06.npy")
    with pytest.raises(FlatError, match=r"no flat for 2010-01 .*months here: 2009-06") as info:
        flat_for_image(tmp_path, "2010-01-05T00:00:00")
    assert str(tmp_path) in str(info.value)
    with pytest.raises(FlatError, match="flat folder not found"):
        flat_for_image(tmp_path / "missing", "2010-01-05T00:00:00")


def test_calibrate_with_a_folder_uses_the_image_month(tmp_path):
    folder = tmp_path / "flats"
    folder.mkdir()
    np.save(folder / "flat_2009-06.npy", np.full(5000, 2.0))
    np.save(folder / "flat_2009-07.npy", np.full(5000, 4.0))
    ds = ctxdask.open_edr(make_edr(tmp_path / "a.IMG", lines=32, start_time="2009-07-02T10:00:00"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unity-flat warning
        out = calibrate(ds, flat=str(folder), units="rate")
    assert out.image.attrs["flat_source"].endswith("flat_2009-07.npy")
    unity = calibrate(ds, flat=np.ones(5000), units="rate")
    np.testing.assert_allclose(out.image.values * 4, unity.image.values, rtol=1e-6)
