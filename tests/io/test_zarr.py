"""The zarr writer's codec: the measured default, the setting, and exact round trips."""

from __future__ import annotations

import warnings

import dask
import numpy as np
import pytest
import xarray as xr
import zarr

import ctxdask
from ctxdask.exceptions import UnityFlatWarning
from ctxdask.io import write
from ctxdask.io.zarr import compressors
from ctxdask.testing import make_edr


@pytest.fixture
def iof(tmp_path):
    path = make_edr(tmp_path / "B10_013341_1010_XN_79S172W.IMG", lines=96, line_samples=512, lost_lines=[7])
    flat = 1 + 0.03 * np.random.default_rng(1).standard_normal(5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnityFlatWarning)
        return ctxdask.calibrate(ctxdask.open_edr(path, chunks={"line": 32}), flat=flat, units="iof")


def _codecs(path, name="image"):
    return zarr.open_group(path, mode="r")[name].metadata.to_dict()["codecs"]


def test_default_codec_is_blosc_lz4_shuffle_and_lossless(iof, tmp_path):
    out = write(iof, tmp_path / "out.zarr")
    blosc = [c for c in _codecs(out) if c["name"] == "blosc"]
    assert blosc and blosc[0]["configuration"] | {"typesize": 4} == {
        "cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4, "blocksize": 0}
    expected = iof.compute()
    back = xr.open_zarr(out)
    for name in expected.data_vars:
        np.testing.assert_array_equal(back[name].values, expected[name].values, err_msg=name)
    assert np.isnan(back.image.values[7]).all()
    raw = sum(f.stat().st_size for f in (out / "image").rglob("c/*") if f.is_file())
    assert raw < expected.image.nbytes  # it does compress noisy float32


def test_codec_setting_and_argument(iof, tmp_path):
    with dask.config.set({"ctxdask.zarr.compressor": {"name": "zstd", "level": 1}}):
        out = write(iof, tmp_path / "zstd.zarr")
    assert [c["configuration"]["level"] for c in _codecs(out) if c["name"] == "zstd"] == [1]
    np.testing.assert_array_equal(xr.open_zarr(out).image.values, iof.image.values)
    for kwargs in ({"compressor": None}, {"compressor": "none"}, {"compress": False}):
        out = write(iof, tmp_path / "plain.zarr", **kwargs)
        assert [c["name"] for c in _codecs(out)] == ["bytes"], kwargs


def test_format_2_gets_the_numcodecs_equivalent(iof, tmp_path):
    out = write(iof, tmp_path / "v2.zarr", zarr_format=2)
    meta = zarr.open_group(out, mode="r")["image"].metadata.to_dict()
    assert meta["compressor"]["id"] == "blosc" and meta["compressor"]["cname"] == "lz4"
    assert meta["compressor"]["shuffle"] == 1  # numcodecs.Blosc.SHUFFLE
    np.testing.assert_array_equal(xr.open_zarr(out).image.values, iof.image.values)


@pytest.mark.parametrize("spec", [{"name": "gzip"}, {"name": "blosc", "shuffle": "sideways"},
                                  {"name": "zstd", "speed": 3}])
def test_bad_codec_spec_names_the_problem(spec):
    for zarr_format in (2, 3):
        with pytest.raises(ValueError, match="zarr compressor"):
            compressors(spec, zarr_format)
