"""zarr and GeoTIFF writers, format dispatch, and atomic replacement."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr

import ctxdask
from ctxdask.exceptions import UnityFlatWarning
from ctxdask.io import write
from ctxdask.io.atomic import atomic_path
from ctxdask.testing import make_edr


@pytest.fixture
def calibrated(tmp_path):
    path = make_edr(tmp_path / "B10_013341_1010_XN_79S172W.IMG", lines=96, line_samples=256, lost_lines=[7])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnityFlatWarning)
        return ctxdask.calibrate(ctxdask.open_edr(path, chunks={"line": 32}), units="rate")


def test_zarr_roundtrip_keeps_values_attrs_and_nan(calibrated, tmp_path):
    out = write(calibrated, tmp_path / "out.zarr")
    back = xr.open_zarr(out)
    np.testing.assert_array_equal(back.image.values, calibrated.image.values)
    assert np.isnan(back.image.values[7]).all()
    assert back.image.attrs["calibration"] == "rate" and back.image.attrs["units"] == "DN/ms"
    assert back.attrs["PRODUCT_ID"] == "B10_013341_1010_XN_79S172W"
    assert back.image.dtype == np.float32 and back.prefix.dtype == np.uint8
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_uncompressed_formats_store_every_chunk(calibrated, tmp_path, zarr_format):
    import zarr

    lost = calibrated.image.copy(data=calibrated.image.data.copy())
    lost[32:64] = np.nan  # one whole chunk of lost lines
    out = write(calibrated.assign(image=lost), tmp_path / "out.zarr", zarr_format=zarr_format, compress=False)
    store = zarr.open_group(out, mode="r")
    assert store.metadata.zarr_format == zarr_format
    image = store["image"]
    assert image.compressors == () and image.nchunks_initialized == image.nchunks == 3
    back = xr.open_zarr(out)
    np.testing.assert_array_equal(back.image.values, lost.values)
    assert back.image.attrs["units"] == "DN/ms"


def test_geotiff_is_tiled_float32_with_nan_nodata(calibrated, tmp_path):
    out = write(calibrated, tmp_path / "out.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(out) as src:
            data = src.read(1)
            assert src.profile["tiled"] and src.dtypes[0] == "float32"
            assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"  # floating-point predictor
            assert np.isnan(src.nodata)
            assert src.tags()["calibration"] == "rate"
    np.testing.assert_array_equal(data, calibrated.image.values)


def test_geotiff_compression_threads_setting_is_restored(calibrated, tmp_path):
    from rasterio.env import get_gdal_config, set_gdal_config

    assert get_gdal_config("GDAL_NUM_THREADS") is None
    write(calibrated, tmp_path / "a.tif", compress_threads=2)
    assert get_gdal_config("GDAL_NUM_THREADS") is None
    set_gdal_config("GDAL_NUM_THREADS", "1")
    try:
        write(calibrated, tmp_path / "b.tif")
        assert get_gdal_config("GDAL_NUM_THREADS", normalize=False) == "1"
    finally:
        set_gdal_config("GDAL_NUM_THREADS", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp_path / "b.tif") as src:
            np.testing.assert_array_equal(src.read(1), calibrated.image.values)


def test_unknown_suffix(calibrated, tmp_path):
    with pytest.raises(ValueError, match="unknown output format"):
        write(calibrated, tmp_path / "out.png")


def test_atomic_path_keeps_old_product_on_failure(tmp_path):
    target = tmp_path / "product.tif"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["product.tif"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_atomic_path_replaces_folders(tmp_path):
    target = tmp_path / "store.zarr"
    (target / "old").mkdir(parents=True)
    with atomic_path(target) as tmp:
        (tmp / "new").mkdir(parents=True)
    assert [p.name for p in target.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]
