"""CTX EDRs: the line layout, the lazy backing array, and :func:`open_edr`.

A CTX EDR is a PDS3 label followed by ``LINES`` records of ``LINE_SAMPLES``
unsigned bytes. Each raw line holds, in order, prefix pixels (some of them
masked dark-reference pixels), the active detector pixels, and suffix pixels.
How many of each depends on the summing mode and on whether the image starts
at the first CCD pixel; :data:`LAYOUTS` is the table ISIS ``mroctx2isis`` uses
(DESIGN.md section 4, EDR SIS section 4.3).

:func:`describe_edr` reads and checks the label only; :func:`open_edr` wraps
the result in an :class:`xarray.Dataset` whose variables read line windows on
demand through :class:`CTXBackendArray`.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import warnings
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from xarray.backends import BackendArray
from xarray.core import indexing

from ctxdask import __version__, config, rawio
from ctxdask import accessor as _accessor  # noqa: F401  (registers the ds.ctx accessor)
from ctxdask.exceptions import (
    LabelError,
    LabelInconsistentError,
    NotCTXError,
    TruncatedFileError,
    UnsupportedModeError,
)
from ctxdask.pds3 import Label, label_attrs, read_label

__all__ = [
    "CTX_BUFFER_BYTES",
    "EDRLayout",
    "EDRProduct",
    "CTXBackendArray",
    "LAYOUTS",
    "describe_edr",
    "open_edr",
]

#: the instrument's image buffer (SIS 2.1: eight 32M x 8 SDRAMs); no EDR can be larger
CTX_BUFFER_BYTES = 256 * 1024 * 1024
#: the EDR data set (SIS 4.1)
EDR_DATA_SET_ID = "MRO-M-CTX-2-EDR-L0-V1.0"
#: companding modes the SIS names; only SQROOT has a published table
BIT_MODES = ("SQROOT", *(f"LIN{n}" for n in range(1, 17)), *(f"LIN{n}CYC" for n in range(1, 17)))

#: (SAMPLING_FACTOR, SAMPLE_FIRST_PIXEL > 0) -> (prefix bytes, dark start, dark stop, suffix bytes);
#: dark columns are 0-based raw columns, stop exclusive
LAYOUTS: dict[tuple[int, bool], tuple[int, int, int, int]] = {
    (1, False): (38, 14, 38, 18),
    (1, True): (16, 0, 16, 0),
    (2, False): (19, 7, 19, 9),
    (2, True): (8, 0, 8, 0),
}


@dataclasses.dataclass(frozen=True)
class EDRLayout:
    """Where the prefix, dark, active and suffix pixels sit in a raw line."""

    line_samples: int
    summing: int
    first_pixel: int
    prefix_bytes: int
    dark_start: int
    dark_stop: int
    suffix_bytes: int

    @classmethod
    def for_modes(cls, line_samples: int, summing: int, first_pixel: int) -> EDRLayout:
        """The layout of a line of ``line_samples`` bytes in the given modes."""
        prefix, dark_start, dark_stop, suffix = LAYOUTS[(summing, first_pixel > 0)]
        return cls(line_samples, summing, first_pixel, prefix, dark_start, dark_stop, suffix)

    @property
    def active_start(self) -> int:
        """First raw column of the active image."""
        return self.prefix_bytes

    @property
    def active_stop(self) -> int:
        """Raw column after the last active pixel."""
        return self.line_samples - self.suffix_bytes

    @property
    def samples(self) -> int:
        """Number of active samples per line."""
        return self.active_stop - self.active_start

    @property
    def flat_offset(self) -> int:
        """First CCD pixel of the image as ctxcal indexes the flat field."""
        return self.first_pixel - 38 if self.first_pixel > 0 else 0

    def detector_pixels(self) -> np.ndarray:
        """CCD pixel under each active sample (the first of the pair when summing 2)."""
        return self.flat_offset + self.summing * np.arange(self.samples)

    @property
    def regions(self) -> dict[str, tuple[int, int]]:
        """Raw column range ``(start, stop)`` of each variable."""
        return {
            "image": (self.active_start, self.active_stop),
            "dark": (self.dark_start, self.dark_stop),
            "prefix": (0, self.prefix_bytes),
            "suffix": (self.active_stop, self.line_samples),
        }


@dataclasses.dataclass(frozen=True)
class EDRProduct:
    """Everything known about an EDR from its label, checked for consistency.

    Built by :func:`describe_edr`; no pixel has been read.
    """

    source: str
    data_source: str
    label: Label
    layout: EDRLayout
    lines: int
    image_offset: int
    file_size: int | None
    product_id: str
    bit_mode: str
    exposure_ms: float
    start_time: np.datetime64
    checksum: int | None
    storage_options: dict | None = None

    @property
    def line_bytes(self) -> int:
        """Bytes per raw line (the record stride)."""
        return self.layout.line_samples

    @property
    def image_bytes(self) -> int:
        """Size of the IMAGE object in bytes."""
        return self.lines * self.line_bytes

    def read_lines(self, start: int, stop: int) -> np.ndarray:
        """Raw lines ``start:stop`` as a ``(n, LINE_SAMPLES)`` uint8 array."""
        return rawio.read_records(
            self.data_source, self.image_offset, self.line_bytes, start, stop, self.storage_options
        )

    def line_times(self) -> np.ndarray:
        """Acquisition time of each line (START_TIME + line x exposure x summing)."""
        step_ns = self.exposure_ms * self.layout.summing * 1e6
        offsets = np.rint(np.arange(self.lines) * step_ns).astype("timedelta64[ns]")
        return self.start_time + offsets


def describe_edr(
    source: str | os.PathLike,
    *,
    storage_options: dict | None = None,
    allow_unsupported_mode: bool = False,
) -> EDRProduct:
    """Read an EDR's label, check it is a raw CTX EDR this package can read, and describe it.

    Parameters
    ----------
    source : str or os.PathLike
        The ``.IMG`` (label attached or ``.LBL`` beside it), a detached label, or a URL.
    storage_options : dict, optional
        fsspec options for remote sources.
    allow_unsupported_mode : bool
        Describe LIN-companded images too (their raw bytes are readable, but no
        decompanding table exists for them).

    Raises
    ------
    CTXError
        A subclass saying what is wrong: not a file, empty, no label, not CTX,
        inconsistent label, unsupported mode, truncated data.
    """
    source = os.fspath(source)
    label = read_label(source, storage_options=storage_options)
    where = label.source
    module = label.module

    instrument = module.get("INSTRUMENT_ID")
    if instrument is None:
        raise NotCTXError(where, "the label has no INSTRUMENT_ID: not a CTX EDR")
    if str(instrument).upper() != "CTX":
        raise NotCTXError(where, f"INSTRUMENT_ID is {instrument}: a {instrument} product, not a CTX EDR")
    data_set = str(module.get("DATA_SET_ID", ""))
    if "IMAGE_MAP_PROJECTION" in module or (data_set and "-2-EDR" not in data_set.upper()):
        raise NotCTXError(
            where,
            f"a processed or map-projected CTX product (DATA_SET_ID {data_set or 'absent'}); "
            f"ctxdask reads raw EDRs ({EDR_DATA_SET_ID})",
        )
    image = module.get("IMAGE")
    if image is None or not hasattr(image, "get"):
        raise LabelError(where, "the label has no IMAGE object")

    lines = _positive_int(image, "LINES", where)
    line_samples = _positive_int(image, "LINE_SAMPLES", where)
    bits = image.get("SAMPLE_BITS")
    if bits != 8:
        raise LabelInconsistentError(where, f"SAMPLE_BITS is {bits}; CTX EDRs are 8-bit")
    sample_type = str(image.get("SAMPLE_TYPE", "UNSIGNED_INTEGER")).upper()
    if "UNSIGNED" not in sample_type:
        raise LabelInconsistentError(where, f"SAMPLE_TYPE is {sample_type}; CTX EDRs are UNSIGNED_INTEGER")
    for key in ("LINE_PREFIX_BYTES", "LINE_SUFFIX_BYTES"):
        if image.get(key, 0) != 0:
            raise LabelInconsistentError(where, f"{key} is {image.get(key)}; the SIS says it is always 0 for CTX")
    if lines * line_samples > CTX_BUFFER_BYTES:
        raise LabelInconsistentError(
            where,
            f"LINES = {lines:,} x LINE_SAMPLES = {line_samples:,} is {lines * line_samples:,} bytes, more "
            f"than the CTX image buffer ({CTX_BUFFER_BYTES:,} bytes) can hold: the label is corrupt",
        )

    summing = module.get("SAMPLING_FACTOR")
    if isinstance(summing, float) and summing.is_integer():
        summing = int(summing)  # the SIS template writes ff.f
    if summing not in (1, 2):
        raise LabelInconsistentError(where, f"SAMPLING_FACTOR is {summing!r}; CTX sums 1 (none) or 2")
    first_pixel = module.get("SAMPLE_FIRST_PIXEL")
    if not isinstance(first_pixel, int) or first_pixel < 0:
        raise LabelInconsistentError(where, f"SAMPLE_FIRST_PIXEL is {first_pixel!r}; expected a CCD pixel number >= 0")
    layout = EDRLayout.for_modes(line_samples, summing, first_pixel)
    if layout.samples <= 0:
        raise LabelInconsistentError(
            where,
            f"LINE_SAMPLES = {line_samples} leaves no active pixels after {layout.prefix_bytes} prefix "
            f"and {layout.suffix_bytes} suffix pixels",
        )

    bit_mode = str(module.get("SAMPLE_BIT_MODE_ID", "")).upper()
    if bit_mode not in BIT_MODES:
        raise LabelInconsistentError(
            where, f"SAMPLE_BIT_MODE_ID is {bit_mode or 'absent'}; the SIS knows SQROOT, LIN1-16 and LIN1CYC-16CYC"
        )
    if bit_mode != "SQROOT" and not allow_unsupported_mode:
        raise UnsupportedModeError(
            where,
            f"SAMPLE_BIT_MODE_ID {bit_mode} is not supported: the SIS publishes no decompanding table "
            "for linear modes and ISIS mroctx2isis refuses them too",
        )

    exposure_ms = _exposure_ms(module, where)
    start_time = _start_time(module, where)
    data_source, image_offset = label.pointer("IMAGE")
    file_size = _check_sizes(label, data_source, image_offset, lines * line_samples, storage_options)

    checksum = image.get("CHECKSUM")
    return EDRProduct(
        source=source,
        data_source=data_source,
        label=label,
        layout=layout,
        lines=lines,
        image_offset=image_offset,
        file_size=file_size,
        product_id=str(module.get("PRODUCT_ID", "")).upper(),
        bit_mode=bit_mode,
        exposure_ms=exposure_ms,
        start_time=start_time,
        checksum=checksum if isinstance(checksum, int) else None,
        storage_options=storage_options,
    )


class CTXBackendArray(BackendArray):
    """Lazy 2-D view of one column range of every raw line of an EDR.

    Holds only the source string, offsets and shape (no open handle), so it
    pickles to worker processes; each read touches only the requested lines.
    """

    def __init__(
        self,
        source: str,
        offset: int,
        line_bytes: int,
        lines: int,
        columns: tuple[int, int],
        storage_options: dict | None = None,
    ):
        self.source = source
        self.offset = offset
        self.line_bytes = line_bytes
        self.columns = columns
        self.storage_options = storage_options
        self.shape = (lines, columns[1] - columns[0])
        self.dtype = np.dtype("uint8")

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw_indexing_method
        )

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:
        line_key, column_key = key
        if isinstance(line_key, slice):
            start, stop, step = line_key.indices(self.shape[0])
            local = slice(None, None, step)
        else:  # an integer line
            start, stop, local = int(line_key), int(line_key) + 1, 0
        if stop <= start or self.shape[1] == 0:
            # nothing to read (empty selection, or the zero-width suffix of some modes)
            block = np.zeros((max(stop - start, 0), self.shape[1]), dtype=self.dtype)
            return block[local, column_key]
        block = rawio.read_records(self.source, self.offset, self.line_bytes, start, stop, self.storage_options)
        c0, c1 = self.columns
        # copy out of the full-width block so a narrow (dark) chunk does not pin whole lines
        return np.ascontiguousarray(block[:, c0:c1][local, column_key])


_DESCRIPTIONS = {
    "image": "active detector pixels",
    "dark": "masked dark-reference pixels kept by ISIS mroctx2isis",
    "prefix": "every byte before the active pixels",
    "suffix": "every byte after the active pixels",
}
_DIMS = {
    "image": ("line", "sample"),
    "dark": ("line", "dark_sample"),
    "prefix": ("line", "prefix_sample"),
    "suffix": ("line", "suffix_sample"),
}


def edr_dataset(product: EDRProduct, *, chunk_lines: int | None = None) -> xr.Dataset:
    """Build the lazy Dataset of DESIGN.md section 3 for a described EDR."""
    layout = product.layout
    chunk_lines = int(chunk_lines or config.get("chunk-lines"))
    variables = {}
    for name, columns in layout.regions.items():
        array = CTXBackendArray(
            product.data_source,
            product.image_offset,
            product.line_bytes,
            product.lines,
            columns,
            product.storage_options,
        )
        dims = _DIMS[name]
        attrs: dict[str, Any] = {"long_name": _DESCRIPTIONS[name]}
        if name in ("image", "dark"):
            attrs.update(calibration="raw", units="DN")
        if name == "image":
            attrs["history"] = f"ctxdask {__version__} open_edr: raw {layout.samples} active samples"
        encoding = {"preferred_chunks": {dims[0]: chunk_lines, dims[1]: array.shape[1]}, "dtype": array.dtype}
        variables[name] = xr.Variable(dims, indexing.LazilyIndexedArray(array), attrs, encoding)

    coords = {
        "line": ("line", np.arange(product.lines)),
        "sample": ("sample", np.arange(layout.samples)),
        "detector_pixel": ("sample", layout.detector_pixels(), {"long_name": "CCD pixel of each active sample"}),
        "time": ("line", product.line_times(), {"long_name": "line acquisition time (UTC)"}),
        "dark_sample": ("dark_sample", np.arange(layout.dark_start, layout.dark_stop), {"long_name": "raw column"}),
        "prefix_sample": ("prefix_sample", np.arange(0, layout.prefix_bytes), {"long_name": "raw column"}),
        "suffix_sample": (
            "suffix_sample",
            np.arange(layout.active_stop, layout.line_samples),
            {"long_name": "raw column"},
        ),
    }
    attrs = label_attrs(product.label.module)
    attrs["pds3_label"] = product.label.text
    attrs["source"] = product.source
    return xr.Dataset(variables, coords=coords, attrs=attrs)


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
    from ctxdask.backend import CTXBackendEntrypoint

    if chunks is _CHUNKS_DEFAULT:
        chunks = {}
    line_chunks = _line_chunks(chunks)
    if line_chunks is not None:
        product = describe_edr(source, storage_options=storage_options, allow_unsupported_mode=allow_unsupported_mode)
        return _shared_read_dataset(product, line_chunks or int(config.get("chunk-lines")))
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


# -- label checks ----------------------------------------------------------------------


def _positive_int(obj: Any, key: str, where: str) -> int:
    value = obj.get(key)
    if value is None:
        raise LabelError(where, f"the IMAGE object has no {key}")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise LabelInconsistentError(where, f"{key} is {value!r}; expected a positive whole number")
    return value


def _exposure_ms(module: Any, where: str) -> float:
    value = module.get("LINE_EXPOSURE_DURATION")
    units = getattr(value, "units", "MSEC")
    value = getattr(value, "value", value)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise LabelInconsistentError(where, f"LINE_EXPOSURE_DURATION is {value!r}; expected a positive number of ms")
    scale = {"MSEC": 1.0, "MS": 1.0, "SEC": 1000.0, "S": 1000.0, "USEC": 1e-3}.get(str(units).upper())
    if scale is None:
        raise LabelInconsistentError(where, f"LINE_EXPOSURE_DURATION has unknown units <{units}>")
    return float(value) * scale


def _start_time(module: Any, where: str) -> np.datetime64:
    value = module.get("START_TIME")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return np.datetime64(value, "ns")
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?", value):
        return np.datetime64(value.rstrip("Z"), "ns")
    raise LabelInconsistentError(where, f"START_TIME is {value!r}; expected a UTC time yyyy-mm-ddThh:mm:ss.fff")


def _check_sizes(
    label: Label, data_source: str, image_offset: int, image_bytes: int, storage_options: dict | None
) -> int | None:
    """Check the label's own size claims, then the file against them."""
    module = label.module
    needed = image_offset + image_bytes
    record_bytes, file_records = module.get("RECORD_BYTES"), module.get("FILE_RECORDS")
    if isinstance(record_bytes, int) and isinstance(file_records, int):
        declared = record_bytes * file_records
        if declared < needed:
            raise LabelInconsistentError(
                label.source,
                f"the label contradicts itself: the IMAGE object ends at byte {needed:,} but "
                f"FILE_RECORDS x RECORD_BYTES = {file_records:,} x {record_bytes:,} = {declared:,}",
            )
    try:
        size = rawio.source_size(data_source, storage_options)
    except FileNotFoundError:
        raise TruncatedFileError(
            data_source, f"the image data file named by the label of {label.source} does not exist"
        ) from None
    if size is not None and size < needed:
        raise TruncatedFileError(
            data_source,
            f"truncated image: the label needs {needed:,} bytes but the file has {size:,} "
            f"({(needed - size) / max(label.module['IMAGE']['LINE_SAMPLES'], 1):,.0f} lines short); "
            "the download was probably interrupted, fetch the product again",
        )
    return size
