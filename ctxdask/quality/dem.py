"""DEM statistics, hillshade and colour relief.

DEMs are read lazily with rioxarray (nodata masked to NaN). Statistics and a
block-mean downsampled DEM come from one pass over the file
(:func:`ctxdask.quality.pair.pair_products`, which also writes the STAC item);
hillshade and colour relief are computed on the downsampled DEM in plain
numpy, with the pixel spacing of the transform scaled by the downsampling
factor, so slopes stay in metres per metre.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr

from ctxdask.colours import DEFAULT_RAMP
from ctxdask.quality.errors import QualityError
from ctxdask.settings import current as current_settings

__all__ = [
    "DEFAULT_RAMP",
    "DEMStatistics",
    "colour_relief",
    "dem_statistics",
    "hillshade",
    "open_dem",
]


def open_dem(path: str | os.PathLike, *, chunks: Any = None) -> xr.DataArray:
    """Open a single-band DEM or orthoimage GeoTIFF lazily, nodata as NaN.

    Parameters
    ----------
    path : str or os.PathLike
        The raster (anything GDAL reads).
    chunks : optional
        Dask chunks (default 2048 x 2048 pixel blocks).

    Raises
    ------
    QualityError
        The file cannot be opened, has no CRS/transform, or has more than one band.
    """
    import rioxarray

    try:
        dem = rioxarray.open_rasterio(path, masked=True, chunks=chunks or {"x": 2048, "y": 2048})
    except Exception as exc:  # rasterio raises its own hierarchy; say which file
        raise QualityError(str(path), f"cannot open the raster: {exc}") from exc
    if dem.sizes.get("band", 1) != 1:
        raise QualityError(str(path), f"expected a single-band raster, found {dem.sizes['band']} bands")
    dem = dem.squeeze("band", drop=True)
    transform = dem.rio.transform()
    if transform.b or transform.d:
        raise QualityError(str(path), "rotated rasters are not supported (the transform has shear terms)")
    dem.attrs["source"] = os.fspath(path)
    return dem


@dataclasses.dataclass(frozen=True)
class DEMStatistics:
    """Heights and geometry of a DEM.

    Attributes
    ----------
    minimum, maximum, mean, std : float
        Of the valid heights (population standard deviation); NaN when none.
    valid_fraction : float
        Valid pixels / all pixels.
    valid_count : int
    shape : (int, int)
        Rows, columns.
    resolution : (float, float)
        Pixel size in x and y in CRS units (positive).
    transform : tuple of 6 float
        The affine transform ``(a, b, c, d, e, f)`` as GDAL/rasterio give it.
    bounds : (float, float, float, float)
        ``(left, bottom, right, top)`` in the CRS.
    crs : str or None
        WKT2 of the CRS.
    nodata : float or None
        The file's nodata value.
    units : str
        Height units (``"m"`` unless the file says otherwise).
    """

    minimum: float
    maximum: float
    mean: float
    std: float
    valid_fraction: float
    valid_count: int
    shape: tuple[int, int]
    resolution: tuple[float, float]
    transform: tuple[float, ...]
    bounds: tuple[float, float, float, float]
    crs: str | None
    nodata: float | None
    units: str = "m"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (NaN as None)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out


def _lazy_statistics(dem: xr.DataArray) -> dict[str, Any]:
    dem = dem.astype(np.float64)  # float32 sums of millions of heights lose digits
    valid = dem.notnull()
    return {
        "count": valid.sum(),
        "minimum": dem.min(skipna=True),
        "maximum": dem.max(skipna=True),
        "mean": dem.mean(skipna=True),
        "std": dem.std(skipna=True),
    }


def _statistics(dem: xr.DataArray, computed: Mapping[str, Any]) -> DEMStatistics:
    transform = dem.rio.transform()
    crs = dem.rio.crs
    count = int(computed["count"])
    nodata = dem.rio.encoded_nodata if dem.rio.encoded_nodata is not None else dem.rio.nodata
    units = str(dem.attrs.get("units") or "m")
    value = {k: float(computed[k]) if count else math.nan for k in ("minimum", "maximum", "mean", "std")}
    return DEMStatistics(
        **value,
        valid_fraction=count / dem.size if dem.size else math.nan,
        valid_count=count,
        shape=(int(dem.sizes["y"]), int(dem.sizes["x"])),
        resolution=(abs(transform.a), abs(transform.e)),
        transform=tuple(float(v) for v in transform[:6]),
        bounds=tuple(float(v) for v in dem.rio.bounds()),
        crs=crs.to_wkt() if crs is not None else None,
        nodata=None if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)) else float(nodata),
        units=units,
    )


def dem_statistics(dem: xr.DataArray | str | os.PathLike) -> DEMStatistics:
    """Statistics of a DEM's valid heights and its geometry (one pass over the file)."""
    dem = dem if isinstance(dem, xr.DataArray) else open_dem(dem)
    (computed,) = dask.compute(_lazy_statistics(dem))
    return _statistics(dem, computed)


def _spacing(transform: Sequence[float], crs: Any, rows: int, factor: int = 1) -> tuple[Any, Any]:
    """Signed metres per column step (east) and per row step (north) of a (downsampled) grid.

    Projected CRS: the transform's ``a`` and ``e`` (in the CRS's linear units,
    assumed metres). Geographic CRS (degrees): converted on the CRS's sphere
    or ellipsoid's semi-major axis, with the x spacing shrinking as cos(latitude)
    row by row.
    """
    a, _, c, _, e, f = transform[:6]
    dx, dy = a * factor, e * factor
    if crs is not None and crs.is_geographic:
        from pyproj import CRS

        radius = CRS.from_user_input(crs.to_wkt()).ellipsoid.semi_major_metre
        metres_per_degree = math.pi * radius / 180.0
        lat = f + (np.arange(rows) + 0.5) * dy
        dx = (dx * metres_per_degree * np.cos(np.radians(lat)))[:, None]
        dy = dy * metres_per_degree
    return dx, dy


def hillshade(
    heights: np.ndarray,
    spacing: tuple[Any, Any],
    *,
    azimuth: float | None = None,
    elevation: float | None = None,
    z_factor: float = 1.0,
) -> np.ndarray:
    """Lambertian hillshade (0..1) of a height grid.

    Parameters
    ----------
    heights : ndarray (rows, cols)
        Heights; NaN where there are none (their neighbours' slopes are NaN too).
    spacing : (dx, dy)
        Signed ground distance of one column step (east positive) and one row
        step (north positive; negative for the usual north-up rasters, the
        transform's ``e``). Either may be an array broadcasting against the grid.
    azimuth, elevation : float, optional
        Sun azimuth clockwise from north and elevation above the horizon in
        degrees (default ``quality.sun-azimuth`` / ``quality.sun-elevation``).
    z_factor : float
        Vertical exaggeration.

    Returns
    -------
    ndarray
        float32 ``max(0, n . s)``: the cosine of the angle between the surface
        normal ``n = (-dz/dx, -dz/dy, 1) / |.|`` (central differences,
        one-sided at the edges) and the direction to the Sun ``s``.
    """
    z = np.asarray(heights, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 2:
        raise QualityError(None, f"a hillshade needs a 2-D grid of at least 2 x 2, not {z.shape}")
    azimuth = float(current_settings().quality.sun_azimuth if azimuth is None else azimuth)
    elevation = float(current_settings().quality.sun_elevation if elevation is None else elevation)
    d_row, d_col = np.gradient(z)
    dzdx = z_factor * d_col / spacing[0]
    dzdy = z_factor * d_row / spacing[1]
    az, el = math.radians(azimuth), math.radians(elevation)
    sun = (math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el))
    shade = (-dzdx * sun[0] - dzdy * sun[1] + sun[2]) / np.sqrt(1.0 + dzdx**2 + dzdy**2)
    return np.clip(shade, 0.0, 1.0).astype(np.float32)


def colour_relief(
    heights: np.ndarray,
    *,
    limits: tuple[float, float] | None = None,
    percentiles: Sequence[float] | None = None,
    ramp: Sequence[tuple[float, tuple[int, int, int]]] = DEFAULT_RAMP,
) -> np.ndarray:
    """Colour-relief RGBA (uint8) of a height grid: heights through a colour ramp.

    Parameters
    ----------
    heights : ndarray (rows, cols)
        NaN where there are none (transparent).
    limits : (float, float), optional
        Heights at the two ends of the ramp; default the ``percentiles`` of
        the valid heights.
    percentiles : (float, float), optional
        Default ``quality.stretch-percentiles``.
    ramp : sequence of (position, (r, g, b))
        Positions 0..1 increasing; colours interpolated linearly between them.
    """
    z = np.asarray(heights, dtype=np.float64)
    finite = np.isfinite(z)
    rgba = np.zeros(z.shape + (4,), np.uint8)
    if not finite.any():
        return rgba
    if limits is None:
        q = current_settings().quality.stretch_percentiles if percentiles is None else percentiles
        limits = tuple(np.percentile(z[finite], [float(q[0]), float(q[1])]))
    low, high = limits
    t = np.clip((z[finite] - low) / (high - low), 0.0, 1.0) if high > low else np.full(finite.sum(), 0.5)
    positions = np.array([p for p, _ in ramp], dtype=np.float64)
    colours = np.array([c for _, c in ramp], dtype=np.float64)
    for band in range(3):
        rgba[..., band][finite] = np.rint(np.interp(t, positions, colours[:, band])).astype(np.uint8)
    rgba[..., 3][finite] = 255
    return rgba
