"""Thumbnails: lazy block-mean downsampling, a robust percentile stretch, PNG files.

:func:`thumbnail` averages ``factor x factor`` pixel cells of a (dask-backed)
image without rechunking: each block adds its pixels to per-cell sums and
counts (:func:`cell_sums_block`), so a cell that straddles two blocks is
still one mean, and a thumbnail costs no read beyond the ones the image
graph already does. Invalid pixels (NaN; raw 0 in a raw image) are left out of
the means; a cell with none is NaN. :func:`write_png` stretches and writes.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Sequence
from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr

from ctxdask import companding
from ctxdask.io.atomic import atomic_path
from ctxdask.quality.errors import QualityError
from ctxdask.settings import current as current_settings

__all__ = ["cell_sums_block", "stretch", "thumbnail", "thumbnail_factor", "write_png"]

_DN_LUT = companding.SQROOT_TABLE.astype(np.float64)
_DN_LUT[0] = np.nan  # raw 0 is lost-packet fill


def thumbnail_factor(shape: Sequence[int], size: int) -> int:
    """The cell side that brings the longest side of ``shape`` to at most ``size``."""
    if size < 1:
        raise QualityError(None, f"thumbnail size must be a positive number of pixels, not {size}")
    return max(1, math.ceil(max(shape) / size))


def cell_sums_block(
    block: np.ndarray, *, factor: int, grid: tuple[int, int], decompand: bool, block_info=None
) -> np.ndarray:
    """Per-cell sums and counts of the valid pixels of one block: ``(1, 1, rows, cols, 2)``.

    Parameters
    ----------
    block : ndarray (lines, samples)
        Pixels; non-finite values are invalid.
    factor : int
        Cell side in pixels.
    grid : (int, int)
        Cells of the whole image.
    decompand : bool
        ``block`` is raw 8-bit: average DN from the SQROOT table, raw 0 invalid.
    block_info : dict
        From :func:`dask.array.map_blocks`: where the block sits in the image.
    """
    (l0, l1), (s0, s1) = block_info[0]["array-location"] if block_info else ((0, block.shape[0]), (0, block.shape[1]))
    values = _DN_LUT[block] if decompand else np.asarray(block, dtype=np.float64)
    rows = np.arange(l0, l1) // factor
    cols = np.arange(s0, s1) // factor
    cell = (rows[:, None] * grid[1] + cols[None, :]).ravel()
    values = values.ravel()
    ok = np.isfinite(values)
    n = grid[0] * grid[1]
    out = np.empty((1, 1, grid[0], grid[1], 2))
    out[0, 0, :, :, 0] = np.bincount(cell[ok], weights=values[ok], minlength=n).reshape(grid)
    out[0, 0, :, :, 1] = np.bincount(cell[ok], minlength=n).reshape(grid)
    return out


def _mean_from_sums(sums: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums[..., 1] > 0, sums[..., 0] / sums[..., 1], np.nan).astype(np.float32)


def thumbnail(image: xr.DataArray, size: int | None = None) -> xr.DataArray:
    """Lazy block-mean thumbnail of a 2-D image whose longest side is at most ``size``.

    Parameters
    ----------
    image : xarray.DataArray
        2-D. Raw CTX pixels (uint8 with ``calibration="raw"``) are averaged as
        decompanded DN with raw 0 left out; anything else as its values, with
        NaN left out. Any chunking.
    size : int, optional
        Longest side in pixels (default ``quality.thumbnail-size``). Cells are
        ``factor x factor`` pixels with ``factor = ceil(longest side / size)``;
        edge cells average the pixels they have.

    Returns
    -------
    xarray.DataArray
        float32 (thumb_line, thumb_sample), NaN where a cell has no valid
        pixel; dask-backed when ``image`` is. Attrs: ``factor``, the source
        ``calibration`` and ``units``.
    """
    if image.ndim != 2:
        raise QualityError(None, f"a thumbnail needs a 2-D image, not dims {image.dims}")
    size = int(current_settings().quality.thumbnail_size if size is None else size)
    factor = thumbnail_factor(image.shape, size)
    grid = (math.ceil(image.shape[0] / factor), math.ceil(image.shape[1] / factor))
    # raw CTX bytes (open_edr marks them) are averaged as DN; any other array as it is
    raw = image.dtype == np.uint8 and image.attrs.get("calibration") == "raw"
    data = image.data
    if isinstance(data, da.Array):
        nb0, nb1 = data.numblocks
        sums = da.map_blocks(
            cell_sums_block, data, factor=factor, grid=grid, decompand=raw,
            new_axis=[2, 3, 4], chunks=((1,) * nb0, (1,) * nb1, (grid[0],), (grid[1],), (2,)),
            dtype=np.float64, meta=np.empty((0, 0, 0, 0, 0), np.float64),
        ).sum(axis=(0, 1))
        mean = da.map_blocks(_mean_from_sums, sums, drop_axis=2, dtype=np.float32, meta=np.empty((0, 0), np.float32))
    else:
        mean = _mean_from_sums(cell_sums_block(np.asarray(data), factor=factor, grid=grid, decompand=raw)[0, 0])
    attrs = {
        "factor": factor,
        "calibration": "counts" if raw else image.attrs.get("calibration", ""),
        "units": "DN" if raw else image.attrs.get("units", ""),
        "long_name": f"mean of {factor} x {factor} pixel cells",
    }
    return xr.DataArray(mean, dims=("thumb_line", "thumb_sample"), attrs=attrs)


def stretch(values: np.ndarray, percentiles: Sequence[float] | None = None) -> np.ndarray:
    """Linear stretch of ``values`` to 0..255 between two percentiles of the finite values.

    Returns uint8 with the same shape; non-finite values map to 0 (mask them
    separately). A constant image maps to mid-grey.
    """
    low_q, high_q = current_settings().quality.stretch_percentiles if percentiles is None else percentiles
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    out = np.zeros(values.shape, np.uint8)
    if not finite.any():
        return out
    low, high = np.percentile(values[finite], [float(low_q), float(high_q)])
    if high <= low:
        out[finite] = 128
        return out
    scaled = np.clip((values[finite] - low) / (high - low), 0.0, 1.0)
    out[finite] = np.rint(scaled * 255.0).astype(np.uint8)
    return out


def write_png(
    image: xr.DataArray | np.ndarray,
    path: str | os.PathLike,
    *,
    percentiles: Sequence[float] | None = None,
    nan: Literal["transparent", "black"] | None = None,
    stretched: bool = False,
) -> pathlib.Path:
    """Stretch a 2-D image (or take an RGB/RGBA one as is) and write it as a PNG, atomically.

    Parameters
    ----------
    image : xarray.DataArray or ndarray
        2-D values (computed here if lazy), or ``(rows, cols, 3|4)`` uint8 colour.
    path : str or os.PathLike
        Output file.
    percentiles : (float, float), optional
        Stretch percentiles (default ``quality.stretch-percentiles``).
    nan : {"transparent", "black"}, optional
        Non-finite pixels: alpha 0 (grey + alpha PNG) or black (grey PNG).
        Default ``quality.nan``.
    stretched : bool
        ``image`` is already uint8 0..255 grey: write it without stretching.
    """
    from PIL import Image

    values = np.asarray(image.values if isinstance(image, xr.DataArray) else image)
    nan = current_settings().quality.nan if nan is None else nan
    if nan not in ("transparent", "black"):
        raise QualityError(str(path), f"nan must be 'transparent' or 'black', not {nan!r}")
    if values.ndim == 3 and values.shape[2] in (3, 4):
        mode = "RGB" if values.shape[2] == 3 else "RGBA"
        picture = Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8), mode)
    elif values.ndim == 2:
        grey = np.nan_to_num(values, nan=0.0).astype(np.uint8) if stretched else stretch(values, percentiles)
        finite = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
        if nan == "transparent":
            alpha = np.where(finite, 255, 0).astype(np.uint8)
            picture = Image.fromarray(np.dstack([grey, alpha]), "LA")
        else:
            picture = Image.fromarray(np.where(finite, grey, 0).astype(np.uint8), "L")
    else:
        raise QualityError(str(path), f"cannot write an image of shape {values.shape} as PNG")
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", optimize=True)
    return path
