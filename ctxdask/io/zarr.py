"""Zarr output: the whole Dataset, chunk by chunk, renamed into place when complete."""

from __future__ import annotations

import os
import pathlib

import xarray as xr

from ctxdask.io.atomic import atomic_path

__all__ = ["write_zarr"]


def write_zarr(ds: xr.Dataset, path: str | os.PathLike, *, compute: bool = True) -> pathlib.Path:
    """Write a CTX Dataset to a zarr store.

    Dask computes and writes one chunk per task, so memory stays bounded by
    chunk size x threads. Encodings inherited from the raw file (uint8 dtype,
    preferred chunks) are dropped so each variable is stored as it is now.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or os.PathLike
        Destination folder (``.zarr``); replaced atomically.
    compute : bool
        As for :meth:`xarray.Dataset.to_zarr`; with ``False`` nothing is
        renamed, so the caller must compute and move the store itself.
    """
    ds = _clean_encoding(ds)
    if not compute:
        ds.to_zarr(path, mode="w", compute=False, zarr_format=2)
        return pathlib.Path(path)
    with atomic_path(path) as tmp:
        # zarr format 2 with consolidated metadata: what most readers (and older zarr) understand
        ds.to_zarr(tmp, mode="w", zarr_format=2)
    return pathlib.Path(path)


def _clean_encoding(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy(deep=False)
    for var in ds.variables.values():
        var.encoding = {}
    return ds
