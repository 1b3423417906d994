"""Per-pair DEM products: statistics, hillshade, colour relief, thumbnails and STAC items."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from ctxdask.quality import QualityError, colour_relief, dem_statistics, hillshade, open_dem, pair_products
from ctxdask.quality.dem import DEFAULT_RAMP, _spacing
from ctxdask.quality.stac import footprint, stac_item

MARS_EQC = "+proj=eqc +R=3396190 +units=m +no_defs"
MARS_LONLAT = "+proj=longlat +R=3396190 +no_defs"
MARS_POLAR = "+proj=stere +lat_0=90 +lon_0=0 +k=1 +R=3396190 +units=m +no_defs"
R = 3396190.0
NODATA = -3.40282265508890445e38  # what ASP point2dem writes


def _write(path, z, *, crs=MARS_EQC, origin=(100000.0, 600000.0), res=(20.0, 20.0), nodata=NODATA):
    z = np.asarray(z, dtype=np.float32)
    profile = dict(driver="GTiff", height=z.shape[0], width=z.shape[1], count=1, dtype="float32",
                   transform=from_origin(origin[0], origin[1], res[0], res[1]), nodata=nodata)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z, 1)
    return path


def _plane(rows, cols, res, east=0.0, north=0.0, base=1000.0):
    """Heights rising ``east`` m/m eastwards and ``north`` m/m northwards (north-up raster)."""
    x = (np.arange(cols) + 0.5) * res[0]
    y = -(np.arange(rows) + 0.5) * res[1]  # rows go south
    return base + east * x[None, :] + north * y[:, None]


def _expected_shade(east, north, azimuth, elevation):
    az, el = math.radians(azimuth), math.radians(elevation)
    n = np.array([-east, -north, 1.0]) / math.sqrt(1 + east**2 + north**2)
    s = np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)])
    return max(float(n @ s), 0.0)


def test_statistics_of_valid_heights(tmp_path):
    z = _plane(60, 80, (20, 20), east=0.3)
    z[:10, :10] = NODATA
    path = _write(tmp_path / "dem.tif", z)
    stats = dem_statistics(path)
    valid = z[10:, :].tolist() + z[:10, 10:].tolist()
    valid = np.concatenate([np.ravel(v) for v in valid]).astype(np.float32).astype(np.float64)
    assert stats.valid_count == valid.size == 60 * 80 - 100
    assert stats.valid_fraction == pytest.approx(valid.size / (60 * 80))
    assert (stats.minimum, stats.maximum) == (valid.min(), valid.max())
    assert stats.mean == pytest.approx(valid.mean(), rel=1e-12)
    assert stats.std == pytest.approx(valid.std(), rel=1e-9)
    assert stats.shape == (60, 80) and stats.resolution == (20.0, 20.0)
    assert stats.bounds == (100000.0, 600000.0 - 60 * 20, 100000.0 + 80 * 20, 600000.0)
    assert "Equirectangular" in stats.crs and stats.nodata == pytest.approx(NODATA)
    json.dumps(stats.to_dict(), allow_nan=False)


def test_all_nodata_dem_has_no_statistics(tmp_path):
    stats = dem_statistics(_write(tmp_path / "empty.tif", np.full((4, 4), NODATA)))
    assert stats.valid_count == 0 and math.isnan(stats.mean)
    assert stats.to_dict()["mean"] is None


@pytest.mark.parametrize("res", [(20.0, 20.0), (6.0, 18.0)])
@pytest.mark.parametrize("east, north, azimuth", [(0.5, 0.0, 90.0), (0.0, 0.4, 0.0), (0.2, -0.3, 315.0)])
def test_hillshade_of_planes_uses_the_pixel_spacing(res, east, north, azimuth):
    z = _plane(20, 30, res, east=east, north=north)
    transform = from_origin(0, 0, *res)
    shade = hillshade(z, _spacing(tuple(transform)[:6], None, z.shape[0]), azimuth=azimuth, elevation=40)
    assert shade.dtype == np.float32
    np.testing.assert_allclose(shade, _expected_shade(east, north, azimuth, 40), atol=1e-6)


def test_hillshade_flat_is_sin_elevation_and_self_shadow_is_zero():
    flat = np.zeros((5, 5))
    np.testing.assert_allclose(hillshade(flat, (10.0, -10.0), azimuth=0, elevation=30), 0.5, atol=1e-7)
    steep = _plane(5, 5, (1, 1), east=10.0)  # faces west, Sun low in the east
    assert (hillshade(steep, (1.0, -1.0), azimuth=90, elevation=10) == 0).all()


def test_hillshade_of_a_cone_lights_the_sunward_flank():
    n = 81
    yy, xx = np.mgrid[0:n, 0:n] - n // 2
    z = 1000.0 - 2.0 * np.hypot(xx, yy)  # slope 2 m per 1 m pixel
    shade = hillshade(z, (1.0, -1.0), azimuth=90, elevation=45)
    east, west, north, south = shade[40, 60], shade[40, 20], shade[20, 40], shade[60, 40]
    # the east flank falls eastwards (dz/dx = -2): it faces the Sun
    assert east == pytest.approx(_expected_shade(-2.0, 0.0, 90, 45), abs=1e-6)
    assert west == pytest.approx(_expected_shade(2.0, 0.0, 90, 45), abs=1e-6)
    assert north == pytest.approx(south, abs=1e-6)
    assert east > north > west


def test_hillshade_of_a_geographic_dem_converts_degrees_to_metres(tmp_path):
    """A plane rising 0.5 m/m east, stored in Mars lon/lat degrees near the equator."""
    res_deg = 0.001
    metres = math.pi * R / 180 * res_deg
    lon = (np.arange(40) + 0.5) * res_deg
    z = np.tile(0.5 * lon * math.pi * R / 180, (30, 1))
    path = _write(tmp_path / "geo.tif", z, crs=MARS_LONLAT, origin=(0.0, 0.015), res=(res_deg, res_deg))
    dem = open_dem(path)
    spacing = _spacing(tuple(dem.rio.transform())[:6], dem.rio.crs, 30)
    assert float(np.ravel(spacing[0])[0]) == pytest.approx(metres, rel=1e-6)  # cos(0.015 deg) ~ 1
    shade = hillshade(dem.values, spacing, azimuth=90, elevation=45)
    np.testing.assert_allclose(shade, _expected_shade(0.5, 0.0, 90, 45), atol=1e-4)


def test_colour_relief_ramp_ends_and_nodata():
    z = np.array([[0.0, 50.0, 100.0, np.nan]])
    rgba = colour_relief(z, limits=(0, 100))
    assert tuple(rgba[0, 0, :3]) == DEFAULT_RAMP[0][1] and tuple(rgba[0, 2, :3]) == DEFAULT_RAMP[-1][1]
    assert rgba[0, 3, 3] == 0 and (rgba[0, :3, 3] == 255).all()
    between = np.array(DEFAULT_RAMP[2][1]) + (np.array(DEFAULT_RAMP[3][1]) - DEFAULT_RAMP[2][1]) / 2
    np.testing.assert_allclose(rgba[0, 1, :3], np.rint(between), atol=1)


def test_footprint_in_mars_lon_lat():
    bounds = (0.0, 0.0, R * math.radians(2.0), R * math.radians(1.0))
    geometry, bbox = footprint(_crs_wkt(MARS_EQC), bounds)
    assert bbox == pytest.approx([0.0, 0.0, 2.0, 1.0])
    ring = geometry["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 4 * 16 + 1
    signed_area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:]))
    assert signed_area > 0  # counter-clockwise, as RFC 7946 wants exterior rings


def test_footprint_around_a_pole_reaches_it():
    _, bbox = footprint(_crs_wkt(MARS_POLAR), (-50000.0, -50000.0, 50000.0, 50000.0))
    assert bbox[0] == -180 and bbox[2] == 180 and bbox[3] == 90
    assert bbox[1] == pytest.approx(90 - math.degrees(50000 * math.sqrt(2) / R), abs=0.05)


def test_footprint_without_crs_is_null():
    assert footprint(None, (0, 0, 1, 1)) == (None, None)


def _crs_wkt(proj4: str) -> str:
    from pyproj import CRS

    return CRS.from_user_input(proj4).to_wkt()


@pytest.fixture
def pair_files(tmp_path):
    rows, cols, res = 120, 200, (20.0, 20.0)
    origin = (R * math.radians(10.0), R * math.radians(-5.0))  # 10E, 5S
    yy, xx = np.mgrid[0:rows, 0:cols]
    z = 2000.0 - 3.0 * np.hypot(xx - 100, yy - 60)  # a cone
    z[:, :15] = NODATA
    (tmp_path / "in").mkdir()
    dem = _write(tmp_path / "in" / "pair-DEM.tif", z, origin=origin, res=res)
    ortho = _write(tmp_path / "in" / "pair-DRG.tif", np.tile(np.linspace(0.01, 0.2, cols), (rows, 1)), origin=origin,
                   res=res, nodata=None)
    return dem, ortho, origin, (rows, cols, res)


def test_pair_products_files_and_stac_item(tmp_path, pair_files):
    dem, ortho, origin, (rows, cols, res) = pair_files
    out = tmp_path / "out"
    result = pair_products(
        out, dem=dem, ortho=ortho, datetime="2009-06-01T00:38:16.057", end_datetime="2009-05-20T12:00:00",
        left_id="P01_001473_2479_XI_67N185W", right_id="P02_001539_2479_XI_67N185W", size=50,
    )
    pair_id = "P01_001473_2479_XI_67N185W_P02_001539_2479_XI_67N185W"
    assert result["id"] == pair_id
    files = result["files"]
    for name, mode in (("thumbnail", "LA"), ("relief_thumbnail", "RGBA"), ("ortho_thumbnail", "LA")):
        with Image.open(files[name]) as im:
            assert im.mode == mode and im.size == (50, 30)  # factor ceil(200 / 50) = 4
            pixels = np.asarray(im)
        assert (pixels[:, :3, -1] == 0).all() if name != "ortho_thumbnail" else (pixels[..., -1] == 255).all()
    with Image.open(files["thumbnail"]) as im:
        shade = np.asarray(im)[..., 0].astype(float)
    assert shade[15, 20] > shade[15, 40]  # the cone's west flank faces the default Sun (315)

    item = json.loads(files["stac"].read_text())
    assert item == result["stac"]
    assert item["type"] == "Feature" and item["stac_version"] == "1.1.0" and item["id"] == pair_id
    props = item["properties"]
    assert props["datetime"] == "2009-06-01T00:38:16.057000Z"
    assert props["start_datetime"] == "2009-05-20T12:00:00Z" and props["end_datetime"] == "2009-06-01T00:38:16.057000Z"
    assert props["ssys:targets"] == ["Mars"] and props["ctxdask:left_product_id"].startswith("P01_")
    assert props["proj:shape"] == [rows, cols] and props["gsd"] == 20.0
    west, north = math.degrees(origin[0] / R), math.degrees(origin[1] / R)
    expected_bbox = [west, north - math.degrees(rows * res[1] / R), west + math.degrees(cols * res[0] / R), north]
    assert item["bbox"] == pytest.approx(expected_bbox, abs=1e-9)
    assert item["geometry"]["type"] == "Polygon"
    assets = item["assets"]
    assert set(assets) == {"dem", "ortho", "hillshade", "colour_relief", "thumbnail", "relief_thumbnail",
                           "ortho_thumbnail", "qa_metrics"}
    assert assets["thumbnail"]["roles"] == ["thumbnail"] and assets["dem"]["roles"] == ["data"]
    assert assets["dem"]["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert assets["relief_thumbnail"]["type"] == "image/png"
    for asset in assets.values():  # relative hrefs that resolve from the item's folder
        assert (out / asset["href"]).resolve().is_file()
    band = assets["dem"]["raster:bands"][0]
    stats = result["statistics"]
    assert band["statistics"]["maximum"] == stats.maximum and band["statistics"]["stddev"] == stats.std
    assert band["statistics"]["valid_percent"] == pytest.approx(100 * (cols - 15) / cols)
    assert band["nodata"] == pytest.approx(NODATA)


def test_stac_item_without_crs_and_pair_products_refusing_it(tmp_path):
    dem = _write(tmp_path / "nocrs.tif", _plane(10, 12, (1, 1), east=0.1), crs=None, res=(1.0, 1.0))
    item = stac_item("nocrs", datetime="2010-01-02T03:04:05Z", statistics=dem_statistics(dem),
                     files={"dem": dem}, base=tmp_path)
    assert item["id"] == "nocrs" and item["geometry"] is None and "bbox" not in item
    assert item["properties"]["proj:bbox"] == [100000.0, 600000.0 - 10, 100000.0 + 12, 600000.0]
    assert item["properties"]["datetime"] == "2010-01-02T03:04:05Z"
    # a delivered DEM without the Mars CRS would be silently wrong in every GIS
    with pytest.raises(QualityError, match="no CRS"):
        pair_products(tmp_path / "out", dem=dem, datetime=np.datetime64("2010-01-02T03:04:05"), size=8)


def test_pair_products_refuses_unsafe_ids_and_bad_files(tmp_path):
    dem = _write(tmp_path / "d.tif", np.zeros((4, 4)))
    with pytest.raises(QualityError, match="safe file name"):
        pair_products(tmp_path, dem=dem, datetime="2010-01-01T00:00:00", pair_id="../evil")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    with pytest.raises(QualityError, match="cannot open"):
        open_dem(tmp_path / "junk.tif")
