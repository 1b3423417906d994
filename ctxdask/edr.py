"""CTX EDRs: the label checked and described, the lazy backing array, the Dataset.

A CTX EDR is a PDS3 label followed by ``LINES`` records of ``LINE_SAMPLES``
unsigned bytes laid out as :class:`ctxdask.layout.EDRLayout` says.
:func:`describe_edr` reads and checks the label only (with the structural
checks of :mod:`ctxdask.structure`, shared with :func:`ctxdask.validate`);
:func:`edr_dataset` wraps the result in an :class:`xarray.Dataset` whose
variables read line windows on demand through :class:`CTXBackendArray`.
:func:`ctxdask.open_edr` (in :mod:`ctxdask.backend`) puts the two together.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from ctxdask import __version__, rawio
from ctxdask.exceptions import (
    LabelError,
    LabelInconsistentError,
    NotCTXError,
    TruncatedFileError,
    UnsupportedModeError,
)
from ctxdask.layout import LAYOUTS, EDRLayout
from ctxdask.pds3 import Label, label_attrs, read_label
from ctxdask.settings import current as current_settings
from ctxdask.structure import EDR_DATA_SET_ID, Problem, check_structure, first_error, label_time

__all__ = [
    "CTX_BUFFER_BYTES",
    "EDR_DATA_SET_ID",
    "EDRLayout",
    "EDRProduct",
    "CTXBackendArray",
    "LAYOUTS",
    "describe_edr",
    "edr_dataset",
]

#: the instrument's image buffer (SIS 2.1: eight 32M x 8 SDRAMs); no EDR can be larger
CTX_BUFFER_BYTES = 256 * 1024 * 1024
#: companding modes the SIS names; only SQROOT has a published table
BIT_MODES = ("SQROOT", *(f"LIN{n}" for n in range(1, 17)), *(f"LIN{n}CYC" for n in range(1, 17)))


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
    #: structural warnings (and, from ``describe_edr(strict=False)``, errors) of :mod:`ctxdask.structure`
    problems: tuple[Problem, ...] = ()

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
    strict: bool = True,
) -> EDRProduct:
    """Read an EDR's label, check it is a raw CTX EDR this package can read, and describe it.

    Reads the label and the file's size, nothing else. Besides what it needs
    to describe the product, it runs every structural check of
    :func:`ctxdask.structure.check_structure` (the ones :func:`ctxdask.validate`
    reports) and refuses the first error.

    Parameters
    ----------
    source : str or os.PathLike
        The ``.IMG`` (label attached or ``.LBL`` beside it), a detached label, or a URL.
    storage_options : dict, optional
        fsspec options for remote sources.
    allow_unsupported_mode : bool
        Describe LIN-companded images too (their raw bytes are readable, but no
        decompanding table exists for them).
    strict : bool
        Raise the first structural error (default). ``False`` keeps every
        structural problem in ``product.problems`` instead, for reports that list them all.

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
    start_time = np.datetime64(label_time(module, "START_TIME", where), "ns")
    data_source, image_offset = label.pointer("IMAGE")
    try:
        file_size = rawio.source_size(data_source, storage_options)
    except FileNotFoundError:
        raise TruncatedFileError(
            data_source, f"the image data file named by the label of {where} does not exist"
        ) from None
    problems = check_structure(
        label, layout, lines, data_source=data_source, image_offset=image_offset, file_size=file_size
    )
    if strict and (error := first_error(problems, where)) is not None:
        raise error

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
        problems=tuple(problems),
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
    chunk_lines = int(chunk_lines or current_settings().chunk_lines)
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
