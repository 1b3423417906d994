"""Zarr output: the whole Dataset, chunk by chunk, renamed into place when complete."""

from __future__ import annotations

import os
import pathlib
import warnings

import xarray as xr

from ctxdask.io.atomic import atomic_path

__all__ = ["write_zarr"]


def write_zarr(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    zarr_format: int | None = None,
    compress: bool = True,
    compute: bool = True,
) -> pathlib.Path:
    """Write a CTX Dataset to a zarr store.

    Dask computes and writes one chunk per task, so memory stays bounded by
    chunk size x threads. Encodings inherited from the raw file (uint8 dtype,
    preferred chunks) are dropped so each variable is stored as it is now.
    Every chunk is written, even one that is all NaN (a run of lost lines is
    data, and skipping it would cost a comparison pass over every chunk).

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or os.PathLike
        Destination folder (``.zarr``); replaced atomically.
    zarr_format : {2, 3}, optional
        Zarr format; default: the installed zarr-python's default (3 from
        zarr-python 3 on). Format 2 is for readers on zarr-python 2; with
        zarr-python 3 it writes more slowly (every chunk is copied once more
        on its way to the file).
    compress : bool
        ``False`` stores chunks uncompressed (faster to write, 4 bytes a pixel).
    compute : bool
        As for :meth:`xarray.Dataset.to_zarr`; with ``False`` nothing is
        renamed, so the caller must compute and move the store itself.
    """
    ds = _clean_encoding(ds)
    options = {
        "mode": "w",
        "zarr_format": zarr_format,
        "write_empty_chunks": True,
        "encoding": {} if compress else {name: _uncompressed() for name in ds.data_vars},
    }
    if not compute:
        ds.to_zarr(path, compute=False, **options)
        return pathlib.Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # zarr-python warns that consolidated metadata is not (yet) in the v3 spec; xarray and
        # zarr-python read it, other readers fall back to listing the store
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(tmp, consolidated=True, **options)
    return pathlib.Path(path)


def _uncompressed() -> dict:
    import zarr

    if int(zarr.__version__.split(".")[0]) >= 3:
        return {"compressors": None}
    return {"compressor": None}  # zarr-python 2 spells it in the singular


def _clean_encoding(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy(deep=False)
    for var in ds.variables.values():
        var.encoding = {}
    return ds
