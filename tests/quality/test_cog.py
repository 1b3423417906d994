"""COGs of the delivered rasters: valid, with overviews, nodata and the Mars CRS kept."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from ctxdask.quality import QualityError
from ctxdask.quality.cog import FLOAT_NODATA, to_cog, validate_cog, write_cog

MARS = "+proj=eqc +R=3396190 +units=m +no_defs"


def _plain(path, data, crs=MARS, nodata=None):
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=str(data.dtype),
                   transform=from_origin(1e6, 2e5, 20, 20))  # striped, no overviews: not a COG
    if crs:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def test_plain_tiff_becomes_a_valid_cog_in_place_with_overviews(tmp_path):
    data = np.random.default_rng(0).normal(-1500, 50, (1100, 900)).astype("float32")
    path = _plain(tmp_path / "dem.tif", data, nodata=-32768.0)
    assert not validate_cog(path)[0]
    to_cog(path, path)
    ok, errors, _ = validate_cog(path)
    assert ok, errors
    with rasterio.open(path) as src:
        assert src.overviews(1) and src.nodata == -32768.0 and src.block_shapes == [(512, 512)]
        assert src.crs == rasterio.crs.CRS.from_string(MARS)
        assert np.array_equal(src.read(1), data)  # lossless
    assert not list(tmp_path.glob(".*partial"))


def test_float_raster_without_nodata_gets_asps_and_crs_is_required(tmp_path):
    path = _plain(tmp_path / "err.tif", np.ones((64, 64), "float32"))
    with rasterio.open(to_cog(path, tmp_path / "err-cog.tif")) as src:
        assert src.nodata == pytest.approx(FLOAT_NODATA)
    nocrs = _plain(tmp_path / "nocrs.tif", np.ones((64, 64), "float32"), crs=None)
    with pytest.raises(QualityError, match="no CRS"):
        to_cog(nocrs, tmp_path / "x.tif")
    (tmp_path / "junk.tif").write_bytes(b"junk")
    with pytest.raises(QualityError, match="junk.tif: cannot open"):
        to_cog(tmp_path / "junk.tif", tmp_path / "y.tif")


def test_in_memory_rgba_cog(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 255, (4, 700, 600), dtype=np.uint8)
    path = write_cog(rgba, tmp_path / "relief.tif", crs=MARS, transform=from_origin(0, 0, 20, 20))
    assert validate_cog(path)[0]
    with rasterio.open(path) as src:
        out = src.read()
        assert src.count == 4 and src.colorinterp[3] == rasterio.enums.ColorInterp.alpha
    # the alpha band is kept; colour under alpha 0 (transparent) is not
    visible = rgba[3] > 0
    assert np.array_equal(out[3], rgba[3]) and np.array_equal(out[:3, visible], rgba[:3, visible])
