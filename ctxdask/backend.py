"""ctxdask in xarray: the ``ctx`` engine, :func:`open_edr`, and the ``ds.ctx`` accessor.

``xr.open_dataset(path, engine="ctx")`` is registered under the
``xarray.backends`` entry point ``ctx`` (pyproject.toml); :func:`open_edr` is
the same with ctxdask's default chunks. The work of describing an EDR and
building its Dataset is in :mod:`ctxdask.edr`; this module adapts it to
xarray's :class:`~xarray.backends.BackendEntrypoint` protocol. Importing it
registers the ``ds.ctx`` accessor (:mod:`ctxdask.accessor`), so every Dataset
ctxdask opens has it: the package is assembled here, and the modules it
assembles import none of this.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from xarray.backends import BackendEntrypoint

from ctxdask import accessor as _accessor  # noqa: F401  (registers the ds.ctx accessor)
from ctxdask import rawio
from ctxdask.edr import CTXBackendArray, EDRProduct, describe_edr, edr_dataset
from ctxdask.settings import current as current_settings

__all__ = ["CTXBackendEntrypoint", "open_edr"]

_SUFFIXES = (".img", ".lbl")


class CTXBackendEntrypoint(BackendEntrypoint):
    """Open MRO CTX EDRs (raw PDS3 products) as lazily indexed Datasets."""

    description = "Open MRO Context Camera (CTX) EDRs (PDS3 .IMG/.LBL) in xarray"
    url = "https://github.com/ctxdask/ctxdask"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "storage_options", "allow_unsupported_mode")

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | list[str] | None = None,
        storage_options: dict | None = None,
        allow_unsupported_mode: bool = False,
    ) -> xr.Dataset:
        """Describe the EDR from its label and return its lazy Dataset."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            raise TypeError(f"the ctx engine opens paths and URLs, not {type(filename_or_obj).__name__} objects")
        product = describe_edr(
            filename_or_obj, storage_options=storage_options, allow_unsupported_mode=allow_unsupported_mode
        )
        ds = edr_dataset(product)
        if drop_variables is not None:
            ds = ds.drop_vars(drop_variables, errors="ignore")
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Claim local ``.IMG``/``.LBL`` files whose label names CTX."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = os.fspath(filename_or_obj)
        if not path.lower().endswith(_SUFFIXES) or not os.path.isfile(path):
            return False
        try:
            with open(path, "rb") as f:
                head = f.read(8192)
        except OSError:
            return False
        return b"INSTRUMENT_ID" in head and b"CTX" in head


_CHUNKS_DEFAULT: Any = object()


def open_edr(
    source: str | os.PathLike,
    *,
    chunks: Any = _CHUNKS_DEFAULT,
    storage_options: dict | None = None,
    allow_unsupported_mode: bool = False,
) -> xr.Dataset:
    """Open a CTX EDR as a lazily chunked :class:`xarray.Dataset`.

    Only the label is read; pixels are read line block by line block when
    computed. The same as ``xr.open_dataset(source, engine="ctx", chunks={})``.

    Parameters
    ----------
    source : str or os.PathLike
        ``.IMG`` path (label attached or detached ``.LBL`` beside it), a detached
        label, or an fsspec URL (``https://...`` uses HTTP range requests).
    chunks : dict, str or None, optional
        As for :func:`xarray.open_dataset`. The default uses full-width blocks of
        ``ctxdask.chunk-lines`` lines; ``None`` gives xarray's lazy, non-dask arrays.
    storage_options : dict, optional
        fsspec options for remote sources.
    allow_unsupported_mode : bool
        Open LIN-companded images (raw bytes only; they cannot be decompanded).

    Returns
    -------
    xarray.Dataset
        Variables ``image``, ``dark``, ``prefix``, ``suffix`` (uint8), coords
        ``line``, ``sample``, ``detector_pixel``, ``time``, label keywords as attrs.

    Raises
    ------
    CTXError
        A subclass naming the file and what is wrong with it.

    Examples
    --------
    >>> ds = ctxdask.open_edr("B10_013341_1010_XN_79S172W.IMG")  # doctest: +SKIP
    >>> ds.image.attrs["calibration"]  # doctest: +SKIP
    'raw'
    """
    if chunks is _CHUNKS_DEFAULT:
        chunks = {}
    line_chunks = _line_chunks(chunks)
    if line_chunks is not None:
        product = describe_edr(source, storage_options=storage_options, allow_unsupported_mode=allow_unsupported_mode)
        return _shared_read_dataset(product, line_chunks or current_settings().chunk_lines)
    with warnings.catch_warnings():
        # preferred_chunks are a default, not a storage layout: any line window of a raw
        # EDR is one contiguous read, so chunks that split them cost nothing extra
        warnings.filterwarnings("ignore", message="The specified chunks separate the stored chunks")
        return xr.open_dataset(
            os.fspath(source),
            engine=CTXBackendEntrypoint,
            chunks=chunks,
            storage_options=storage_options,
            allow_unsupported_mode=allow_unsupported_mode,
        )


class _LineWindows:
    """numpy-style ``[lines, columns]`` access to every raw byte of an EDR, for ``da.from_array``."""

    def __init__(self, array: CTXBackendArray):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = 2

    def __getitem__(self, key: tuple) -> np.ndarray:
        return self.array._raw_indexing_method(key)


def _line_chunks(chunks: Any) -> int | None:
    """Lines per chunk when ``chunks`` only splits lines (0: the default), else None."""
    if isinstance(chunks, int) and not isinstance(chunks, bool) and chunks > 0:
        return chunks
    if isinstance(chunks, dict) and set(chunks) <= {"line"}:
        value = chunks.get("line", 0)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _shared_read_dataset(product: EDRProduct, chunk_lines: int) -> xr.Dataset:
    """The EDR Dataset with all four variables sliced from one dask array of whole lines.

    ``xr.open_dataset`` chunks each variable on its own, so computing ``image``
    and ``dark`` together would read every line twice; here each line block is
    read once and sliced, and dask fuses the slice into the read when only
    one variable is used.
    """
    ds = edr_dataset(product, chunk_lines=chunk_lines)
    whole = CTXBackendArray(
        product.data_source, product.image_offset, product.line_bytes, product.lines,
        (0, product.line_bytes), product.storage_options,
    )
    stamp = _modified_stamp(product)
    name = "ctx-lines-" + tokenize(product.data_source, product.image_offset, product.lines, product.line_bytes,
                                   product.file_size, stamp, chunk_lines)
    raw = da.from_array(
        _LineWindows(whole), chunks=(chunk_lines, -1), name=name, lock=False, asarray=False,
        meta=np.empty((0, 0), dtype=np.uint8),
    )
    variables = {}
    for var, (c0, c1) in product.layout.regions.items():
        variables[var] = ds[var].variable.copy(data=raw[:, c0:c1], deep=False)
    return ds.assign(variables)


def _modified_stamp(product: EDRProduct) -> float | None:
    """Modification time of a local data file, so a rewritten file gets new dask keys."""
    if rawio.is_remote(product.data_source):
        return None
    try:
        return os.stat(product.data_source).st_mtime_ns
    except OSError:
        return None
