"""Writers: ISIS3 cubes (:mod:`ctxdask.io.isis`), zarr, GeoTIFF; :func:`write` picks by suffix."""

from __future__ import annotations

import os
import pathlib

import xarray as xr

__all__ = ["write"]

_SUFFIXES = {".cub": "isis", ".zarr": "zarr", ".tif": "geotiff", ".tiff": "geotiff"}


def write(ds: xr.Dataset, path: str | os.PathLike, **kwargs) -> pathlib.Path:
    """Write a CTX Dataset to ``path``, choosing the format by suffix (.cub, .zarr, .tif).

    Keyword arguments go to the format's writer.
    """
    path = pathlib.Path(path)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind == "isis":
        from ctxdask.io.isis_write import write_isis

        return write_isis(ds, path, **kwargs)
    if kind == "zarr":
        from ctxdask.io.zarr import write_zarr

        return write_zarr(ds, path, **kwargs)
    if kind == "geotiff":
        from ctxdask.io.geotiff import write_geotiff

        return write_geotiff(ds, path, **kwargs)
    raise ValueError(f"{path}: unknown output format {path.suffix!r}; use .cub, .zarr or .tif")
