"""Decompanding and radiometric calibration as lazy, chunked graphs (ISIS behaviour).

:func:`decompand` is ``mroctx2isis``'s pixel step, :func:`calibrate` is
``ctxcal`` (dark, flat, exposure, I/F) with ``ctxevenodd`` as an option; the
numbers follow DESIGN.md section 4. Every function takes a Dataset and
returns a new one; nothing is computed until the result is written or
``.compute()`` is called. The per-block arithmetic lives in plain numpy
functions at module level (:func:`calibrate_block`), which workers import by
reference; ``xarray.apply_ufunc`` (decompanding) and ``dask.array.blockwise``
(calibration, which needs each block's dark pixels too) map them over the chunks.

Arithmetic is float64 inside each block; outputs are float32. NaN (ISIS
special pixels, lost-packet fill) passes through.
"""

from __future__ import annotations

import os
import warnings
from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr

from ctxdask import __version__, companding
from ctxdask.daskcompat import clone_after
from ctxdask.exceptions import CTXError, UnityFlatWarning
from ctxdask.radiometry import solar
from ctxdask.radiometry.flat import Flat, flat_for_samples, load_flat
from ctxdask.radiometry.flatdir import flat_for_image

__all__ = ["CalibrationError", "calibrate", "calibrate_block", "decompand", "even_odd_correct"]

Units = Literal["iof", "rate"]
_UNITS = {"raw": "DN", "counts": "DN", "rate": "DN/ms", "iof": "1"}


class CalibrationError(CTXError, ValueError):
    """The Dataset cannot be calibrated as asked (wrong stage, mode, or option)."""


def decompand(ds: xr.Dataset) -> xr.Dataset:
    """Decompand raw 8-bit pixels to linear DN through the SIS SQROOT table.

    Image raw 0 becomes NaN (lost-packet fill, ISIS Null); dark raw 0 becomes
    1. ``image`` and ``dark`` become float32 with ``calibration="counts"``.

    Raises
    ------
    UnsupportedModeError
        For LIN modes (no table exists; ISIS refuses them too).
    CalibrationError
        When the image is not raw.
    """
    stage = _stage(ds)
    if stage != "raw":
        raise CalibrationError(_where(ds), f"decompand needs raw pixels; this image is already {stage!r}")
    companding.check_bit_mode(ds.attrs.get("SAMPLE_BIT_MODE_ID", ""), path=_where(ds))
    image = _map(companding.decompand_block, ds.image)
    dark = _map(companding.decompand_dark_block, ds.dark)
    image.attrs = _step_attrs(ds.image, "counts", "decompand: SQROOT table (SIS appendix), raw 0 -> NaN")
    dark.attrs = {**ds.dark.attrs, "calibration": "counts", "units": "DN"}
    return ds.assign(image=image, dark=dark)


def calibrate(
    ds: xr.Dataset,
    flat: str | np.ndarray | Flat | None = None,
    units: Units = "iof",
    even_odd: bool = False,
    *,
    sun_distance_km: float | None = None,
) -> xr.Dataset:
    """Radiometric calibration as ISIS ``ctxcal`` (and optionally ``ctxevenodd``) does it.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`ctxdask.open_edr` (raw) or :func:`decompand` (counts).
    flat : path, array or None
        Detector flat (ISIS cube, GeoTIFF, ``.npy`` or array of >= 5000 values),
        or a folder of monthly flats, from which the image's month is picked
        (:func:`ctxdask.radiometry.flatdir.flat_for_image`).
        ``None`` uses a unity flat, warns, and records ``flat_source="unity"``.
    units : {"iof", "rate"}
        ``"rate"``: (DN - dark) / (exposure x flat) in DN/ms.
        ``"iof"``: (DN - dark) / flat x k with k = 1 / (exposure x w1).
    even_odd : bool
        Apply ``ctxevenodd`` (summing 1 only).
    sun_distance_km : float, optional
        Override the Sun-Mars distance (default: computed from START_TIME with
        JPL DE421, light-time corrected, as SPICE does for ISIS).

    Returns
    -------
    xarray.Dataset
        ``image`` float32 with ``calibration``/``units`` set and the constants
        used in its attrs (``exposure_ms``, ``flat_source``, and for I/F
        ``sun_distance_km`` and ``iof_factor``).
    """
    if units not in ("iof", "rate"):
        raise CalibrationError(_where(ds), f"units must be 'iof' or 'rate', not {units!r}")
    stage = _stage(ds)
    source = ds  # what calibrate_block reads: raw bytes are decompanded inside it, in one pass
    if stage == "raw":
        ds = decompand(ds)  # checks the mode; gives the output its float dark and history
    elif stage != "counts":
        raise CalibrationError(_where(ds), f"the image is already calibrated ({stage!r}); calibrate raw or counts")
    summing = int(ds.attrs["SAMPLING_FACTOR"])
    if even_odd and summing != 1:
        raise CalibrationError(
            _where(ds), "ctxevenodd corrects the two CCD channels of unsummed images; this one has summing 2"
        )
    exposure_ms = _exposure_ms(ds)

    if isinstance(flat, (str, os.PathLike)) and os.path.isdir(flat):  # a folder of monthly flats
        flat = flat_for_image(flat, ds.attrs["START_TIME"], ds.attrs.get("PRODUCT_ID"))
    flat = load_flat(flat)
    if flat.is_unity:
        warnings.warn(
            f"{_where(ds)}: no flat field given, calibrating with a unity flat "
            "(ISIS uses ctxFlat_000N.cub from ISISDATA)",
            UnityFlatWarning,
            stacklevel=2,
        )
    flat_row = flat_for_samples(flat, ds.detector_pixel.values, summing, source=_where(ds))
    parity = ds.sample.values % 2

    constants: dict[str, object] = {"exposure_ms": exposure_ms, "flat_source": flat.source}
    if units == "rate":
        scale = 1.0 / exposure_ms
        note = f"(DN - dark) / ({exposure_ms} ms x flat)"
    else:
        distance = solar.sun_mars_distance(ds.attrs["START_TIME"]) if sun_distance_km is None else None
        distance_km = sun_distance_km if distance is None else distance.km
        scale = solar.iof_factor(exposure_ms, distance_km)
        constants.update(
            sun_distance_km=float(distance_km),
            sun_distance_source="given" if distance is None else distance.ephemeris,
            w1=solar.ctxcal_w1(distance_km),
            iof_factor=scale,
        )
        note = f"(DN - dark) / flat x {scale:.9g}"

    # a new variable: nothing of the raw image's encoding (uint8 on disk) may carry over
    image = xr.DataArray(
        _calibrate_array(source.image.data, source.dark.data, flat_row, parity, summing=summing, scale=scale),
        dims=source.image.dims,
        coords=source.image.coords,
    )
    dark_method = "per line, even/odd dark pixels for A/B channels" if summing == 1 else "per line mean"
    image.attrs = _step_attrs(ds.image, units, f"ctxcal: {note}; dark {dark_method}; flat {flat.source}")
    image.attrs.update(constants, dark_method=dark_method)
    out = ds.assign(image=image)
    return even_odd_correct(out) if even_odd else out


def even_odd_correct(ds: xr.Dataset) -> xr.Dataset:
    """ISIS ``ctxevenodd``: balance the even and odd columns of a summing-1 image.

    ``offset = (mean(odd columns) - mean(even columns)) / 2`` over all valid
    pixels; even columns get ``+offset``, odd ones ``-offset``. The offset
    needs the whole image, so the input is read twice (as ctxevenodd does):
    first for the two means through a cloned graph, then for the output,
    whose tasks are bound to wait for the offset so that no block is held in
    memory meanwhile. The offset is kept lazily as ``even_odd_offset``.
    """
    if int(ds.attrs.get("SAMPLING_FACTOR", 1)) != 1:
        raise CalibrationError(_where(ds), "ctxevenodd applies to summing 1 images only")
    image = ds.image
    parity = xr.DataArray(ds.sample.values % 2, dims="sample")
    if not isinstance(image.data, da.Array):
        sums = _even_odd_block_sums(image.values, parity=parity.values)
        offset_data = _offset_from_sums(sums.reshape(4))
        corrected = _apply_even_odd(image.values, offset_data, parity=parity.values)
    else:
        # statistics pass: each block reduced to 4 numbers
        stats_source = image.data
        rows, cols = stats_source.numblocks
        sums = da.map_blocks(
            _even_odd_block_sums,
            stats_source,
            parity=parity.values,
            new_axis=2,
            chunks=((1,) * rows, (1,) * cols, (4,)),
            dtype=np.float64,
            meta=np.empty((0, 0, 0), np.float64),
        )
        offset_data = da.map_blocks(
            _offset_from_sums, sums.sum(axis=(0, 1)), drop_axis=0, chunks=(), dtype=np.float64,
            meta=np.empty((), np.float64),
        )
        # output pass: the graph rebuilt under new keys whose sources wait for the offset, so
        # the input is read a second time instead of every block waiting in memory
        corrected = da.map_blocks(
            _apply_even_odd,
            clone_after(image.data, offset_data),
            offset_data,
            parity=parity.values,
            dtype=np.float32,
            meta=np.empty((0, 0), np.float32),
        )
    new = image.copy(data=corrected)
    offset = xr.DataArray(offset_data)
    new.attrs = _step_attrs(image, image.attrs["calibration"], "ctxevenodd: even columns + offset, odd - offset")
    new.attrs["even_odd"] = "applied"
    offset.attrs = {"long_name": "ctxevenodd offset (mean odd - mean even) / 2", "units": image.attrs["units"]}
    return ds.assign(image=new, even_odd_offset=offset)


# -- block functions (plain numpy, imported by workers) ---------------------------------------


#: lines per float64 work strip in :func:`calibrate_block` (32 x 5000 x 8 bytes stays in cache)
_STRIP_LINES = 32
#: SQROOT table as float64 with raw 0 -> NaN (lost-packet fill), as :func:`decompand` maps image pixels
_IMAGE_LUT64 = companding.SQROOT_TABLE.astype(np.float64)
_IMAGE_LUT64[0] = np.nan


def calibrate_block(
    image: np.ndarray, dark: np.ndarray, flat: np.ndarray, parity: np.ndarray, *, summing: int, scale: float
) -> np.ndarray:
    """``ctxcal`` on one block: ``((image - dark) / flat) * scale``, float64 inside, float32 out.

    Works through the block in strips of :data:`_STRIP_LINES` lines with
    buffers allocated once per block: each step over a whole block would
    stream it through memory again, and an allocation per strip is a fresh
    mmap on dask workers (distributed's ``MALLOC_TRIM_THRESHOLD_`` pins
    glibc's mmap threshold at 128 KiB). For raw bytes, decompanding and the
    dark subtraction are one table lookup: each strip gets a table of
    ``SQROOT[v] - dark`` per line and channel (the same float64 subtraction,
    done 256 times per line instead of once per pixel).

    Parameters
    ----------
    image : ndarray (lines, samples)
        Decompanded DN (NaN for special pixels), or raw uint8 SQROOT bytes,
        decompanded here exactly as :func:`decompand` does (raw 0 -> NaN).
    dark : ndarray (lines, [1,] dark samples)
        Dark pixels of the same lines, decompanded or raw uint8.
    flat : ndarray (samples,) or (1, samples)
        Flat value of each sample.
    parity : ndarray (samples,) or (1, samples)
        0 for even sample columns (channel A), 1 for odd (channel B).
    summing : int
        1: per-line A/B dark from even/odd dark pixels; 2: one per-line mean.
    scale : float
        1 / exposure for DN/ms, the I/F factor k for I/F.
    """
    image = np.asarray(image)
    lines, samples = image.shape
    d = np.asarray(dark)
    d = companding.decompand_dark_block(d) if d.dtype == np.uint8 else d
    d = d.astype(np.float64, copy=False).reshape(lines, d.shape[-1])
    flat = np.broadcast_to(np.asarray(flat, dtype=np.float64).reshape(-1), (samples,))
    if summing == 1:
        # (lines, 2): channel A (even dark pixels) and B (odd ones); each column uses its parity's
        line_dark = np.stack([d[:, 0::2].mean(axis=1), d[:, 1::2].mean(axis=1)], axis=1)
        channel = np.broadcast_to(np.asarray(parity).reshape(-1), (samples,)).astype(np.intp)
    else:
        line_dark = d.mean(axis=1)[:, None]
        channel = np.zeros(samples, dtype=np.intp)
    channels = line_dark.shape[1]
    out = np.empty((lines, samples), dtype=np.float32)
    strip = max(1, min(lines, _STRIP_LINES))  # an empty block still needs a nonzero step
    work = np.empty((strip, samples), dtype=np.float64)
    if image.dtype == np.uint8:
        # table[(row * channels + channel) * 256 + raw] = SQROOT[raw] - dark[row, channel]
        tables = np.empty((strip, channels, 256), dtype=np.float64)
        offsets = (np.arange(strip, dtype=np.intp)[:, None] * channels + channel) * 256
        index = np.empty((strip, samples), dtype=np.intp)
    else:
        dark_rows = np.empty((strip, samples), dtype=np.float64)
    for start in range(0, lines, strip):
        stop = min(start + strip, lines)
        n = stop - start
        w = work[:n]
        if image.dtype == np.uint8:
            np.subtract(_IMAGE_LUT64, line_dark[start:stop, :, None], out=tables[:n])
            index[:n] = image[start:stop]  # widen, then add in intp (faster than a mixed-type add)
            index[:n] += offsets[:n]
            # mode="clip" (exact: every index is in the table) writes straight into ``w``;
            # the default "raise" buffers the output and is about 10x slower
            np.take(tables[:n].reshape(-1), index[:n], out=w, mode="clip")
        else:
            np.take(line_dark[start:stop], channel, axis=1, out=dark_rows[:n], mode="clip")
            np.subtract(image[start:stop], dark_rows[:n], out=w)
        w /= flat
        # float64 product, rounded once to float32 on the way out
        np.multiply(w, scale, out=out[start:stop], casting="same_kind")
    return out


def _calibrate_array(image, dark, flat: np.ndarray, parity: np.ndarray, *, summing: int, scale: float):
    """:func:`calibrate_block` over a whole image: at once for numpy data, block by block for dask.

    For dask, each output block depends directly on the image block and the
    dark block of the same lines (``da.blockwise`` with the dark samples
    contracted), so a block is ready one scheduler hop after its read
    (``apply_ufunc`` would add a task inserting the core dimension).
    """
    if not isinstance(image, da.Array) and not isinstance(dark, da.Array):
        return calibrate_block(image, dark, flat, parity, summing=summing, scale=scale)
    image = da.asarray(image)
    dark = da.asarray(dark).rechunk({0: image.chunks[0], 1: -1})  # no-op for open_edr's output
    by_sample = image.chunks[1]
    return da.blockwise(
        calibrate_block, "ij",
        image, "ij",
        dark, "ik",
        da.from_array(flat, chunks=(by_sample,)), "j",
        da.from_array(parity, chunks=(by_sample,)), "j",
        concatenate=True,
        dtype=np.float32,
        meta=np.empty((0, 0), np.float32),
        summing=summing,
        scale=scale,
    )


def _even_odd_block_sums(block: np.ndarray, *, parity: np.ndarray, block_info=None) -> np.ndarray:
    """``[[[sum even, count even, sum odd, count odd]]]`` of the valid pixels of a block."""
    if block_info is not None:
        c0, c1 = block_info[0]["array-location"][1]
        parity = parity[c0:c1]
    b = np.asarray(block, dtype=np.float64)
    valid = np.isfinite(b)
    out = np.empty((1, 1, 4))
    for k, p in enumerate((0, 1)):
        cols = parity == p
        out[0, 0, 2 * k] = np.where(valid[:, cols], b[:, cols], 0.0).sum()
        out[0, 0, 2 * k + 1] = valid[:, cols].sum()
    return out


def _offset_from_sums(sums: np.ndarray) -> np.ndarray:
    """ctxevenodd's offset from the even/odd sums and counts."""
    sum_even, n_even, sum_odd, n_odd = np.asarray(sums, dtype=np.float64).reshape(4)
    if not n_even or not n_odd:
        return np.array(0.0)
    return np.array((sum_odd / n_odd - sum_even / n_even) / 2)


def _apply_even_odd(block: np.ndarray, offset, *, parity: np.ndarray, block_info=None) -> np.ndarray:
    """Add ``offset`` to even columns and subtract it from odd ones."""
    if block_info is not None:
        c0, c1 = block_info[0]["array-location"][1]
        parity = parity[c0:c1]
    offset = float(np.asarray(offset))
    shift = np.where(parity == 0, offset, -offset)
    return (np.asarray(block, dtype=np.float64) + shift).astype(np.float32)


# -- helpers ---------------------------------------------------------------------------------


def _map(func, array: xr.DataArray) -> xr.DataArray:
    """Apply a uint8 -> float32 block function lazily (eagerly for numpy-backed data)."""
    return xr.apply_ufunc(func, array, dask="parallelized", output_dtypes=[np.float32], keep_attrs=False)


def _stage(ds: xr.Dataset) -> str:
    if "image" not in ds:
        raise CalibrationError(_where(ds), "the Dataset has no 'image' variable; open it with ctxdask.open_edr")
    return ds.image.attrs.get("calibration", "raw")


def _where(ds: xr.Dataset) -> str | None:
    return ds.attrs.get("source") or ds.attrs.get("PRODUCT_ID")


def _exposure_ms(ds: xr.Dataset) -> float:
    value = ds.attrs.get("LINE_EXPOSURE_DURATION")
    units = str(ds.attrs.get("LINE_EXPOSURE_DURATION_units", "MSEC")).upper()
    if not isinstance(value, (int, float)) or value <= 0 or units not in ("MSEC", "MS"):
        raise CalibrationError(_where(ds), f"LINE_EXPOSURE_DURATION is {value!r} <{units}>; need a positive ms value")
    return float(value)


def _step_attrs(previous: xr.DataArray, calibration: str, note: str) -> dict:
    """Attrs of a processed image: stage, units, and the history extended by this step."""
    attrs = {k: v for k, v in previous.attrs.items() if k not in ("calibration", "units", "history")}
    history = previous.attrs.get("history", "")
    attrs.update(
        calibration=calibration,
        units=_UNITS[calibration],
        history=(history + "\n" if history else "") + f"ctxdask {__version__} {note}",
    )
    return attrs
