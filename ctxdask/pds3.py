"""PDS3 labels: find, read and parse them with pvl; turn them into plain attrs.

This module knows PDS3, not CTX: it finds a label attached to a product (label
records before the data) or detached beside it (``X.LBL`` next to ``X.IMG``),
parses it with :mod:`pvl`, resolves object pointers (``^IMAGE``) to a data file
and byte offset, and flattens keywords into plain Python values for xarray
attrs. It imports neither numpy nor dask.

Labels are read as they occur in the wild: CRLF or LF line ends, NUL or space
padding after ``END``, quoted and unquoted strings, a missing
``PDS_VERSION_ID``. Reads go through fsspec, so a label can live at a URL.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import posixpath
import re
from typing import Any

import fsspec
import pvl

from ctxdask import filecheck, pvltext
from ctxdask.exceptions import (
    EmptyFileError,
    LabelError,
)

__all__ = [
    "Label",
    "read_label",
    "parse_label",
    "label_attrs",
    "plain_value",
]

#: how far into a file we look for the END of an attached label. CTX labels fit
#: in one record (<= 5056 bytes); other PDS3 products rarely exceed a few tens of KiB.
LABEL_SEARCH_BYTES = 256 * 1024

# "END" alone on a line (PDS3 allows trailing blanks, CR, and padding after it)
_END_RE = re.compile(rb"(?mi)^[ \t]*END[ \t]*(?:\r?\n|\r|$)")
# a first statement of the form KEYWORD = value (or ^POINTER = value)
_STATEMENT_RE = re.compile(rb"^[ \t\r\n]*\^?[A-Za-z][A-Za-z0-9_:]*[ \t]*=")
_DETACHED_SUFFIXES = (".LBL", ".lbl", ".Lbl")


@dataclasses.dataclass(frozen=True)
class Label:
    """A parsed PDS3 label and where it came from.

    Attributes
    ----------
    source : str
        The path or URL the label was read from.
    text : str
        The label text up to and including ``END`` (line ends as in the file).
    module : pvl.PVLModule
        The parsed label.
    attached : bool
        True when the label sits at the start of the data file.
    label_bytes : int
        Bytes the attached label occupies up to the END line (0 when detached).
    """

    source: str
    text: str
    module: pvl.PVLModule
    attached: bool
    label_bytes: int

    def __getitem__(self, key: str) -> Any:
        return self.module[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Return a top-level keyword (or object) value, ``default`` when absent."""
        return self.module.get(key, default)

    def pointer(self, name: str = "IMAGE") -> tuple[str, int]:
        """Resolve the ``^NAME`` pointer to ``(data source, 0-based byte offset)``.

        Handles the PDS3 forms ``^IMAGE = 2`` (record number, 1-based),
        ``^IMAGE = 2048 <BYTES>`` (byte number, 1-based), ``^IMAGE = "F.IMG"``
        and ``^IMAGE = ("F.IMG", 2)``. A file name is taken relative to the
        label's folder, trying the upper/lower case variants PDS volumes use.
        It must be a plain name in that folder: a label never makes ctxdask
        read a file elsewhere (an absolute path, ``..``, a folder or a URL is refused).
        """
        key = f"^{name}"
        if key not in self.module:
            raise LabelError(self.source, f"the label has no ^{name} pointer, so there is no {name} to read")
        value = self.module[key]
        filename = None
        location: Any = 1
        if isinstance(value, str):
            filename = value
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            filename = value[0]
            location = value[1] if len(value) > 1 else 1
        else:
            location = value

        units = None
        if isinstance(location, pvl.collections.Quantity):
            location, units = location.value, str(location.units).upper()
        if not isinstance(location, int) or isinstance(location, bool) or location < 1:
            raise LabelError(self.source, f"^{name} = {value!r} is not a valid PDS3 pointer")
        if units == "BYTES":
            offset = location - 1
        else:
            record_bytes = self.module.get("RECORD_BYTES")
            if not isinstance(record_bytes, int) or record_bytes <= 0:
                raise LabelError(
                    self.source,
                    f"^{name} counts records but RECORD_BYTES is {record_bytes!r}; cannot locate the data",
                )
            offset = (location - 1) * record_bytes

        if filename is None:
            if not self.attached:
                raise LabelError(self.source, f"detached label whose ^{name} names no data file")
            return self.source, offset
        _check_plain_name(filename, f"^{name}", self.source)
        return _find_sibling(self.source, filename), offset


def read_label(source: str | os.PathLike, *, storage_options: dict | None = None) -> Label:
    """Read the PDS3 label of a product from a path or URL.

    ``source`` may be the data file (label attached, or a detached ``.LBL``
    beside it) or the detached label itself.

    Parameters
    ----------
    source : str or os.PathLike
        Local path or fsspec URL (``https://...``, ``s3://...``).
    storage_options : dict, optional
        Passed to fsspec for remote sources.

    Returns
    -------
    Label

    Raises
    ------
    MissingFileError, NotAFileError, EmptyFileError
        The path is not a readable, non-empty file.
    LabelError
        No PDS3 label could be found or parsed.
    """
    source = os.fspath(source)
    fs, path = fsspec.core.url_to_fs(source, **(storage_options or {}))
    head = _read_head(fs, path, source)

    if _looks_like_label(head):
        text, nbytes = _cut_label(head, source)
        return Label(source, text, parse_label(text, source=source), True, nbytes)

    # not an attached label: look for a detached one beside the data file
    for candidate in _detached_candidates(source):
        cfs, cpath = fsspec.core.url_to_fs(candidate, **(storage_options or {}))
        if cfs.exists(cpath):
            chead = _read_head(cfs, cpath, candidate)
            if not _looks_like_label(chead):
                raise LabelError(candidate, "detached label file does not start with a PDS3 statement")
            text, _ = _cut_label(chead, candidate)
            label = Label(candidate, text, parse_label(text, source=candidate), False, 0)
            return label

    if _is_binary(head):
        raise LabelError(
            source,
            "binary data where a PDS3 label should start, and no detached .LBL beside it: "
            "not a PDS3 product (or a damaged one)",
        )
    raise LabelError(source, "no PDS3 label: the file does not start with KEYWORD = value statements")


def parse_label(text: str, *, source: str | None = None) -> pvl.PVLModule:
    """Parse label text with pvl, turning pvl's errors into :class:`LabelError`."""
    try:
        return pvltext.loads(text)
    except (pvl.exceptions.ParseError, pvl.exceptions.LexerError, ValueError) as exc:
        lineno, msg = getattr(exc, "lineno", None), getattr(exc, "msg", None)
        where = f" at line {lineno}" if lineno else ""
        reason = str(msg or exc or type(exc).__name__).strip()
        raise LabelError(source, f"the PDS3 label cannot be parsed{where}: {reason}") from None


def plain_value(value: Any) -> Any:
    """Convert a pvl value to a plain Python value (Quantity -> its value)."""
    if isinstance(value, pvl.collections.Quantity):
        return plain_value(value.value)
    if isinstance(value, datetime.datetime):
        return format_time(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_value(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def format_time(value: datetime.datetime) -> str:
    """Format a label time the way PDS labels write it (UTC, millisecond precision)."""
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    seconds = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond % 1000:
        return f"{seconds}.{value.microsecond:06d}"
    if value.microsecond:
        return f"{seconds}.{value.microsecond // 1000:03d}"
    return seconds


def label_attrs(module: pvl.PVLModule, *, flatten: tuple[str, ...] = ("IMAGE",)) -> dict[str, Any]:
    """Flatten a label into xarray-friendly attrs.

    Top-level keywords keep their names; keywords of the objects named in
    ``flatten`` join them unprefixed (other objects and groups get a
    ``NAME_`` prefix). Units go to ``<KEY>_units``. Pointers ``^X`` become
    ``X_POINTER`` because ``^`` is not a legal netCDF attribute name.
    """
    attrs: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, pvl.collections.Quantity):
            attrs[f"{key}_units"] = str(value.units)
        attrs[key] = plain_value(value)

    for key, value in module.items():
        if isinstance(value, (pvl.collections.PVLObject, pvl.collections.PVLGroup)):
            prefix = "" if key in flatten else f"{key}_"
            for sub_key, sub_value in value.items():
                if isinstance(sub_value, (pvl.collections.PVLObject, pvl.collections.PVLGroup)):
                    continue  # deeper nesting does not occur in CTX EDR labels
                name = f"{prefix}{sub_key}"
                put(name if name not in attrs else f"{key}_{sub_key}", sub_value)
        elif key.startswith("^"):
            put(f"{key[1:]}_POINTER", value)
        else:
            put(key, value)
    return attrs


# -- helpers -------------------------------------------------------------------------


def _read_head(fs: fsspec.AbstractFileSystem, path: str, source: str) -> bytes:
    # folders, pipes, devices, link loops, permissions and dead servers are refused here
    size = filecheck.checked_size(fs, path, source)
    if size == 0:
        raise EmptyFileError(source, "the file is empty (0 bytes): an interrupted download? fetch it again")
    end = LABEL_SEARCH_BYTES if size is None else min(size, LABEL_SEARCH_BYTES)
    with filecheck.source_errors(source):
        head = fs.cat_file(path, start=0, end=end)
    if not head:
        raise EmptyFileError(source, "the file is empty (0 bytes): an interrupted download? fetch it again")
    return head


def _looks_like_label(head: bytes) -> bool:
    return bool(_STATEMENT_RE.match(head[:512]))


def _is_binary(head: bytes) -> bool:
    sample = head[:4096]
    text_bytes = sum(1 for b in sample if 32 <= b < 127 or b in (9, 10, 13))
    return text_bytes < 0.9 * len(sample)


def _cut_label(head: bytes, source: str) -> tuple[str, int]:
    match = _END_RE.search(head)
    if match is None:
        where = f"the first {len(head):,} bytes" if len(head) >= LABEL_SEARCH_BYTES else "the file"
        raise LabelError(source, f"the PDS3 label has no END statement in {where}: damaged or not a label")
    raw = head[: match.end()]
    if b"\x00" in raw:
        raise LabelError(source, "binary bytes (NUL) inside the PDS3 label: the label is damaged")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise LabelError(
            source, f"non-ASCII byte 0x{raw[exc.start]:02X} at offset {exc.start} inside the PDS3 label"
        ) from None
    return text, match.end()


def _detached_candidates(source: str) -> list[str]:
    stem, ext = posixpath.splitext(source) if "://" in source else os.path.splitext(source)
    if ext in _DETACHED_SUFFIXES:
        return []
    return [stem + suffix for suffix in _DETACHED_SUFFIXES]


def _check_plain_name(filename: str, key: str, source: str) -> None:
    """Refuse a pointer file name that could lead out of the label's folder."""
    bad = (
        not filename.strip()
        or filename in (".", "..")
        or any(c in filename for c in "/\\:\0")
        or os.path.isabs(filename)
        or posixpath.isabs(filename)
    )
    if bad:
        raise LabelError(
            source,
            f"{key} names the file {filename!r}: a PDS3 pointer must name a file in the label's own folder "
            "(no path, '..', drive or URL); ctxdask does not follow it elsewhere",
        )


def _find_sibling(label_source: str, filename: str) -> str:
    """Path/URL of ``filename`` in the label's folder, matching case like PDS volumes do."""
    remote = "://" in label_source
    folder = posixpath.dirname(label_source) if remote else os.path.dirname(label_source)
    join = posixpath.join if remote else os.path.join
    candidates = [join(folder, filename)]
    if not remote:
        for variant in (filename.lower(), filename.upper()):
            candidates.append(join(folder, variant))
        for candidate in candidates:
            if os.path.exists(candidate):
                return candidate
    return candidates[0]
