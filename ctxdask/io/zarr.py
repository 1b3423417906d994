"""Zarr output: the whole Dataset, streamed by line block, renamed into place when complete."""

from __future__ import annotations

import os
import pathlib
import warnings

import numpy as np
import xarray as xr
from dask.base import is_dask_collection

from ctxdask.io.atomic import atomic_path, check_destination
from ctxdask.io.blockstore import store_by_line_block
from ctxdask.settings import current as current_settings

__all__ = ["write_zarr", "compressors"]

#: ``compressor`` argument meaning "the ``zarr.compressor`` setting"
_SETTING = "setting"


def write_zarr(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    zarr_format: int | None = None,
    compress: bool = True,
    compressor=_SETTING,
    compute: bool = True,
):
    """Write a CTX Dataset to a zarr store.

    With dask data the store is written one line block per task: the block's
    read, calibration and every variable's piece of it run together on one
    worker (:func:`ctxdask.io.blockstore.store_by_line_block`), so memory stays
    bounded by block size x threads and the scheduler handles one task per
    block instead of about eleven. Encodings inherited from the raw file (uint8
    dtype, preferred chunks) are dropped so each variable is stored as it is
    now. Every chunk is written, even one that is all NaN (a run of lost lines
    is data, and skipping it would cost a comparison pass over every chunk).

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or os.PathLike
        Destination folder (``.zarr``); replaced atomically.
    zarr_format : {2, 3}, optional
        Zarr format; default: zarr-python's (3). Format 2 is for readers on
        zarr-python 2; it writes more slowly (zarr-python 3 copies every
        chunk once more on its way to a format-2 file).
    compress : bool
        ``False`` stores chunks uncompressed (4 bytes a pixel), whatever
        ``compressor`` says.
    compressor : dict, zarr codec or None, optional
        How chunks are compressed: a codec spec as in the setting
        ``zarr.compressor`` (``{"name": "blosc", "cname": "lz4", "clevel": 5,
        "shuffle": "shuffle"}``, ``{"name": "zstd", "level": 0}``), a zarr or
        numcodecs codec object, or ``None`` (uncompressed). Default: the
        setting, chosen by ``benchmarks/zarr_codecs.py`` (see the codec table in
        ``docs/benchmarks.md``): blosc lz4 with byte shuffling stores noisy I/F float32 in
        about 78 % of its size at a small cost; zarr's own default (zstd level
        0) keeps 86 % at several times the write time.
    compute : bool
        ``False`` writes the metadata to ``path`` directly (no atomic rename)
        and returns xarray's Delayed for the data: computed together with other
        work on the same EDR (``dask.compute(delayed, qa)``) it shares the reads.

    Returns
    -------
    pathlib.Path or dask.delayed.Delayed
        The store's path; with ``compute=False`` the Delayed that writes the data.
    """
    check_destination(path, folder=True)
    ds = _clean_encoding(ds)
    if not compress:
        compressor = None
    elif isinstance(compressor, str) and compressor == _SETTING:
        compressor = current_settings().zarr.compressor
    codecs = compressors(compressor, zarr_format)
    options = {
        "mode": "w",
        "zarr_format": zarr_format,
        "write_empty_chunks": True,
        "encoding": {name: {"compressors": codecs or None} for name in ds.data_vars},
    }
    with warnings.catch_warnings():
        # zarr-python warns that consolidated metadata is not (yet) in the v3 spec; xarray and
        # zarr-python read it, other readers fall back to listing the store
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        if not compute:
            return ds.to_zarr(path, compute=False, consolidated=True, **options)
        with atomic_path(path) as tmp:
            # a variable with no elements (the zero-width suffix of SAMPLE_FIRST_PIXEL > 0 images) has nothing
            # to stream: to_zarr writes its metadata (and swaps in a numpy array for it while doing so)
            lazy = [name for name, var in ds.data_vars.items() if is_dask_collection(var.data) and var.size]
            if not _storable_by_line_block(ds, lazy):
                ds.to_zarr(tmp, consolidated=True, **options)
            else:
                # metadata, coordinates and numpy-backed variables now; dask variables below
                ds.to_zarr(tmp, compute=False, consolidated=True, **options)
                _store_lazy_variables(ds, lazy, tmp)
    return pathlib.Path(path)


def compressors(spec, zarr_format: int | None = None):
    """The zarr ``compressors`` for a codec spec (see :func:`write_zarr`).

    Parameters
    ----------
    spec : dict, str, codec object or None
        ``{"name": "blosc", "cname": ..., "clevel": ..., "shuffle": ...}``,
        ``{"name": "zstd", "level": ...}``, ``"none"``/``None``, or a codec
        object (returned as it is).
    zarr_format : {2, 3}, optional
        Format 2 takes numcodecs codecs, format 3 (default) zarr's own.

    Returns
    -------
    tuple of codecs
        Empty for no compression.

    Raises
    ------
    ValueError
        For an unknown codec name or option.
    """
    if spec is None or (isinstance(spec, str) and spec.lower() in ("none", "")):
        return ()
    if not isinstance(spec, dict):
        return (spec,)
    options = dict(spec)
    name = str(options.pop("name", "")).lower()
    try:
        if zarr_format == 2:
            import numcodecs

            if name == "blosc":
                shuffles = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
                            "bitshuffle": numcodecs.Blosc.BITSHUFFLE}
                options["shuffle"] = shuffles[options.get("shuffle", "bitshuffle")]
                return (numcodecs.Blosc(**options),)
            if name == "zstd":
                return (numcodecs.Zstd(**options),)
        else:
            from zarr.codecs import BloscCodec, ZstdCodec

            if name == "blosc":
                return (BloscCodec(**options),)
            if name == "zstd":
                return (ZstdCodec(**options),)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"zarr compressor {spec!r}: {exc}") from None
    raise ValueError(f"zarr compressor {spec!r}: unknown name {name!r}; use blosc, zstd or none")


def _storable_by_line_block(ds: xr.Dataset, lazy: list[str]) -> bool:
    """Whether xarray would store the lazy variables' values unchanged, chunked alike along ``line``."""
    if not lazy:
        return False
    line_chunks = {ds[name].chunksizes.get("line") for name in lazy if "line" in ds[name].dims}
    # xarray encodes datetimes, strings and bools on their way to zarr; plain numbers go as they are
    plain = all(np.dtype(ds[name].dtype).kind in "iuf" for name in lazy)
    return plain and len(line_chunks) == 1


def _store_lazy_variables(ds: xr.Dataset, lazy: list[str], store: pathlib.Path) -> None:
    import zarr

    sources = {name: ds[name].data for name in lazy}
    group = zarr.open_group(store, mode="r+")
    # write_empty_chunks is a runtime setting, not part of the stored metadata: ask again
    targets = {name: group[name].with_config({"write_empty_chunks": True}) for name in lazy}
    for name, target in targets.items():
        if target.dtype != sources[name].dtype:  # the encoding we asked for; a guard, not a path
            raise TypeError(f"{name}: zarr array is {target.dtype}, data is {sources[name].dtype}")
    axes = {name: ds[name].dims.index("line") if "line" in ds[name].dims else None for name in lazy}
    store_by_line_block(sources, targets, axes).compute()


def _clean_encoding(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy(deep=False)
    for var in ds.variables.values():
        var.encoding = {}
    return ds
