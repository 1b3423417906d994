"""The map's pieces without a browser: coordinates and CRSs in words, DEM hillshades in lon/lat, colour bars,
and the map in the static report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctxdask.report.demmap import cache_key, map_hillshade, relief_bar
from ctxdask.report.geo import describe_crs, format_lat, format_lon, format_lonlat

from .helpers import Page

POLAR = "+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"
EQC = "+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"


@pytest.mark.parametrize(("lat", "text"), [(-79, "79°S"), (79.5, "79.5°N"), (0, "0°"), (-0.004, "0°"),
                                           (-2.25, "2.25°S")])
def test_latitudes_say_their_hemisphere(lat, text):
    assert format_lat(lat) == text


@pytest.mark.parametrize(("lon", "text"), [(-172, "172°W"), (188, "172°W"), (16.9, "16.9°E"), (354, "6°W"),
                                           (180, "180°"), (-180, "180°"), (0, "0°"), (360, "0°")])
def test_longitudes_are_east_or_west_of_the_prime_meridian(lon, text):
    assert format_lon(lon) == text


def test_a_place_reads_latitude_first():
    assert format_lonlat(-172, -79) == "79°S 172°W"


@pytest.mark.parametrize(("crs", "words"), [
    (POLAR, "Mars (sphere of radius 3,396,190 m), polar stereographic, centred on 90°S 0°, 6 m pixels"),
    ("+proj=stere +lat_0=-90 +lat_ts=-79 +lon_0=0 +R=3396190 +units=m +no_defs",
     "Mars (sphere of radius 3,396,190 m), polar stereographic, centred on 90°S 0°, true scale at 79°S, 6 m pixels"),
    (EQC, "Mars (sphere of radius 3,396,190 m), equirectangular (simple cylindrical), central meridian 0°, 6 m pixels"),
    ("+proj=stere +lat_0=-79 +lon_0=-172 +R=3396190 +units=m",
     "Mars (sphere of radius 3,396,190 m), stereographic, centred on 79°S 172°W, 6 m pixels"),
    ("+proj=eqc +lat_ts=10 +lon_0=180 +a=3396190 +b=3376200 +units=m",
     "Mars (ellipsoid 3,396,190 × 3,376,200 m), equirectangular (simple cylindrical), central meridian 180°, "
     "true scale at 10°N, 6 m pixels"),
])
def test_crs_in_words(crs, words):
    assert describe_crs(crs, (6.0, 6.0)) == words


def test_crs_in_words_of_the_wkt_asp_writes_and_of_nonsense():
    from pyproj import CRS

    assert describe_crs(CRS.from_proj4(EQC).to_wkt("WKT1_GDAL")).startswith("Mars (sphere of radius 3,396,190 m)")
    assert describe_crs("not a crs") is None and describe_crs(None) is None


def polar_dem(path, rows=300, cols=400, pixel=50.0):
    """A DEM near 79°S 172°W in south polar stereographic, with a nodata corner."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    x, y = Transformer.from_crs("+proj=longlat +R=3396190 +no_defs", POLAR, always_xy=True).transform(-172.0, -79.0)
    yy, xx = np.mgrid[0:rows, 0:cols].astype("float64")
    heights = (-2500 + 300 * np.sin(xx / 17.0) * np.cos(yy / 23.0)).astype("float32")
    heights[:20, :30] = -1e6
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32", crs=POLAR,
                       transform=from_origin(x - cols * pixel / 2, y + rows * pixel / 2, pixel, pixel),
                       nodata=-1e6) as dst:
        dst.write(heights, 1)
    return path


def test_map_hillshade_lies_where_the_dem_is_in_lon_lat_at_a_bounded_size(tmp_path):
    from PIL import Image
    from pyproj import Transformer

    dem = polar_dem(tmp_path / "dem.tif")
    made = map_hillshade(dem, tmp_path / "cache", size=128)
    west, south, east, north = made["bounds"]
    assert -173.5 < west < -172 < east < -170.5 and -79.4 < south < -79 < north < -78.6
    # every corner of the DEM lies inside the picture's bounds
    to_lonlat = Transformer.from_crs(POLAR, "+proj=longlat +R=3396190 +no_defs", always_xy=True)
    import rasterio

    with rasterio.open(dem) as src:
        b = src.bounds
    for x, y in ((b.left, b.bottom), (b.left, b.top), (b.right, b.bottom), (b.right, b.top)):
        lon, lat = to_lonlat.transform(x, y)
        assert west - 1e-6 <= lon <= east + 1e-6 and south - 1e-6 <= lat <= north + 1e-6
    with Image.open(made["png"]) as im:
        assert max(im.size) == 128 and im.mode == "LA"
        alpha = np.asarray(im)[..., 1]
        grey = np.asarray(im)[..., 0][alpha > 0]
    # ground-square pixels: the lon/lat picture is not squeezed into a strip near the pole
    ground = (east - west) * math.cos(math.radians((north + south) / 2)) / (north - south)
    assert im.size[0] / im.size[1] == pytest.approx(ground, rel=0.05)
    assert 0.3 < (alpha > 0).mean() < 0.95 and grey.std() > 20  # rotated DEM: transparent corners; relief shows
    assert made["heights"][0] < made["heights"][1]
    # cached: the same files, not made again; a new DEM version is a new key
    again = map_hillshade(dem, tmp_path / "cache", size=128)
    assert again["png"] == made["png"] and len(list((tmp_path / "cache").iterdir())) == 2
    key = cache_key(dem, 128)
    dem.touch()
    assert cache_key(dem, 128) != key


def test_map_hillshade_refuses_a_dem_without_crs(tmp_path):
    import rasterio

    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32") as dst:
        dst.write(np.zeros((4, 4), "float32"), 1)
    with pytest.raises(ValueError, match="no CRS"):
        map_hillshade(path, tmp_path / "cache")


def test_relief_bar_from_the_recorded_stretch_or_a_fallback():
    bar = relief_bar({"relief_limits": [-1727.7, -1209.4], "units": "m"})
    assert [t for _, t in bar["ticks"]] == ["−1728", "−1469", "−1209"] and not bar["approximate"]
    assert len(bar["bands"]) == 64 and bar["bands"][0][0] == 0.0 and bar["bands"][-1][0] + bar["band_width"] == 1.0
    assert bar["bands"][0][1].startswith("rgb(43,") and bar["bands"][-1][1].startswith("rgb(24")  # the ramp's ends
    assert relief_bar({}, (1.0, 2.5))["approximate"] and [t for _, t in relief_bar({}, (1.0, 2.5))["ticks"]] == [
        "1.00", "1.75", "2.50"]
    assert relief_bar({}) is None


def test_report_draws_the_map_with_hillshades_and_links_to_its_rows(batch_out, tmp_path):
    from ctxdask.report import build_report
    from ctxdask.tracking.geometry import import_scores

    from .conftest import GOOD_PAIR, IDS, pair_id
    from .helpers import copy_batch

    batch_copy = copy_batch(batch_out, tmp_path / "out")
    good = pair_id(GOOD_PAIR)
    with open(batch_copy / "scores.csv", "w") as f:
        f.write("left,right,footprint_left,footprint_right\n")
        f.write(f'{IDS[0]},{IDS[1]},"16.86,2.1 16.96,2.1 16.97,2.2 16.87,2.2","16.88,2.11 16.98,2.11 16.99,2.21 '
                f'16.89,2.21"\n')
    import_scores(batch_copy / "ctxdask-batch.sqlite", batch_copy / "scores.csv")
    page = build_report(batch_copy, dest=tmp_path / "report")
    html = page.read_text()
    doc = Page(html)
    images = doc.find("image", "hillshade")
    assert len(images) == 1 and (tmp_path / "report" / images[0]["href"]).is_file()
    links = [a["href"] for a in doc.find("a") if a.get("href", "").startswith("#pair-") or
             a.get("href", "").startswith("#image-")]
    assert f"#pair-{good}" in links and f"#image-{IDS[0]}" in links
    assert any(a.get("id") == f"pair-{good}" for a in doc.find("tr"))
    assert "viewBox" in html and "const svg = document.getElementById(\"map\")" in html  # the script is inline
    assert len(doc.find("svg", "colourbar")) == 1 and "(ends approximate)" not in doc.text
    assert "equirectangular (simple cylindrical), central meridian 0°, 20 m pixels" in doc.text
