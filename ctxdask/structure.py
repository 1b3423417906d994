"""Structural checks of a CTX EDR: its label against itself, the SIS and the file's size.

One set of checks, run by :func:`ctxdask.edr.describe_edr` (so by
:func:`ctxdask.open_edr`, the xarray engine and ``ctxdask info``, which refuse
the first error) and by :func:`ctxdask.validate` (which reports them all).
They read nothing but the label and the file size, so they cost microseconds.

What is legal comes from the CTX EDR SIS (Caplinger 2009, ``seeds/ctx-edr-sis.txt``
in the shared reference): section 4.1 (data set id), 4.2 (the label template,
width and height multiples of 16), 4.3 (FIXED_LENGTH records, FILE_RECORDS is
the total number of records in the file, ^IMAGE points at the starting record,
SAMPLING_FACTOR 1 or 2, the prefix and suffix pixels of each mode), and from
ISIS ``ctxcal`` for how SAMPLE_FIRST_PIXEL places the image on the 5000-pixel
CCD (isis/src/mro/apps/ctxcal/ctxcal.cpp: ``if(firstSamp > 0) firstSamp -= 38``).
PDS3 byte pointers count from 1 (PDS Standards Reference, chapter 14).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterator
from typing import Any, Literal

import pvl

from ctxdask.exceptions import CTXError, LabelInconsistentError, NotCTXError, TruncatedFileError
from ctxdask.layout import CCD_PIXELS, EDRLayout
from ctxdask.pds3 import Label

__all__ = [
    "EDR_DATA_SET_ID",
    "EARLIEST_START",
    "LATEST_START",
    "Problem",
    "check_structure",
    "first_error",
    "label_time",
]

#: the EDR data set (SIS 4.1)
EDR_DATA_SET_ID = "MRO-M-CTX-2-EDR-L0-V1.0"
_DATA_SET_RE = re.compile(r"MRO-M-CTX-2-EDR-L0-V\d+\.\d+")

#: CTX cannot have imaged before MRO's launch
EARLIEST_START = datetime.datetime(2005, 8, 12)
#: the end of JPL DE421, which ctxdask uses for the Sun-Mars distance of I/F
LATEST_START = datetime.datetime(2053, 10, 9)

#: keywords every CTX EDR label has (SIS 4.2)
REQUIRED = (
    "RECORD_TYPE", "RECORD_BYTES", "FILE_RECORDS", "^IMAGE", "INSTRUMENT_ID", "DATA_SET_ID", "PRODUCT_ID",
    "START_TIME", "SAMPLE_BIT_MODE_ID", "LINE_EXPOSURE_DURATION", "SAMPLING_FACTOR", "SAMPLE_FIRST_PIXEL",
    "DATA_QUALITY_DESC",
)
REQUIRED_IMAGE = ("LINES", "LINE_SAMPLES", "SAMPLE_TYPE", "SAMPLE_BITS", "CHECKSUM")

_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%jT%H:%M:%S.%f", "%Y-%jT%H:%M:%S")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One structural finding.

    Attributes
    ----------
    check : str
        The validation check it belongs to (``keywords``, ``records``, ``file-size``, ...).
    severity : {"error", "warning"}
        Errors make the product unusable: :func:`ctxdask.open_edr` refuses it.
    message : str
        What is wrong, naming the keywords and values.
    error : type of CTXError
        The exception an error becomes.
    path : str, optional
        The file it is about when that is not the label (the data file of a detached label).
    details : dict
        Machine-readable values for reports.
    """

    check: str
    severity: Literal["error", "warning"]
    message: str
    error: type[CTXError] = LabelInconsistentError
    path: str | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def exception(self, label_source: str) -> CTXError:
        """This problem as the exception that names its file."""
        return self.error(self.path or label_source, self.message)


def first_error(problems: list[Problem], label_source: str) -> CTXError | None:
    """The exception of the first error among ``problems``, or None."""
    for problem in problems:
        if problem.severity == "error":
            return problem.exception(label_source)
    return None


def label_time(module: Any, key: str, where: str) -> datetime.datetime:
    """A label time keyword as a naive UTC datetime, refusing impossible dates.

    pvl leaves a time it cannot represent (month 13, hour 99, year 0) as a
    string; it is refused here, with the keyword, instead of deep inside an
    ephemeris later.

    Raises
    ------
    LabelInconsistentError
        The value is not a PDS3 UTC time (``yyyy-mm-ddThh:mm:ss[.fff]`` or
        ``yyyy-dddThh:mm:ss[.fff]``) on the calendar.
    """
    value = module.get(key)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value
    text = str(value).strip().rstrip("Z") if isinstance(value, str) else None
    if text:
        for fmt in _TIME_FORMATS:
            try:
                return datetime.datetime.strptime(text, fmt)
            except ValueError:
                continue
    raise LabelInconsistentError(
        where, f"{key} is {value!r}: not a UTC time on the calendar (expected yyyy-mm-ddThh:mm:ss.fff)"
    )


def check_structure(
    label: Label,
    layout: EDRLayout,
    lines: int,
    *,
    data_source: str,
    image_offset: int,
    file_size: int | None,
) -> list[Problem]:
    """Every structural problem of an EDR whose label has been parsed and described.

    Parameters
    ----------
    label : Label
    layout : EDRLayout
        From LINE_SAMPLES, SAMPLING_FACTOR and SAMPLE_FIRST_PIXEL.
    lines : int
        LINES.
    data_source : str
        The file the IMAGE object is in.
    image_offset : int
        0-based byte offset of the IMAGE object in ``data_source``.
    file_size : int or None
        Size of ``data_source``; None when unknown (some HTTP servers).

    Returns
    -------
    list of Problem
        Errors first in the order the checks run, warnings among them.
    """
    checks = (_repeated_keywords, _identity, _required, _records, _pointer, _multiples, _ccd, _times, _quality)
    problems: list[Problem] = []
    for check in checks:
        problems.extend(check(label, layout, lines, image_offset, data_source))
    problems.extend(_sizes(label, layout, lines, image_offset, data_source, file_size))
    return problems


# -- the checks ------------------------------------------------------------------------


def _repeated_keywords(label: Label, layout, lines, offset, data_source) -> Iterator[Problem]:
    """A keyword given twice: pvl keeps both, and readers disagree about which one counts."""
    for where, container in _containers(label.module):
        seen: dict[str, list[Any]] = {}
        for key, value in container.items():
            seen.setdefault(key, []).append(value)
        for key, values in seen.items():
            if len(values) < 2:
                continue
            name = f"{where}{key}"
            if any(v != values[0] for v in values[1:]):
                shown = " and ".join(_show(v) for v in values)
                yield Problem("keywords", "error", f"{name} is given {len(values)} times with different values "
                              f"({shown}); the label is ambiguous", details={"keyword": name})
            else:
                yield Problem("keywords", "warning", f"{name} is given {len(values)} times (same value)",
                              details={"keyword": name})


def _identity(label: Label, layout, lines, offset, data_source) -> Iterator[Problem]:
    data_set = label.module.get("DATA_SET_ID")
    if data_set is None:
        return
    text = str(data_set).upper()
    if "CTX" not in text:
        yield Problem(
            "instrument", "error",
            f"INSTRUMENT_ID is CTX but DATA_SET_ID {data_set} is another instrument's data set; "
            f"CTX EDRs belong to {EDR_DATA_SET_ID}",
            error=NotCTXError,
        )
    elif not _DATA_SET_RE.fullmatch(text):
        yield Problem("keywords", "error", f"DATA_SET_ID is {data_set}; expected {EDR_DATA_SET_ID}")


def _required(label: Label, layout, lines, offset, data_source) -> Iterator[Problem]:
    module, image = label.module, label.module["IMAGE"]
    missing = [k for k in REQUIRED if k not in module] + [f"IMAGE.{k}" for k in REQUIRED_IMAGE if k not in image]
    if missing:
        yield Problem("keywords", "error", f"required keywords missing: {', '.join(missing)}",
                      details={"missing": missing})


def _records(label: Label, layout: EDRLayout, lines, offset, data_source) -> Iterator[Problem]:
    module = label.module
    record_type = module.get("RECORD_TYPE")
    if record_type is not None and str(record_type).upper() != "FIXED_LENGTH":
        yield Problem("records", "error", f"RECORD_TYPE is {record_type}; CTX EDRs are FIXED_LENGTH (SIS 4.3)")
    record_bytes = module.get("RECORD_BYTES")
    if record_bytes != layout.line_samples:
        yield Problem(
            "records", "error",
            f"LINE_SAMPLES = {layout.line_samples} disagrees with RECORD_BYTES = {_show(record_bytes)}: "
            "CTX records are image lines, so one of them is wrong and every line would be read shifted",
        )


def _pointer(label: Label, layout: EDRLayout, lines, offset: int, data_source: str) -> Iterator[Problem]:
    record_bytes = label.module.get("RECORD_BYTES")
    if isinstance(record_bytes, int) and record_bytes > 0 and offset % record_bytes:
        first = offset // record_bytes * record_bytes + 1
        yield Problem(
            "pointer", "error",
            f"^IMAGE = {_show(label.module.get('^IMAGE'))} puts the image at byte {offset + 1:,}, inside a "
            f"record: FIXED_LENGTH records of {record_bytes:,} bytes start at bytes 1, {record_bytes + 1:,}, ... "
            f"(PDS byte pointers count from 1; the record holding it starts at byte {first:,})",
        )
    if label.attached and data_source == label.source and offset < label.label_bytes:
        yield Problem(
            "pointer", "error",
            f"^IMAGE = {_show(label.module.get('^IMAGE'))} puts the image at byte {offset + 1:,}, inside the "
            f"label, which takes {label.label_bytes:,} bytes",
        )


def _multiples(label: Label, layout: EDRLayout, lines: int, offset, data_source) -> Iterator[Problem]:
    if layout.line_samples % 16:
        yield Problem("keywords", "error", f"LINE_SAMPLES {layout.line_samples} is not a multiple of 16 (SIS 4.2)")
    if lines % 16:
        yield Problem("keywords", "warning", f"LINES {lines} is not a multiple of 16 (SIS 4.2)")


def _ccd(label: Label, layout: EDRLayout, lines, offset, data_source) -> Iterator[Problem]:
    """The active samples must land on the CCD, given summing and first pixel."""
    if 0 < layout.first_pixel < 38:
        yield Problem(
            "modes", "error",
            f"SAMPLE_FIRST_PIXEL = {layout.first_pixel} puts the image before the first CCD pixel: a first "
            "pixel other than 0 counts the 38 prefix pixels, so it is at least 38 (ISIS ctxcal subtracts 38)",
        )
        return
    first, stop = layout.ccd_span
    if stop > CCD_PIXELS:
        yield Problem(
            "modes", "error",
            f"LINE_SAMPLES = {layout.line_samples} with SAMPLING_FACTOR = {layout.summing} and SAMPLE_FIRST_PIXEL = "
            f"{layout.first_pixel} covers CCD pixels {first}..{stop - 1}, beyond the {CCD_PIXELS}-pixel CCD: "
            f"the width, the summing or the first pixel is wrong (a full summing-{layout.summing} line has "
            f"{(CCD_PIXELS + 56) // layout.summing} samples)",
        )


def _times(label: Label, layout, lines, offset, data_source) -> Iterator[Problem]:
    module = label.module
    for key in ("START_TIME", "STOP_TIME", "PRODUCT_CREATION_TIME"):
        if key not in module:
            continue
        try:
            value = label_time(module, key, label.source)
        except CTXError as exc:
            yield Problem("time", "error", exc.reason)
            continue
        if key == "START_TIME" and not EARLIEST_START <= value <= LATEST_START:
            yield Problem(
                "time", "error",
                f"START_TIME {value.isoformat()} is impossible for CTX: MRO launched on "
                f"{EARLIEST_START.date()}, and the ephemeris for I/F ends on {LATEST_START.date()}",
            )


def _quality(label: Label, layout, lines, offset, data_source) -> Iterator[Problem]:
    quality = str(label.module.get("DATA_QUALITY_DESC", "")).upper()
    if quality and quality != "OK":
        yield Problem(
            "data-quality", "warning",
            f"DATA_QUALITY_DESC is {quality}: fragments were received with checksum or sequence errors",
        )


def _sizes(
    label: Label, layout: EDRLayout, lines: int, offset: int, data_source: str, size: int | None
) -> Iterator[Problem]:
    """The label's own size claims, then the file against them (FILE_RECORDS counts the data file)."""
    module = label.module
    needed = offset + lines * layout.line_samples
    record_bytes, file_records = module.get("RECORD_BYTES"), module.get("FILE_RECORDS")
    declared = None
    if isinstance(record_bytes, int) and isinstance(file_records, int):
        declared = record_bytes * file_records
        if declared < needed:
            yield Problem(
                "label-values", "error",
                f"the label contradicts itself: the IMAGE object ends at byte {needed:,} but "
                f"FILE_RECORDS x RECORD_BYTES = {file_records:,} x {record_bytes:,} = {declared:,}",
            )
    if size is None:
        return
    # a detached label's data file is the one that is short or long; the message names the label too
    where = None if data_source == label.source else data_source
    told = "" if where is None else f" (label {label.source})"
    if size < needed:
        yield Problem(
            "file-size", "error",
            f"truncated image: the label needs {needed:,} bytes but the file has {size:,} "
            f"({(needed - size) / layout.line_samples:,.0f} lines short); "
            f"the download was probably interrupted, fetch the product again{told}",
            error=TruncatedFileError, path=where, details={"expected": needed, "actual": size},
        )
    elif declared is not None and size < declared:
        yield Problem(
            "file-size", "error",
            f"truncated: FILE_RECORDS = {file_records:,} records of {record_bytes:,} bytes reach byte "
            f"{declared:,}, beyond the end of the file ({size:,} bytes){told}",
            error=TruncatedFileError, path=where, details={"expected": declared, "actual": size},
        )
    elif declared is not None and size > declared:
        extra = size - declared
        whole = isinstance(record_bytes, int) and extra >= record_bytes
        yield Problem(
            "file-size", "error" if whole else "warning",
            f"{extra:,} bytes after the last of the FILE_RECORDS = {file_records:,} records"
            + (": the file holds more records than the label declares, so its record size or count is wrong"
               if whole else "") + told,
            path=where, details={"expected": declared, "actual": size},
        )


# -- helpers ---------------------------------------------------------------------------


def _containers(module: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """The label and every object or group in it, with a ``NAME.`` prefix for nested keywords."""
    yield prefix, module
    for key, value in module.items():
        if isinstance(value, (pvl.collections.PVLObject, pvl.collections.PVLGroup)):
            yield from _containers(value, f"{prefix}{key}.")


def _show(value: Any) -> str:
    if isinstance(value, pvl.collections.Quantity):
        return f"{value.value} <{value.units}>"
    return str(value)
