"""Every acquisition mode through every writer, from the API and from the command line.

The four modes (SAMPLING_FACTOR 1/2 x SAMPLE_FIRST_PIXEL 0/>0) lay raw lines
out differently; with SAMPLE_FIRST_PIXEL > 0 the ``suffix`` variable has no
columns at all, which a writer must carry through (zarr once failed on it with
``AttributeError: 'numpy.ndarray' object has no attribute 'chunks'``). Each
output is read back by its own reader and compared, pixel for pixel, with the
same calibration computed in memory, so the writers agree with each other.
"""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr

import ctxdask
from ctxdask.cli import main
from ctxdask.exceptions import UnityFlatWarning
from ctxdask.io.isis_read import read_cube
from ctxdask.testing import make_edr

#: (summing, first pixel): every mode CTX flies, at its full width as flown
MODES = [(1, 0), (1, 480), (2, 0), (2, 480)]
#: active samples of each mode at that width (SIS 4.3: 38/18, 16/0, 19/9, 8/0 prefix/suffix pixels)
ACTIVE = {(1, 0): 5000, (1, 480): 4080, (2, 0): 2500, (2, 480): 2040}
WRITERS = [".cub", ".tif", ".zarr"]
LINES = 64


def _mode_id(mode):
    return f"summing{mode[0]}-first{mode[1]}"


@pytest.fixture(scope="module")
def edrs(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes")
    return {
        (s, fp): make_edr(root / f"s{s}_fp{fp}.IMG", lines=LINES, summing=s, first_pixel=fp, lost_lines=[5],
                          saturated_fraction=0.01, seed=10 * s + fp)
        for s, fp in MODES
    }


def _calibrated(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnityFlatWarning)
        return ctxdask.calibrate(ctxdask.open_edr(path, chunks={"line": 16}), units="iof")


@pytest.fixture(scope="module")
def expected(edrs):
    """The I/F image of each mode, computed in memory."""
    return {mode: _calibrated(path).image.values for mode, path in edrs.items()}


def read_image(path) -> np.ndarray:
    """The image a writer stored, through that format's reader (special pixels as NaN)."""
    suffix = path.suffix
    if suffix == ".cub":
        return read_cube(path)[0].compute()
    if suffix == ".tif":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return src.read(1)
    return xr.open_zarr(path).image.values


@pytest.mark.parametrize("entry", ["api", "cli"])
@pytest.mark.parametrize("suffix", WRITERS)
@pytest.mark.parametrize("mode", MODES, ids=_mode_id)
def test_every_mode_through_every_writer(edrs, expected, mode, suffix, entry, tmp_path, capsys):
    out = tmp_path / f"out{suffix}"
    if entry == "api":
        assert ctxdask.write(_calibrated(edrs[mode]), out) == out
    else:
        assert main(["calibrate", str(edrs[mode]), str(out), "--no-progress"]) == 0
        assert "Traceback" not in capsys.readouterr().err
    image = read_image(out)
    want = expected[mode]
    assert image.shape == want.shape == (LINES, ACTIVE[mode])
    np.testing.assert_array_equal(image, want)  # NaN (lost line 5) where NaN, every other value identical
    assert np.isnan(image[5]).all() and np.isfinite(image[6]).all()
    if suffix == ".zarr":
        back = xr.open_zarr(out)
        suffix_width = 0 if mode[1] else (18 if mode[0] == 1 else 9)
        assert back.suffix.shape == (LINES, suffix_width)
        raw = ctxdask.open_edr(edrs[mode])
        np.testing.assert_array_equal(back.dark.values.shape, raw.dark.shape)
        np.testing.assert_array_equal(back.prefix.values, raw.prefix.values)


def test_zero_sized_variables_anywhere_are_written(tmp_path):
    """Any variable without elements, lazy or not, next to streamed ones: stored with its shape."""
    image = da.random.default_rng(0).random((48, 10), chunks=(16, 10)).astype(np.float32)
    ds = xr.Dataset(
        {
            "image": (("line", "sample"), image),
            "suffix": (("line", "suffix_sample"), da.zeros((48, 0), dtype=np.uint8, chunks=(16, 0))),
            "no_lines": (("band", "sample"), da.zeros((0, 10), dtype=np.float32, chunks=(0, 10))),
            "empty_numpy": (("other",), np.zeros(0, dtype=np.int16)),
        }
    )
    out = ctxdask.write(ds, tmp_path / "x.zarr")
    back = xr.open_zarr(out)
    assert {name: back[name].shape for name in back.data_vars} == {
        "image": (48, 10), "suffix": (48, 0), "no_lines": (0, 10), "empty_numpy": (0,)}
    np.testing.assert_array_equal(back.image.values, image.compute())


def test_line_block_store_skips_sources_without_elements(tmp_path):
    import zarr

    from ctxdask.io.blockstore import store_by_line_block

    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    data = da.arange(32 * 4, dtype=np.int32).reshape(32, 4).rechunk((8, 4))
    targets = {"data": group.create_array("data", shape=(32, 4), chunks=(8, 4), dtype=np.int32),
               "empty": np.zeros((32, 0), dtype=np.uint8)}
    sources = {"data": data, "empty": da.zeros((32, 0), dtype=np.uint8, chunks=(8, 0))}
    store_by_line_block(sources, targets, {"data": 0, "empty": 0}).compute()
    np.testing.assert_array_equal(group["data"][:], data.compute())
