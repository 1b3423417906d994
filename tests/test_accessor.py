"""ds.ctx forwards to the module functions and keeps no state."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ctxdask
from ctxdask.exceptions import UnityFlatWarning
from ctxdask.testing import make_edr


@pytest.fixture
def ds(tmp_path):
    return ctxdask.open_edr(make_edr(tmp_path / "a.IMG", lines=64, line_samples=256))


def test_accessor_matches_functions(ds):
    assert ds.ctx.calibration == "raw"
    np.testing.assert_array_equal(ds.ctx.decompand().image.values, ctxdask.decompand(ds).image.values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnityFlatWarning)
        via = ds.ctx.calibrate(units="rate", even_odd=True)
        direct = ctxdask.calibrate(ds, units="rate", even_odd=True)
    np.testing.assert_array_equal(via.image.values, direct.image.values)
    assert via.ctx.calibration == "rate"
    assert ds.ctx.calibration == "raw"  # the input was not touched
    assert ds.ctx.validate().ok


def test_accessor_writes(ds, tmp_path):
    counts = ds.ctx.decompand()
    cube = counts.ctx.to_isis(tmp_path / "a.cub")
    assert cube.exists() and cube.stat().st_size > 65536
    assert counts.ctx.write(tmp_path / "a.zarr").is_dir()
