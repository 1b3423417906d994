"""Cloud Optimized GeoTIFFs of the rasters a pair delivers.

ASP writes plain tiled GeoTIFFs (``point2dem``'s ``-DEM.tif``, ``-DRG.tif``,
``-IntersectionErr.tif``; ``dem_geoid``'s ``-adj.tif``). The USGS CTX DTM
archive converts them to COGs with ``gdal_translate`` (planetary-ard,
``content/data/mars/ctxdtms.md``); here rio-cogeo does it through rasterio:
internal tiles, overviews, deflate with a floating-point predictor, the CRS
(the Mars sphere or ellipsoid, never reprojected) and nodata kept.
:func:`validate_cog` is ``rio cogeo validate``.
"""

from __future__ import annotations

import math
import os
import pathlib
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ctxdask.io.atomic import atomic_path
from ctxdask.quality.errors import QualityError

__all__ = ["to_cog", "validate_cog", "write_cog"]

#: nodata written when the source declares none: ASP's float nodata (point2dem --nodata-value)
FLOAT_NODATA = -3.4028226550889045e38


def _profile(dtype: str, blocksize: int) -> dict[str, Any]:
    from rio_cogeo.profiles import cog_profiles

    profile = dict(cog_profiles.get("deflate"))
    profile.update(blockxsize=blocksize, blockysize=blocksize)
    if np.dtype(dtype).kind == "f":
        profile["predictor"] = 3  # floating-point predictor: DEMs compress about 2x better
    else:
        profile["predictor"] = 2
    return profile


def to_cog(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    nodata: float | None = None,
    blocksize: int = 512,
    resampling: str = "average",
    tags: Mapping[str, str] | None = None,
) -> pathlib.Path:
    """Convert a GeoTIFF (any raster GDAL reads) to a COG with overviews, atomically.

    Parameters
    ----------
    source, destination : path
        May be the same file: the COG replaces it only once complete.
    nodata : float, optional
        Nodata to record when the source declares none (default: ASP's float
        nodata for float rasters; integer rasters without one keep none).
    blocksize : int
        Internal tile size.
    resampling : str
        Overview resampling (``average`` for heights and errors; ``nearest``
        keeps classes).
    tags : mapping, optional
        Extra GDAL metadata items.

    Raises
    ------
    QualityError
        The source cannot be read or has no CRS (a COG of a Mars product
        without its CRS would be silently wrong in every GIS).
    """
    import rasterio
    from rio_cogeo.cogeo import cog_translate

    source, destination = pathlib.Path(source), pathlib.Path(destination)
    try:
        with rasterio.open(source) as src:
            crs, dtype, src_nodata = src.crs, src.dtypes[0], src.nodata
            size = min(src.width, src.height)
    except Exception as exc:  # rasterio's own hierarchy: say which file
        raise QualityError(str(source), f"cannot open the raster: {exc}") from exc
    if crs is None:
        raise QualityError(str(source), "has no CRS; refusing to write a COG without the Mars CRS")
    if src_nodata is None and nodata is None and np.dtype(dtype).kind == "f":
        nodata = FLOAT_NODATA
    profile = _profile(dtype, blocksize if size >= blocksize else max(16, 2 ** int(math.log2(max(size, 16)))))
    with atomic_path(destination) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "overviews not needed" on small rasters is no news
        cog_translate(
            str(source), str(tmp), profile,
            nodata=src_nodata if src_nodata is not None else nodata,
            overview_resampling=resampling, overview_level=None,
            additional_cog_metadata=dict(tags or {}) or None,
            in_memory=False, quiet=True, use_cog_driver=False,
            config={"GDAL_NUM_THREADS": "ALL_CPUS", "GDAL_TIFF_INTERNAL_MASK": True},
        )
    return destination


def write_cog(
    array: np.ndarray,
    destination: str | os.PathLike,
    *,
    crs: Any,
    transform: Any,
    nodata: float | None = None,
    blocksize: int = 512,
    resampling: str = "average",
    tags: Mapping[str, str] | None = None,
) -> pathlib.Path:
    """Write an in-memory array (``(rows, cols)`` or ``(bands, rows, cols)``) as a COG.

    Used for the hillshade and colour relief, which are computed on the
    downsampled DEM and so fit in memory.
    """
    from rasterio.io import MemoryFile

    data = np.asarray(array)
    if data.ndim == 2:
        data = data[None]
    bands, rows, cols = data.shape
    profile = dict(driver="GTiff", width=cols, height=rows, count=bands, dtype=str(data.dtype),
                   crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
            if bands in (3, 4) and data.dtype == np.uint8:
                from rasterio.enums import ColorInterp

                dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                                   ColorInterp.alpha][:bands]
        return to_cog(memory.name, destination, nodata=nodata, blocksize=blocksize, resampling=resampling,
                      tags=tags)


def validate_cog(path: str | os.PathLike) -> tuple[bool, list[str], list[str]]:
    """``rio cogeo validate``: ``(is_valid, errors, warnings)``."""
    from rio_cogeo.cogeo import cog_validate

    return cog_validate(str(path), quiet=True)
