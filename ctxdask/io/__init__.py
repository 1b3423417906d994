"""Writers: ISIS3 cubes (:mod:`ctxdask.io.isis`), zarr, GeoTIFF; :func:`write` picks by suffix."""

from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING

from ctxdask.exceptions import OutputPathError
from ctxdask.io.atomic import check_destination

if TYPE_CHECKING:  # xarray is imported by the writers: reading a cube's label needs none of it
    import xarray as xr

__all__ = ["check_output", "write"]

_SUFFIXES = {".cub": "isis", ".zarr": "zarr", ".tif": "geotiff", ".tiff": "geotiff"}


def check_output(path: str | os.PathLike) -> str:
    """The format ``path`` will be written in, after checking it can be written there.

    Cheap (a few stat calls): commands call it before any computing, so a
    wrong output path fails at once.

    Returns
    -------
    str
        ``"isis"``, ``"zarr"`` or ``"geotiff"``.

    Raises
    ------
    OutputPathError
        Unknown suffix, the folder it goes into does not exist, or a folder
        (or a pipe) is in the way.
    """
    path = pathlib.Path(path)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        what = f"unknown output format {path.suffix!r}" if path.suffix else "no suffix to choose the format by"
        raise OutputPathError(path, f"{what}; use .cub (ISIS cube), .tif (GeoTIFF) or .zarr")
    check_destination(path, folder=kind == "zarr")
    return kind


def write(ds: xr.Dataset, path: str | os.PathLike, **kwargs) -> pathlib.Path:
    """Write a CTX Dataset to ``path``, choosing the format by suffix (.cub, .zarr, .tif).

    Keyword arguments go to the format's writer. Every writer checks the
    destination first (:func:`ctxdask.io.atomic.check_destination`): the folder
    it goes into must exist.

    Raises
    ------
    OutputPathError
        Unknown suffix, missing folder, or a folder in the way.
    """
    path = pathlib.Path(path)
    kind = check_output(path)
    if kind == "isis":
        from ctxdask.io.isis_write import write_isis

        return write_isis(ds, path, **kwargs)
    if kind == "zarr":
        from ctxdask.io.zarr import write_zarr

        return write_zarr(ds, path, **kwargs)
    if kind == "geotiff":
        from ctxdask.io.geotiff import write_geotiff

        return write_geotiff(ds, path, **kwargs)
    raise AssertionError(kind)  # pragma: no cover  (every suffix in _SUFFIXES is handled above)
