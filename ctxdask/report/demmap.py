"""A delivered DEM as the map draws it: a small hillshade in longitude/latitude, and its colour bar.

DEMs come in a projected CRS of their body (ASP's equirectangular, polar
stereographic...), the map is in longitude/latitude. :func:`map_hillshade`
reads the DEM decimated (a COG's overview when it has one, so memory stays a
few hundred kilobytes whatever the DEM's size), shades it with
:func:`ctxdask.quality.dem.hillshade` (then stretched between its 1st and 99th
percentiles, so gentle terrain still reads at map scale) and warps the shade onto a
longitude/latitude grid of the same body (:func:`rasterio.warp.reproject`),
so the picture lies on the map by its bounds. The PNG and its bounds are
cached under a name made from the DEM's path, size and modification time:
a DEM delivered again gets a new picture, an unchanged one is never read twice.

:func:`relief_bar` gives the colour bar of a pair's colour relief: the ramp
of :data:`ctxdask.colours.DEFAULT_RAMP` with the heights at its two ends,
as recorded by :func:`ctxdask.quality.pair.pair_products` (``relief_limits``)
or, for DEMs delivered before that was recorded, the same percentiles of the
decimated DEM (then marked approximate).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["MAP_SIZE", "cache_key", "dem_lonlat_grid", "map_cache", "map_hillshade", "relief_bar"]

#: longest side in pixels of a DEM's hillshade on the map (enough for a 1000-pixel-wide map zoomed on one DEM)
MAP_SIZE = 512
_BANDS = 64  # colour bands of a colour bar
_VERSION = 4  # bump when the picture changes: older cached ones are then made again


def cache_key(dem: str | os.PathLike, size: int = MAP_SIZE) -> str:
    """A file-name-safe key of the DEM's identity (path, size, modification time) and the picture's size."""
    st = os.stat(dem)
    text = f"{os.path.realpath(dem)}|{st.st_size}|{st.st_mtime_ns}|{size}|{_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def map_cache(out: pathlib.Path) -> pathlib.Path:
    """Where a batch's map hillshades are cached: ``<out>/.ctxdask-map`` when this user may write
    there, else a folder of this user's temporary directory named after the output folder."""
    import tempfile

    out = pathlib.Path(out)
    beside = out / ".ctxdask-map"
    if os.access(beside if beside.is_dir() else out, os.W_OK):
        return beside
    tag = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return pathlib.Path(tempfile.gettempdir()) / f"ctxdask-map-{os.getuid()}-{tag}"


def _geographic(crs):
    """The longitude/latitude CRS on the body and datum of a projected ``crs`` (rasterio CRS)."""
    from pyproj import CRS as ProjCRS
    from rasterio.crs import CRS

    return CRS.from_wkt(ProjCRS.from_user_input(crs.to_wkt()).geodetic_crs.to_wkt())


def dem_lonlat_grid(src, size: int = MAP_SIZE) -> dict[str, Any]:
    """The longitude/latitude grid a DEM's map picture is warped onto (from its header; no pixels read).

    Returns
    -------
    dict
        ``crs`` (rasterio CRS), ``transform``, ``width``, ``height`` and
        ``bounds`` ``(west, south, east, north)`` in degrees, west in -180..180.
    """
    from rasterio.transform import from_bounds
    from rasterio.warp import transform_bounds

    dst = _geographic(src.crs)
    # densified edges: a polar DEM's edges bulge in lon/lat beyond its corners
    west, south, east, north = transform_bounds(src.crs, dst, *src.bounds, densify_pts=51)
    if east < west:  # across the antimeridian (rasterio gives west > east): one span, east past 180
        east += 360.0
    # pixels about square on the ground, as the map draws them (x shrunk by cos(latitude)):
    # square degrees would spend most pixels on longitude near a pole
    aspect = (east - west) * max(math.cos(math.radians((north + south) / 2)), 0.02) / max(north - south, 1e-12)
    longest = min(size, max(src.width, src.height))
    width, height = (longest, longest / aspect) if aspect >= 1 else (longest * aspect, longest)
    width, height = max(2, math.ceil(width)), max(2, math.ceil(height))
    transform = from_bounds(west, south, east, north, width, height)
    return {"crs": dst, "transform": transform, "width": int(width), "height": int(height),
            "bounds": (float(west), float(south), float(east), float(north))}


def _read_decimated(src, size: int) -> tuple[np.ndarray, float]:
    """Heights read at most ``size`` pixels a side (NaN where none) and the decimation factor."""
    from rasterio.enums import Resampling

    factor = max(1.0, max(src.width, src.height) / float(size))
    shape = (max(2, round(src.height / factor)), max(2, round(src.width / factor)))
    # out_shape makes GDAL read the nearest overview, never the whole full-resolution raster at once
    data = src.read(1, out_shape=shape, masked=True, resampling=Resampling.average).astype("float64")
    return data.filled(np.nan), src.width / shape[1]


def map_hillshade(dem: str | os.PathLike, cache: str | os.PathLike, *, size: int = MAP_SIZE) -> dict[str, Any]:
    """The DEM's hillshade in longitude/latitude as a PNG in ``cache``, made once per DEM version.

    Parameters
    ----------
    dem : path
        A delivered DEM GeoTIFF (projected CRS, metres).
    cache : path
        Folder of the pictures (made when missing).
    size : int
        Longest side of the picture in pixels.

    Returns
    -------
    dict
        ``png`` (path), ``bounds`` ``(west, south, east, north)`` degrees east/north of
        the picture's edges, ``width``, ``height``, and ``heights``: ``(low, high)``
        percentiles of the decimated heights (the colour relief's default stretch).

    Raises
    ------
    OSError, ValueError
        The DEM cannot be read, or has no CRS.
    """
    import rasterio
    from PIL import Image
    from rasterio.warp import Resampling, reproject

    from ctxdask.quality.dem import hillshade
    from ctxdask.settings import current as current_settings

    cache = pathlib.Path(cache)
    key = cache_key(dem, size)
    png, meta = cache / f"{key}.png", cache / f"{key}.json"
    if png.is_file() and meta.is_file():
        try:
            return {**json.loads(meta.read_text()), "png": png}
        except ValueError:
            pass  # half-written by a killed process: make it again
    with rasterio.open(dem) as src:
        if src.crs is None:
            raise ValueError(f"{dem}: the DEM has no CRS")
        grid = dem_lonlat_grid(src, size)
        heights, factor = _read_decimated(src, size)
        transform, crs = src.transform, src.crs
    if crs.is_geographic:
        raise ValueError(f"{dem}: the DEM is not projected")
    # the decimated grid's pixel size in metres: slopes stay metres per metre
    shade = hillshade(heights, (transform.a * factor, transform.e * factor)).astype("float32")
    shade[~np.isfinite(heights)] = np.nan
    small = transform * transform.scale(factor, factor)
    warped = np.full((grid["height"], grid["width"]), np.nan, dtype="float32")
    reproject(shade, warped, src_transform=small, src_crs=crs, src_nodata=np.nan, dst_transform=grid["transform"],
              dst_crs=grid["crs"], dst_nodata=np.nan, resampling=Resampling.bilinear)
    ok = np.isfinite(warped)
    # stretched 1-99 %: a gentle CTX DEM shades in a narrow band of grey, too flat to read at map scale
    low, high = np.percentile(warped[ok], [1, 99]) if ok.any() else (0.0, 1.0)
    stretched = np.clip((warped - low) / max(high - low, 1e-6), 0, 1)
    grey = np.where(ok, stretched * 225 + 30, 0).astype("uint8")  # 30: black shadows would hide the grid
    alpha = np.where(ok, 255, 0).astype("uint8")
    finite = heights[np.isfinite(heights)]
    q = current_settings().quality.stretch_percentiles
    low_high = [float(v) for v in np.percentile(finite, [float(q[0]), float(q[1])])] if finite.size else None
    cache.mkdir(parents=True, exist_ok=True)
    tmp = png.with_suffix(f".{os.getpid()}.tmp")
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp, format="PNG")
    os.replace(tmp, png)
    record = {"bounds": list(grid["bounds"]), "width": grid["width"], "height": grid["height"],
              "heights": low_high}
    tmp = meta.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, meta)  # last: a picture counts as cached only once both files are whole
    return {**record, "png": png}


def relief_bar(statistics: Mapping[str, Any], fallback: tuple[float, float] | None = None) -> dict[str, Any] | None:
    """The colour bar of a pair's colour relief: gradient stops and the heights at its ends.

    Parameters
    ----------
    statistics : mapping
        The pair's DEM statistics (``relief_limits``, ``units``, ``minimum``, ``maximum``).
    fallback : (float, float), optional
        Limits to use (marked approximate) when the statistics do not record them.

    Returns
    -------
    dict or None
        ``bands`` (``[(start 0..1, "rgb(...)")]``, ``band_width`` each), ``low``, ``high``, ``units``
        (``"m"``), ``ticks`` (``[(fraction along the bar, label)]``: both ends and
        the middle), ``approximate`` and ``minimum``/``maximum`` of the DEM;
        None when no limits are known.
    """
    from ctxdask.colours import DEFAULT_RAMP  # not ctxdask.quality: a page's colour bar needs no dask

    limits = statistics.get("relief_limits")
    approximate = False
    if not (isinstance(limits, (list, tuple)) and len(limits) == 2 and all(_finite(v) for v in limits)):
        limits, approximate = fallback, True
    if not limits:
        return None
    low, high = (float(v) for v in limits)
    digits = 0 if abs(high - low) >= 20 else 1 if abs(high - low) >= 2 else 2
    ticks = [(fraction, f"{low + fraction * (high - low):.{digits}f}".replace("-", "−"))
             for fraction in (0.0, 0.5, 1.0)]
    # drawn as narrow bands, not an SVG gradient: the report allows no url() reference in its page
    positions = np.array([p for p, _ in DEFAULT_RAMP])
    colours = np.array([c for _, c in DEFAULT_RAMP], dtype="float64")
    mids = (np.arange(_BANDS) + 0.5) / _BANDS
    rgb = np.rint(np.stack([np.interp(mids, positions, colours[:, k]) for k in range(3)], axis=1)).astype(int)
    bands = [(i / _BANDS, "rgb({},{},{})".format(*c)) for i, c in enumerate(rgb.tolist())]
    return {"bands": bands, "band_width": 1.0 / _BANDS,
            "low": low, "high": high, "units": str(statistics.get("units") or "m"), "approximate": approximate,
            "ticks": ticks, "minimum": statistics.get("minimum"), "maximum": statistics.get("maximum")}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
