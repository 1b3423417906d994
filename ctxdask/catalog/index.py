"""PDS3 ASCII index tables (``INDEX_TABLE``, ``TABLE``) as typed pandas DataFrames.

A PDS3 index is a fixed-width ASCII table described by a label: one
``COLUMN`` object per field with ``START_BYTE`` (1-based), ``BYTES``,
``DATA_TYPE`` and optionally ``ITEMS``/``ITEM_BYTES``/``ITEM_OFFSET`` for
repeated fields, and ``MISSING_CONSTANT``/``NOT_APPLICABLE_CONSTANT``/... for
values that mean "no value". Nothing here knows CTX: the layout comes from the
label alone, so the same reader takes any PDS3 volume's ``index.lbl`` or
``cumindex.lbl`` (columns may also live in a ``^STRUCTURE`` format file).

Tables are read as they occur in the wild: CRLF or LF record ends (a table whose
CRLFs were turned into LFs in transit still reads), quoted or bare strings,
blank padding, blank or constant-valued missing fields. Each record is cut by
byte position, never by splitting on commas, because quoted text may hold
commas.

The CTX cumulative index has well over 100,000 rows of 555 bytes, so reading is
streamed: :func:`iter_index` yields DataFrames of ``chunk_rows`` rows and only
the requested columns are decoded; :func:`read_index` concatenates them (and can
keep only the rows a filter accepts, so memory follows the result, not the
table).

Types: ``CHARACTER`` -> pandas ``str`` (missing: NA); ``ASCII_INTEGER`` ->
nullable ``Int64``; ``ASCII_REAL`` -> ``float64`` (missing: NaN); ``TIME`` and
``DATE`` -> ``datetime64[ns]`` (ISO and day-of-year forms; missing: NaT). Any
other ``DATA_TYPE`` reads as text. ``dtypes=`` overrides a column's type, e.g.
``{"IMAGE_TIME": "time"}`` for the CTX index, which declares its times as
CHARACTER.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pvl

from ctxdask.catalog.errors import IndexFormatError
from ctxdask.exceptions import CTXError, TruncatedFileError
from ctxdask.pds3 import Label, parse_label, read_label
from ctxdask.rawio import read_range, source_size
from ctxdask.settings import current as current_settings

__all__ = [
    "Column",
    "IndexTable",
    "open_index",
    "read_index",
    "iter_index",
    "column_kind",
]

#: PDS3 DATA_TYPE values of ASCII tables, by the kind of value they hold
_KINDS = {
    "character": {"CHARACTER", "ASCII_CHARACTER", "CHAR"},
    "integer": {"ASCII_INTEGER", "INTEGER", "ASCII_UNSIGNED_INTEGER", "UNSIGNED_INTEGER"},
    "real": {"ASCII_REAL", "REAL", "FLOAT", "DOUBLE", "ASCII_FLOAT"},
    "time": {"TIME", "DATE", "ASCII_TIME", "ASCII_DATE"},
}
_KIND_OF = {data_type: kind for kind, names in _KINDS.items() for data_type in names}
_DTYPE_ALIASES = {
    "str": "character", "string": "character", "character": "character", "object": "character",
    "int": "integer", "int64": "integer", "Int64": "integer", "integer": "integer",
    "float": "real", "float64": "real", "real": "real",
    "time": "time", "datetime": "time", "datetime64[ns]": "time",
}
#: label keywords whose values mean "no value" in a column
_MISSING_KEYWORDS = ("MISSING_CONSTANT", "NOT_APPLICABLE_CONSTANT", "NULL_CONSTANT", "UNKNOWN_CONSTANT",
                     "INVALID_CONSTANT")
_DOY_RE = re.compile(r"(\d{4})-(\d{3})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?Z?")


def column_kind(data_type: str) -> str:
    """Map a PDS3 ``DATA_TYPE`` to ``"character"``, ``"integer"``, ``"real"`` or ``"time"``.

    Unknown types read as ``"character"`` (lossless: the text is kept).
    """
    return _KIND_OF.get(str(data_type).strip().upper(), "character")


@dataclasses.dataclass(frozen=True)
class Column:
    """One ``COLUMN`` object of a PDS3 table label.

    Attributes
    ----------
    name : str
        NAME.
    kind : str
        ``"character"``, ``"integer"``, ``"real"`` or ``"time"`` (from DATA_TYPE).
    start : int
        0-based offset of the first byte within the row (START_BYTE - 1).
    width : int
        Bytes of one item.
    items : int
        ITEMS (1 for a scalar column).
    item_offset : int
        Bytes from the start of one item to the start of the next.
    missing : tuple
        Values that mean "no value" (MISSING_CONSTANT, NOT_APPLICABLE_CONSTANT, ...).
    data_type : str
        DATA_TYPE as written in the label.
    unit, description : str or None
        UNIT and DESCRIPTION.
    """

    name: str
    kind: str
    start: int
    width: int
    items: int = 1
    item_offset: int = 0
    missing: tuple = ()
    data_type: str = "CHARACTER"
    unit: str | None = None
    description: str | None = None

    @property
    def names(self) -> list[str]:
        """DataFrame column names: NAME, or NAME_1 ... NAME_n for ITEMS = n."""
        if self.items == 1:
            return [self.name]
        return [f"{self.name}_{i + 1}" for i in range(self.items)]

    @property
    def spans(self) -> list[tuple[int, int]]:
        """0-based ``(start, stop)`` byte spans of each item within the row."""
        return [(self.start + i * self.item_offset, self.start + i * self.item_offset + self.width)
                for i in range(self.items)]

    @property
    def stop(self) -> int:
        """0-based end (exclusive) of the last item."""
        return self.spans[-1][1]


@dataclasses.dataclass(frozen=True)
class IndexTable:
    """Where a PDS3 ASCII table lives and how its rows are laid out.

    Holds only plain values (no open file), so it pickles to dask workers.
    Build one with :func:`open_index`.

    Attributes
    ----------
    label_source : str
        The label's path or URL.
    source : str
        The table file's path or URL.
    offset : int
        Byte offset of the first row in ``source``.
    rows : int
        Number of rows.
    record_bytes : int
        Bytes from the start of one row to the next, as found in the file
        (prefix + ROW_BYTES + suffix; one less than the label says when the
        table's CRLFs became LFs).
    row_prefix : int
        ROW_PREFIX_BYTES, skipped before each row.
    columns : tuple of Column
        The columns, in label order.
    object_name : str
        The label object that describes the table (``INDEX_TABLE``, ``TABLE``, ...).
    storage_options : dict or None
        fsspec options for remote sources.
    """

    label_source: str
    source: str
    offset: int
    rows: int
    record_bytes: int
    row_prefix: int
    columns: tuple[Column, ...]
    object_name: str = "TABLE"
    storage_options: dict | None = None

    @property
    def names(self) -> list[str]:
        """Every DataFrame column name, in label order."""
        return [n for c in self.columns for n in c.names]

    def column(self, name: str) -> Column:
        """The column called ``name`` (also accepts an item name such as ``NAME_2``)."""
        for c in self.columns:
            if name == c.name or name in c.names:
                return c
        raise KeyError(f"{self.label_source}: no column {name!r}; the label has {', '.join(self.names)}")

    def read_rows(
        self,
        start: int,
        stop: int,
        *,
        columns: Iterable[str] | None = None,
        dtypes: dict[str, str] | None = None,
        mask_constants: bool = True,
    ) -> pd.DataFrame:
        """Read rows ``start:stop`` (0-based) into a DataFrame indexed by row number."""
        start, stop = max(0, start), min(self.rows, stop)
        wanted = self._select(columns)
        if stop <= start:
            return self._frame({}, wanted, dtypes, np.arange(0))
        length = (stop - start) * self.record_bytes
        try:
            raw = read_range(self.source, self.offset + start * self.record_bytes, length, self.storage_options)
        except TruncatedFileError:
            raise IndexFormatError(
                self.source,
                f"the table ends before row {stop:,} that the label ({self.label_source}) declares; "
                "the file is truncated, fetch it again",
            ) from None
        block = raw.reshape(stop - start, self.record_bytes)[:, self.row_prefix:]
        values: dict[str, Any] = {}
        for column, name, (a, b) in wanted:
            kind = _override_kind(column, name, dtypes)
            values[name] = _convert(block[:, a:b], kind, column, name, start, self, mask_constants)
        return self._frame(values, wanted, dtypes, np.arange(start, stop))

    def iter_chunks(
        self,
        chunk_rows: int | None = None,
        *,
        columns: Iterable[str] | None = None,
        dtypes: dict[str, str] | None = None,
        mask_constants: bool = True,
    ) -> Iterator[pd.DataFrame]:
        """Yield DataFrames of at most ``chunk_rows`` rows, in table order."""
        chunk_rows = int(chunk_rows or current_settings().catalog.index_chunk_rows)
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, not {chunk_rows}")
        for start in range(0, self.rows, chunk_rows):
            yield self.read_rows(start, start + chunk_rows, columns=columns, dtypes=dtypes,
                                 mask_constants=mask_constants)

    def empty(self, *, columns: Iterable[str] | None = None, dtypes: dict[str, str] | None = None) -> pd.DataFrame:
        """A zero-row DataFrame with the columns and dtypes reads produce."""
        return self._frame({}, self._select(columns), dtypes, np.arange(0))

    # -- helpers -----------------------------------------------------------------------

    def _select(self, columns: Iterable[str] | None) -> list[tuple[Column, str, tuple[int, int]]]:
        items = [(c, n, s) for c in self.columns for n, s in zip(c.names, c.spans)]
        if columns is None:
            return items
        if isinstance(columns, str):
            raise TypeError("columns must be a list of names, not a single string")
        by_name = {n: (c, n, s) for c, n, s in items}
        chosen = []
        for name in columns:
            if name in by_name:
                chosen.append(by_name[name])
            else:
                group = [t for t in items if t[0].name == name]  # NAME of an ITEMS column: all items
                if not group:
                    raise KeyError(f"{self.label_source}: no column {name!r}; the label has {', '.join(self.names)}")
                chosen.extend(group)
        return chosen

    def _frame(self, values: dict, wanted: list, dtypes: dict | None, index: np.ndarray) -> pd.DataFrame:
        data = {}
        for column, name, _ in wanted:
            kind = _override_kind(column, name, dtypes)
            # arrays, not Series: a Series would be aligned on its own 0-based index
            data[name] = (values[name] if name in values else _empty_series(kind)).array
        frame = pd.DataFrame(data, index=pd.RangeIndex(index[0], index[-1] + 1) if len(index) else pd.RangeIndex(0))
        frame.index.name = "row"
        return frame


def open_index(
    label: str | os.PathLike | Label,
    *,
    table: str | None = None,
    storage_options: dict | None = None,
) -> IndexTable:
    """Read a PDS3 table label and describe its table.

    Parameters
    ----------
    label : str, os.PathLike or Label
        The label (``cumindex.lbl``, ``index.lbl``, ...), local or a URL, or an
        already read :class:`~ctxdask.pds3.Label`.
    table : str, optional
        The table object's name (``INDEX_TABLE``, ``TABLE``, ...). By default
        the first ``^POINTER`` whose object has COLUMN objects.
    storage_options : dict, optional
        fsspec options for remote labels and tables.

    Raises
    ------
    IndexFormatError
        The label describes no readable ASCII table, or its columns do not fit the rows.
    """
    if not isinstance(label, Label):
        label = read_label(label, storage_options=storage_options)
    module = label.module
    name = table or _find_table_object(module, label.source)
    obj = module.get(name)
    if not isinstance(obj, pvl.collections.PVLObject):
        raise IndexFormatError(label.source, f"the label has no {name} object")
    fmt = str(obj.get("INTERCHANGE_FORMAT", "ASCII")).upper()
    if fmt != "ASCII":
        raise IndexFormatError(label.source, f"{name} has INTERCHANGE_FORMAT = {fmt}; only ASCII tables are read")
    row_bytes = _int(obj, "ROW_BYTES", label.source, name)
    prefix = int(obj.get("ROW_PREFIX_BYTES", 0) or 0)
    suffix = int(obj.get("ROW_SUFFIX_BYTES", 0) or 0)
    columns = _columns(obj, label, name, storage_options)
    for c in columns:
        if c.start < 0 or c.width < 1 or c.stop > row_bytes:
            raise IndexFormatError(
                label.source,
                f"column {c.name} (START_BYTE {c.start + 1}, {c.width} bytes x {c.items}) does not fit in "
                f"ROW_BYTES = {row_bytes}",
            )
    try:
        source, offset = label.pointer(name)
    except CTXError as exc:
        raise IndexFormatError(label.source, exc.reason) from None

    size = _size(source, storage_options)
    declared = prefix + row_bytes + suffix
    rows = obj.get("ROWS")
    record_bytes = _record_bytes(source, offset, declared, rows, size, storage_options)
    if not isinstance(rows, int):
        rows = (size - offset) // record_bytes
    elif rows < 0:
        raise IndexFormatError(label.source, f"ROWS = {rows} is negative")
    if size is not None and offset + rows * record_bytes > size:
        have = max(0, (size - offset) // record_bytes)
        raise IndexFormatError(
            source,
            f"truncated table: the label declares {rows:,} rows of {record_bytes} bytes but the file holds "
            f"{have:,}; fetch the table again",
        )
    return IndexTable(label.source, source, offset, rows, record_bytes, prefix, tuple(columns), name,
                      storage_options)


def iter_index(
    label: str | os.PathLike | Label | IndexTable,
    *,
    columns: Iterable[str] | None = None,
    chunk_rows: int | None = None,
    dtypes: dict[str, str] | None = None,
    mask_constants: bool = True,
    table: str | None = None,
    storage_options: dict | None = None,
) -> Iterator[pd.DataFrame]:
    """Stream a PDS3 index as DataFrames of ``chunk_rows`` rows.

    Parameters are those of :func:`read_index`; memory stays bounded by one chunk.
    """
    index = label if isinstance(label, IndexTable) else open_index(label, table=table,
                                                                   storage_options=storage_options)
    yield from index.iter_chunks(chunk_rows, columns=columns, dtypes=dtypes, mask_constants=mask_constants)


def read_index(
    label: str | os.PathLike | Label | IndexTable,
    *,
    columns: Iterable[str] | None = None,
    where: Callable[[pd.DataFrame], Any] | None = None,
    chunk_rows: int | None = None,
    dtypes: dict[str, str] | None = None,
    mask_constants: bool = True,
    table: str | None = None,
    storage_options: dict | None = None,
) -> pd.DataFrame:
    """Read a PDS3 index table into one typed DataFrame.

    Parameters
    ----------
    label : str, os.PathLike, Label or IndexTable
        The table's label (local or URL), or a table from :func:`open_index`.
    columns : list of str, optional
        Columns to decode (default: all). An ITEMS column's NAME selects all its items.
    where : callable, optional
        ``where(chunk) -> boolean mask``: keep only the rows it accepts. Applied
        chunk by chunk, so a filtered read of a large index needs memory for the
        result only.
    chunk_rows : int, optional
        Rows decoded at a time; default ``ctxdask.catalog.index-chunk-rows``.
    dtypes : dict, optional
        Column name -> ``"character"``, ``"integer"``, ``"real"`` or ``"time"``,
        overriding the label's DATA_TYPE.
    mask_constants : bool
        Turn MISSING_CONSTANT, NOT_APPLICABLE_CONSTANT, ... values into NA/NaN.
    table : str, optional
        The table object's name, when the label has several.
    storage_options : dict, optional
        fsspec options for remote labels and tables.

    Returns
    -------
    pandas.DataFrame
        Indexed by 0-based row number in the table.

    Raises
    ------
    IndexFormatError
        The label or the table is malformed (the message names row and column).

    Examples
    --------
    >>> idx = read_index("cumindex.lbl", columns=["VOLUME_ID", "FILE_SPECIFICATION_NAME", "PRODUCT_ID"])
    ... # doctest: +SKIP
    """
    index = label if isinstance(label, IndexTable) else open_index(label, table=table,
                                                                   storage_options=storage_options)
    parts = []
    for chunk in index.iter_chunks(chunk_rows, columns=columns, dtypes=dtypes, mask_constants=mask_constants):
        if where is not None:
            chunk = chunk[np.asarray(where(chunk), dtype=bool)]
        parts.append(chunk)
    if not parts:
        return index.empty(columns=columns, dtypes=dtypes)
    return pd.concat(parts) if len(parts) > 1 else parts[0]


# -- label -> layout ------------------------------------------------------------------------


def _find_table_object(module: pvl.PVLModule, source: str) -> str:
    candidates = []
    for key in module.keys():
        if key.startswith("^"):
            obj = module.get(key[1:])
            if isinstance(obj, pvl.collections.PVLObject) and ("COLUMN" in obj or "^STRUCTURE" in obj):
                candidates.append(key[1:])
    if not candidates:
        raise IndexFormatError(
            source, "no ^POINTER to an object with COLUMN definitions: not a PDS3 table label"
        )
    # an index label may also point at other objects; prefer the index table
    candidates.sort(key=lambda n: (not n.endswith("INDEX_TABLE"), not n.endswith("TABLE")))
    return candidates[0]


def _columns(obj: pvl.PVLObject, label: Label, name: str, storage_options: dict | None) -> list[Column]:
    defs = [v for k, v in obj.items() if k == "COLUMN"]
    if "^STRUCTURE" in obj:
        defs.extend(_structure_columns(str(obj["^STRUCTURE"]), label.source, storage_options))
    if any(k == "CONTAINER" for k in obj.keys()):
        raise IndexFormatError(label.source, f"{name} uses CONTAINER objects, which this reader does not support")
    if not defs:
        raise IndexFormatError(label.source, f"{name} defines no COLUMN objects")
    columns, seen = [], set()
    for i, d in enumerate(defs, 1):
        cname = str(d.get("NAME", "")).strip()
        if not cname:
            raise IndexFormatError(label.source, f"COLUMN number {i} of {name} has no NAME")
        if cname in seen:
            raise IndexFormatError(label.source, f"{name} defines column {cname} twice")
        seen.add(cname)
        start = _int(d, "START_BYTE", label.source, cname) - 1
        total = _int(d, "BYTES", label.source, cname)
        items = int(d.get("ITEMS", 1) or 1)
        width, step = total, 0
        if items > 1:
            width = int(d.get("ITEM_BYTES") or _item_width(total, items))
            step = int(d.get("ITEM_OFFSET") or _item_step(total, items, width))
        data_type = str(d.get("DATA_TYPE", "CHARACTER"))
        missing = tuple(_plain(d[k]) for k in _MISSING_KEYWORDS if k in d)
        unit = d.get("UNIT")
        columns.append(Column(
            name=cname, kind=column_kind(data_type), start=start, width=width, items=items, item_offset=step,
            missing=missing, data_type=data_type, unit=None if unit is None else str(unit),
            description=None if d.get("DESCRIPTION") is None else " ".join(str(d["DESCRIPTION"]).split()),
        ))
    return columns


def _item_width(total: int, items: int) -> int:
    # items separated by one delimiter (the common "1,2,3" layout) or packed back to back
    if (total + 1) % items == 0:
        return (total + 1) // items - 1
    return total // items


def _item_step(total: int, items: int, width: int) -> int:
    if (total - width) % (items - 1) == 0:
        return (total - width) // (items - 1)
    return width + 1


def _structure_columns(filename: str, label_source: str, storage_options: dict | None) -> list:
    remote = "://" in label_source
    folder = posixpath.dirname(label_source) if remote else os.path.dirname(label_source)
    join = posixpath.join if remote else os.path.join
    parent = posixpath.dirname(folder) if remote else os.path.dirname(folder)
    candidates = []
    for base in (folder, join(parent, "LABEL"), join(parent, "label")):
        for variant in (filename, filename.upper(), filename.lower()):
            candidates.append(join(base, variant))
    for candidate in dict.fromkeys(candidates):
        fs, path = fsspec.core.url_to_fs(candidate, **(storage_options or {}))
        if fs.exists(path):
            text = fs.cat_file(path).decode("latin-1")
            module = parse_label(text if re.search(r"(?m)^\s*END\s*$", text) else text + "\nEND\n",
                                 source=candidate)
            return [v for k, v in module.items() if k == "COLUMN"]
    raise IndexFormatError(label_source, f"^STRUCTURE file {filename!r} not found beside the label or in ../LABEL")


def _int(obj: Any, key: str, source: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, pvl.collections.Quantity):
        value = value.value
    if not isinstance(value, int) or isinstance(value, bool):
        raise IndexFormatError(source, f"{where}: {key} is {value!r}, not an integer")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, pvl.collections.Quantity):
        value = value.value
    return value


def _size(source: str, storage_options: dict | None) -> int | None:
    try:
        return source_size(source, storage_options)
    except FileNotFoundError:
        raise IndexFormatError(source, "the table file the label points to does not exist") from None


def _record_bytes(source: str, offset: int, declared: int, rows: Any, size: int | None,
                  storage_options: dict | None) -> int:
    """Bytes per record as found in the file: the label's, or one less after CRLF -> LF."""
    if size is None or not isinstance(rows, int) or offset + rows * declared <= size or rows == 0:
        return declared
    head = bytes(read_range(source, offset, min(declared, size - offset), storage_options))
    newline = head.find(b"\n")
    if newline >= 0 and newline + 1 != declared and offset + rows * (newline + 1) <= size:
        return newline + 1
    return declared


# -- bytes -> values ------------------------------------------------------------------------


def _override_kind(column: Column, name: str, dtypes: dict | None) -> str:
    if dtypes:
        wanted = dtypes.get(name, dtypes.get(column.name))
        if wanted is not None:
            try:
                return _DTYPE_ALIASES[str(wanted)]
            except KeyError:
                raise ValueError(f"dtype for {name} must be one of {sorted(set(_DTYPE_ALIASES))}, "
                                 f"not {wanted!r}") from None
    return column.kind


def _empty_series(kind: str) -> pd.Series:
    return pd.Series([], dtype={"character": "str", "integer": "Int64", "real": "float64",
                                "time": "datetime64[ns]"}[kind])


def _fields(cells: np.ndarray) -> np.ndarray:
    """Cut a (rows, width) uint8 block into stripped, unquoted byte strings."""
    width = cells.shape[1]
    raw = np.ascontiguousarray(cells).view(f"S{width}").ravel()
    text = np.strings.strip(raw)
    quoted = (np.strings.startswith(text, b'"') & np.strings.endswith(text, b'"')
              & (np.strings.str_len(text) >= 2))
    if quoted.any():
        text = text.copy()
        text[quoted] = np.strings.strip(np.strings.slice(text[quoted], 1, -1))
    return text


def _convert(cells: np.ndarray, kind: str, column: Column, name: str, first_row: int, table: IndexTable,
             mask_constants: bool) -> pd.Series:
    text = _fields(cells)
    blank = np.strings.str_len(text) == 0
    constants = column.missing if mask_constants else ()

    def bad(mask: np.ndarray, what: str) -> IndexFormatError:
        i = int(np.flatnonzero(mask)[0])
        a = column.start + 1
        return IndexFormatError(
            table.source,
            f"row {first_row + i + 1:,}, column {name} (bytes {a}-{a + column.width - 1}): "
            f"{text[i].decode('latin-1')!r} is not {what}",
        )

    if kind == "real":
        out = np.full(text.shape, np.nan)
        ok = ~blank
        try:
            out[ok] = text[ok].astype(np.float64)
        except ValueError:
            parsed, failed = _parse_each(text[ok], float)
            if failed.any():
                raise bad(_expand(ok, failed), "a real number") from None
            out[ok] = parsed
        for value in constants:
            number = _as_float(value)
            if number is not None:
                out[out == number] = np.nan
        return pd.Series(out, dtype="float64")

    if kind == "integer":
        out = np.zeros(text.shape, dtype=np.int64)
        ok = ~blank
        try:
            out[ok] = text[ok].astype(np.int64)
        except (ValueError, OverflowError):
            parsed, failed = _parse_each(text[ok], _strict_int)
            if failed.any():
                raise bad(_expand(ok, failed), "an integer") from None
            out[ok] = parsed
        missing = blank.copy()
        for value in constants:
            number = _as_float(value)
            if number is not None and float(number).is_integer():
                missing |= (out == int(number)) & ~blank
        return pd.Series(pd.arrays.IntegerArray(out, missing))

    strings = np.strings.decode(text, "latin-1")
    if kind == "time":
        values = pd.Series(strings.astype(object))
        values[blank] = None
        for value in constants:
            values[values == str(value)] = None
        parsed = pd.to_datetime(values.str.removesuffix("Z"), format="ISO8601", errors="coerce")
        retry = parsed.isna() & values.notna()
        if retry.any():
            parsed[retry] = values[retry].map(_doy_time)
            if parsed[retry].isna().any():
                failed = np.asarray(retry & parsed.isna())
                raise bad(failed, "a PDS time (YYYY-MM-DDThh:mm:ss or YYYY-DDDThh:mm:ss)")
        return parsed.astype("datetime64[ns]")

    values = strings.astype(object)
    values[blank] = None
    for value in constants:
        values[values == str(value)] = None
    return pd.Series(values, dtype="str")


def _parse_each(values: np.ndarray, parse: Callable[[str], Any]) -> tuple[list, np.ndarray]:
    """Parse one value at a time (the slow path, taken only when a vectorized cast fails)."""
    out, failed = [], np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        try:
            out.append(parse(v.decode("latin-1")))
        except (ValueError, OverflowError):
            out.append(0)
            failed[i] = True
    return out, failed


def _expand(where: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Scatter ``flags`` (one per True of ``where``) back to a full-length mask."""
    full = np.zeros(where.shape, dtype=bool)
    full[np.flatnonzero(where)[flags]] = True
    return full


def _strict_int(text: str) -> int:
    value = int(text)  # no floats or exponents in an integer column
    if not -(2**63) <= value < 2**63:
        raise OverflowError(text)
    return value


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _doy_time(text: str) -> pd.Timestamp:
    match = _DOY_RE.fullmatch(text)
    if not match:
        return pd.NaT
    year, doy, hh, mm, ss, frac = match.groups()
    try:
        base = pd.Timestamp(int(year), 1, 1) + pd.Timedelta(days=int(doy) - 1)
    except ValueError:
        return pd.NaT
    if not 1 <= int(doy) <= (366 if base.is_leap_year else 365):
        return pd.NaT
    return base + pd.Timedelta(hours=int(hh or 0), minutes=int(mm or 0), seconds=int(ss or 0),
                               microseconds=round(float(frac or 0) * 1e6))
