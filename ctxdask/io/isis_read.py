"""Read ISIS3 cubes: attached PVL label, image data (BandSequential or Tile), tables, blobs.

The image reader is a plain numpy block function (:func:`read_block`) over a
picklable :class:`CubeLayout` that holds a path and numbers, never an open
file, plus a thin dask wrapper (:func:`read_cube`) that makes one task per
line block. Special pixels (Null, Lrs, Lis, His, Hrs) read as NaN.

Typical uses in ctxdask: a user flat field (an ISIS ``ctxFlat_000N.cub`` is a
1-line Real cube of 5000 samples), and the ISIS test cube with its
"Ctx Prefix Dark Pixels" table.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pvl

from ctxdask import pvltext
from ctxdask.exceptions import LabelError, TruncatedFileError, UnsupportedModeError
from ctxdask.io.isis_pixels import PixelType, decode_block, pixel_type

if TYPE_CHECKING:  # dask.array is imported where a lazy array is made: label and block readers need none of it
    import dask.array as da

__all__ = [
    "CubeLayout",
    "read_label",
    "read_label_text",
    "read_block",
    "read_cube",
    "read_table",
    "table_dtype",
    "read_blob",
    "read_original_label",
]

_END = re.compile(rb"^End[ \t]*\r?$", re.MULTILINE)
_BYTE_ORDER = {"lsb": "<", "msb": ">"}
_FIELD_DTYPES = {"integer": "i4", "double": "f8", "real": "f4"}


def read_label_text(path: str | os.PathLike) -> str:
    """The attached PVL label of an ISIS cube, up to and including its ``End`` line.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    chunk, data = 65536, b""
    with open(path, "rb") as f:
        while True:
            more = f.read(chunk)
            data += more
            m = _END.search(data)
            if m:
                return data[: m.end()].decode("utf-8", errors="replace") + "\n"
            if not more or len(data) > 64 * 2**20:
                raise LabelError(path, "no ISIS label found (no 'End' line); is this an ISIS cube?")


def read_label(path: str | os.PathLike) -> pvl.PVLModule:
    """The attached label of an ISIS cube, parsed with pvl.

    Raises
    ------
    LabelError
        If the file has no parseable ISIS label.
    """
    text = read_label_text(path)
    try:
        return pvltext.loads(text)
    except Exception as e:  # pvl raises several types for malformed text
        raise LabelError(path, f"the ISIS label does not parse: {e}") from e


def _get(container: Any, key: str, path: str | os.PathLike) -> Any:
    try:
        return container[key]
    except KeyError:
        raise LabelError(path, f"ISIS label lacks {key}") from None


@dataclass(frozen=True)
class CubeLayout:
    """Where and how an ISIS cube stores its pixels (picklable: numbers and a path).

    Attributes
    ----------
    path : str
    samples, lines, bands : int
    pixel_type : str
        ISIS pixel type name.
    byte_order : str
        ``"<"`` (Lsb) or ``">"`` (Msb).
    base, multiplier : float
    start : int
        0-based byte offset of the first pixel.
    tile_samples, tile_lines : int
        Tile size; for BandSequential these are the whole band (samples, lines).
    tiled : bool
        True for ``Format = Tile``.
    """

    path: str
    samples: int
    lines: int
    bands: int
    pixel_type: str
    byte_order: str
    base: float
    multiplier: float
    start: int
    tile_samples: int
    tile_lines: int
    tiled: bool

    @classmethod
    def from_label(cls, path: str | os.PathLike, label: pvl.PVLModule | None = None) -> CubeLayout:
        """Read the layout from a cube's label (read from ``path`` when not given)."""
        label = read_label(path) if label is None else label
        cube = _get(label, "IsisCube", path)
        core = _get(cube, "Core", path)
        if "^Core" in core:
            raise UnsupportedModeError(path, "detached ISIS cubes (^Core) are not supported")
        dims = _get(core, "Dimensions", path)
        pixels = _get(core, "Pixels", path)
        try:
            ptype = pixel_type(_get(pixels, "Type", path))
        except KeyError as e:
            raise UnsupportedModeError(path, str(e.args[0])) from None
        order = _BYTE_ORDER.get(str(_get(pixels, "ByteOrder", path)).lower())
        if order is None:
            raise LabelError(path, f"unknown ByteOrder {pixels['ByteOrder']!r}")
        fmt = str(core.get("Format", "Tile"))
        samples, lines, bands = (int(_get(dims, k, path)) for k in ("Samples", "Lines", "Bands"))
        if fmt == "Tile":
            tile_samples, tile_lines, tiled = int(core["TileSamples"]), int(core["TileLines"]), True
        elif fmt == "BandSequential":
            tile_samples, tile_lines, tiled = samples, lines, False
        else:
            raise UnsupportedModeError(path, f"ISIS cube Format {fmt!r} is not supported")
        layout = cls(
            path=os.fspath(path),
            samples=samples,
            lines=lines,
            bands=bands,
            pixel_type=ptype.name,
            byte_order=order,
            base=float(pixels.get("Base", 0.0)),
            multiplier=float(pixels.get("Multiplier", 1.0)),
            start=int(_get(core, "StartByte", path)) - 1,  # ISIS StartByte is 1-based
            tile_samples=tile_samples,
            tile_lines=tile_lines,
            tiled=tiled,
        )
        needed = layout.start + layout.data_bytes
        size = os.path.getsize(path)
        if size < needed:
            raise TruncatedFileError(
                path, f"the label needs {needed:,} bytes of image data but the file has {size:,}"
            )
        return layout

    @property
    def ptype(self) -> PixelType:
        """The cube's :class:`PixelType`."""
        return pixel_type(self.pixel_type)

    @property
    def storage_dtype(self) -> np.dtype:
        """The pixel dtype as stored, in the cube's byte order."""
        return self.ptype.dtype.newbyteorder(self.byte_order)

    @property
    def tile_columns(self) -> int:
        """Tiles across the image (the last may be padded)."""
        return -(-self.samples // self.tile_samples)

    @property
    def tile_rows(self) -> int:
        """Tiles down the image (the last may be padded)."""
        return -(-self.lines // self.tile_lines)

    @property
    def data_bytes(self) -> int:
        """Bytes of pixel data on disk, including tile padding."""
        if not self.tiled:
            return self.samples * self.lines * self.bands * self.ptype.itemsize
        tile = self.tile_samples * self.tile_lines * self.ptype.itemsize
        return tile * self.tile_columns * self.tile_rows * self.bands


def _read_exact(f, offset: int, count: int, path: str) -> bytes:
    f.seek(offset)
    data = f.read(count)
    if len(data) != count:
        raise TruncatedFileError(path, f"expected {count:,} bytes at offset {offset:,}, got {len(data):,}")
    return data


def read_block(
    layout: CubeLayout,
    line_start: int,
    line_stop: int,
    band: int = 0,
    *,
    dtype: npt.DTypeLike = np.float32,
    raw: bool = False,
) -> np.ndarray:
    """Read lines ``[line_start, line_stop)`` of one band.

    Parameters
    ----------
    layout : CubeLayout
    line_start, line_stop : int
        0-based line window.
    band : int, default 0
        0-based band.
    dtype : dtype, default float32
        Output dtype (when ``raw`` is False).
    raw : bool, default False
        Return the stored values (native byte order), without scaling or
        special-pixel handling.

    Returns
    -------
    numpy.ndarray
        ``(line_stop - line_start, samples)``.
    """
    if not (0 <= line_start <= line_stop <= layout.lines and 0 <= band < layout.bands):
        raise IndexError(
            f"lines {line_start}:{line_stop} band {band} outside the cube "
            f"({layout.lines} lines, {layout.bands} bands)"
        )
    isize = layout.ptype.itemsize
    sdt = layout.storage_dtype
    with open(layout.path, "rb") as f:
        if not layout.tiled:
            offset = layout.start + ((band * layout.lines + line_start) * layout.samples) * isize
            count = (line_stop - line_start) * layout.samples
            stored = np.frombuffer(_read_exact(f, offset, count * isize, layout.path), dtype=sdt)
            stored = stored.reshape(line_stop - line_start, layout.samples)
        else:
            ts, tl, ncol = layout.tile_samples, layout.tile_lines, layout.tile_columns
            row_bytes = ncol * ts * tl * isize  # one row of tiles is contiguous
            band_bytes = row_bytes * layout.tile_rows
            first, last = line_start // tl, -(-line_stop // tl)
            pieces = []
            for row in range(first, last):
                offset = layout.start + band * band_bytes + row * row_bytes
                tiles = np.frombuffer(_read_exact(f, offset, row_bytes, layout.path), dtype=sdt)
                # (tile, line-in-tile, sample-in-tile) -> (line-in-tile, tile, sample-in-tile)
                rows = tiles.reshape(ncol, tl, ts).transpose(1, 0, 2).reshape(tl, ncol * ts)
                pieces.append(rows[:, : layout.samples])
            block = np.concatenate(pieces) if len(pieces) != 1 else pieces[0]
            lo = line_start - first * tl
            stored = block[lo : lo + (line_stop - line_start)]
    if raw:
        return stored.astype(layout.ptype.dtype)
    return decode_block(stored, layout.ptype, layout.base, layout.multiplier, dtype)


def _read_chunk(layout: CubeLayout, dtype: np.dtype, block_info=None) -> np.ndarray:
    (b0, b1), (l0, l1), _ = block_info[None]["array-location"]
    return np.stack([read_block(layout, l0, l1, b, dtype=dtype) for b in range(b0, b1)])


def read_cube(
    path: str | os.PathLike,
    *,
    chunk_lines: int | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> da.Array:
    """The pixels of an ISIS cube as a lazy dask array of full-width line blocks.

    Parameters
    ----------
    path : str or os.PathLike
    chunk_lines : int, optional
        Lines per chunk. Default: the tile height for tiled cubes (reads whole
        tile rows), else 1024; rounded up to whole tile rows.
    dtype : dtype, default float32
        Output dtype; special pixels become NaN.

    Returns
    -------
    dask.array.Array
        ``(bands, lines, samples)``.

    Examples
    --------
    >>> flat = read_cube("ctxFlat_0001.cub")[0, 0].compute()  # doctest: +SKIP
    """
    import dask.array as da

    layout = CubeLayout.from_label(path)
    dtype = np.dtype(dtype)
    step = int(chunk_lines or (layout.tile_lines if layout.tiled else 1024))
    if layout.tiled:
        step = -(-step // layout.tile_lines) * layout.tile_lines
    step = max(1, min(step, layout.lines))
    line_chunks = tuple(min(step, layout.lines - s) for s in range(0, layout.lines, step))
    return da.map_blocks(
        _read_chunk,
        layout,
        dtype,
        chunks=((1,) * layout.bands, line_chunks, (layout.samples,)),
        dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
        name=f"read-isis-{os.path.basename(layout.path)}-" + da.core.tokenize(layout, dtype, step),
    )


def _objects(label: pvl.PVLModule, kind: str):
    return [obj for key, obj in label.items() if key == kind]


def _find_object(label: pvl.PVLModule, kind: str, name: str, path) -> pvl.PVLObject:
    for obj in _objects(label, kind):
        if str(obj.get("Name")) == name:
            return obj
    have = [str(o.get("Name")) for o in _objects(label, kind)]
    raise LabelError(path, f"the cube has no {kind} named {name!r} (it has {have})")


def table_dtype(table: pvl.PVLObject) -> np.dtype:
    """The numpy structured dtype of one record of an ISIS ``Table`` object.

    Integer -> int32, Double -> float64, Real -> float32, Text -> bytes of
    ``Size`` characters; ``Size > 1`` numeric fields are sub-arrays.
    """
    order = _BYTE_ORDER[str(table.get("ByteOrder", "Lsb")).lower()]
    fields = []
    for field in table.getall("Field"):
        kind, size = str(field["Type"]).lower(), int(field["Size"])
        if kind == "text":
            fields.append((str(field["Name"]), f"S{size}"))
        elif kind in _FIELD_DTYPES:
            dt = np.dtype(order + _FIELD_DTYPES[kind])
            fields.append((str(field["Name"]), dt, (size,)) if size != 1 else (str(field["Name"]), dt))
        else:
            raise UnsupportedModeError(None, f"ISIS table field type {field['Type']!r} is not supported")
    return np.dtype(fields)


def read_table(
    path: str | os.PathLike, name: str, *, label: pvl.PVLModule | None = None
) -> np.ndarray:
    """Read an ISIS ``Table`` object as a numpy structured array.

    Parameters
    ----------
    path : str or os.PathLike
    name : str
        The table's ``Name``, e.g. ``"Ctx Prefix Dark Pixels"``.
    label : pvl.PVLModule, optional
        The parsed label, to avoid parsing it again.

    Returns
    -------
    numpy.ndarray
        One element per record; ``result["DarkPixels"]`` is ``(records, size)``
        int32 for the CTX dark table.
    """
    label = read_label(path) if label is None else label
    table = _find_object(label, "Table", name, path)
    dtype = table_dtype(table)
    records, nbytes = int(table["Records"]), int(table["Bytes"])
    if records * dtype.itemsize != nbytes:
        raise LabelError(
            path, f"table {name!r}: {records} records of {dtype.itemsize} bytes != Bytes {nbytes}"
        )
    with open(path, "rb") as f:
        data = _read_exact(f, int(table["StartByte"]) - 1, nbytes, os.fspath(path))
    return np.frombuffer(data, dtype=dtype).copy()


def read_blob(
    path: str | os.PathLike, kind: str, name: str = "IsisCube", *, label: pvl.PVLModule | None = None
) -> bytes:
    """The bytes of a blob object (``History``, ``OriginalLabel``, ``Table``, ...)."""
    label = read_label(path) if label is None else label
    obj = _find_object(label, kind, name, path)
    with open(path, "rb") as f:
        return _read_exact(f, int(obj["StartByte"]) - 1, int(obj["Bytes"]), os.fspath(path))


def read_original_label(path: str | os.PathLike, *, label: pvl.PVLModule | None = None) -> str:
    """The PDS label that the importing program (e.g. ``mroctx2isis``) kept."""
    return read_blob(path, "OriginalLabel", label=label).decode("utf-8", errors="replace")
