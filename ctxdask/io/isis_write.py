"""Write a CTX Dataset as an ISIS3 cube like ``mroctx2isis`` (level 0) or ``ctxcal`` (level 1).

Level 0 (``image.attrs["calibration"]`` is ``raw`` or ``counts``): SignedWord
pixels holding decompanded DN 1..4080, NaN (lost-packet fill) as the ISIS Null
-32768; raw uint8 input is decompanded on the way. Level 1 (``rate`` or
``iof``): Real (float32) pixels, NaN as Null 0xFF7FFFFB, plus the
``Radiometry`` group ctxcal writes (``FlatFile``, ``iof``).

Both carry the Instrument, Archive, BandBin and Kernels groups ``mroctx2isis``
writes (translated from the PDS label as its ``mroctxInstrument.trn`` and
``mroctxArchive.trn`` do; Kernels holds only ``NaifFrameCode = -74021`` until
``spiceinit`` adds the rest), the "Ctx Prefix Dark Pixels" table (one int32
record of decompanded dark pixels per line), a History blob and the
OriginalLabel blob with the PDS label text.

The image is streamed, one window of whole tile rows at a time, and never is
in memory whole. When whoever computes the blocks can write the file too (dask's
local schedulers, or distributed workers that see this very file), each task
computes its window, encodes it to ISIS pixels in tile order and writes it at its
byte offset (:func:`ctxdask.io.blockstore.store_by_line_block`). Otherwise the
encoded windows come back to this process a few at a time and are written here
while the next few are computed. The file is written under a temporary name in
the destination folder and renamed into place when complete.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import functools
import getpass
import os
import pathlib
import re
import socket
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ctxdask.companding import check_bit_mode, decompand_block, decompand_dark_block
from ctxdask.daskcompat import active_client
from ctxdask.io.atomic import check_destination
from ctxdask.io.blockstore import store_by_line_block
from ctxdask.io.isis_pixels import PixelType, encode_block, good_tile_size, pixel_type

__all__ = ["write_isis", "isis_label_groups", "good_tile_size", "dark_table_block"]

DARK_TABLE_NAME = "Ctx Prefix Dark Pixels"
LABEL_BYTES = 65536  # what ISIS reserves for a new cube's label
_LEVEL_OF = {"raw": 0, "counts": 0, "rate": 1, "iof": 1}


# --------------------------------------------------------------------------- PVL text


class _Node:
    """An ISIS PVL Object or Group: ordered keywords and nested nodes."""

    def __init__(self, kind: str, name: str, items: list[tuple[str, Any]] | None = None):
        self.kind, self.name, self.items = kind, name, list(items or [])

    def add(self, key: str, value: Any) -> _Node:
        self.items.append((key, value))
        return self


_UNQUOTED = re.compile(r"^[A-Za-z0-9_.:/+\-$*]+$")


def _fmt(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], _Unit):
        return f"{_fmt(value[0])} <{value[1]}>"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    text = str(value)
    if isinstance(value, _Raw) or _UNQUOTED.match(text):
        return text
    return '"' + text.replace('"', "'") + '"'


class _Unit(str):
    """A unit string, so ``(value, _Unit("MSEC"))`` renders as ``value <MSEC>``."""


class _Raw(str):
    """A value token taken verbatim from a PDS label (already valid PVL)."""


def _render(node: _Node, indent: int = 0) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}{node.kind} = {_fmt(node.name)}"]
    keys = [k for k, v in node.items if not isinstance(v, _Node)]
    width = max((len(k) for k in keys), default=0)
    previous_was_node = False
    for i, (key, value) in enumerate(node.items):
        if isinstance(value, _Node):
            if i > 0:
                lines.append("")
            lines.extend(_render(value, indent + 2))
            previous_was_node = True
        else:
            if previous_was_node:
                lines.append("")
            lines.append(f"{pad}  {key.ljust(width)} = {_fmt(value)}")
            previous_was_node = False
    lines.append(f"{pad}End_{node.kind}")
    return lines


def _render_label(nodes: list[_Node]) -> str:
    out: list[str] = []
    for i, node in enumerate(nodes):
        if i:
            out.append("")
        out.extend(_render(node))
    out.append("End")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- label groups


def _pds_token(label_text: str | None, key: str) -> tuple[str, str | None] | None:
    """The value token (unquoted) and unit of ``key`` in a PDS label text, as written."""
    if not label_text:
        return None
    m = re.search(rf"^[ \t]*{re.escape(key)}[ \t]*=[ \t]*(.*?)[ \t]*$", label_text, re.MULTILINE)
    if m is None:
        return None
    token, unit = m.group(1), None
    um = re.match(r"^(.*?)\s*<([^>]*)>$", token)
    if um:
        token, unit = um.group(1), um.group(2)
    if len(token) >= 2 and token[0] == token[-1] == '"':
        token = token[1:-1]
    return token, unit


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _value(attrs: Mapping[str, Any], label_text: str | None, key: str, default: Any) -> Any:
    """A keyword as mroctx2isis reads it: the PDS label token, else the attr, else ISIS's default."""
    token = _pds_token(label_text, key)
    if token is not None:
        text, unit = token
        value: Any = _Raw(text) if _UNQUOTED.match(text) else text
        return (value, _Unit(unit)) if unit else value
    if key in attrs:
        value = _plain(attrs[key])
        unit = attrs.get(f"{key}_units")
        return (value, _Unit(unit)) if unit else value
    return default


def _translate(value: Any, table: dict[str, str], fallback: str | None) -> Any:
    """Apply an ISIS .trn translation (case-insensitive); ``fallback`` is the ``*`` entry."""
    text = str(value[0] if isinstance(value, tuple) else value).strip()
    for native, foreign in table.items():
        if text.upper() == foreign:
            return native
    return fallback if fallback is not None else value


def _int_attr(attrs: Mapping[str, Any], label_text: str | None, keys: tuple[str, ...]) -> int:
    for key in keys:
        v = _value(attrs, label_text, key, None)
        if v is not None:
            return int(float(str(v[0] if isinstance(v, tuple) else v)))
    raise KeyError(f"none of {keys} in the Dataset attrs or its pds3_label")


def isis_label_groups(attrs: Mapping[str, Any]) -> list[_Node]:
    """The Instrument, Archive, BandBin and Kernels groups ``mroctx2isis`` writes.

    Keyword values come from the PDS label text in ``attrs["pds3_label"]``
    when it has them (that is what ``mroctx2isis`` reads, so numbers keep
    their written form, e.g. ``1.880 <MSEC>``), else from the plain attrs
    (``LINE_EXPOSURE_DURATION`` with ``LINE_EXPOSURE_DURATION_units``), else
    the translation file's default.

    Parameters
    ----------
    attrs : Mapping
        Dataset attrs as :func:`ctxdask.open_edr` makes them.

    Returns
    -------
    list
        Renderable group nodes, in ISIS order.
    """
    text = attrs.get("pds3_label")
    v = lambda key, default="UNKNOWN": _value(attrs, text, key, default)  # noqa: E731
    inst = _Node("Group", "Instrument")
    inst.add(
        "SpacecraftName",
        _translate(
            v("SPACECRAFT_NAME"),
            {"Mars_Reconnaissance_Orbiter": "MARS_RECONNAISSANCE_ORBITER"},
            None,
        ),
    )
    if str(inst.items[-1][1]).upper() == "MARS_RECON_ORBITER":
        inst.items[-1] = ("SpacecraftName", "Mars_Reconnaissance_Orbiter")
    inst.add("InstrumentId", v("INSTRUMENT_ID"))
    inst.add(
        "TargetName",
        _translate(
            v("TARGET_NAME"),
            {"Mars": "MARS", "Phobos": "PHOBOS", "Deimos": "DEIMOS", "Moon": "MOON"},
            "Sky",
        ),
    )
    inst.add("MissionPhaseName", _translate(v("MISSION_PHASE_NAME"), {"Mapping": "MAPPING"}, None))
    inst.add("StartTime", v("START_TIME", -9999))
    inst.add("SpacecraftClockCount", v("SPACECRAFT_CLOCK_START_COUNT", -9999))
    inst.add("OffsetModeId", v("OFFSET_MODE_ID"))
    inst.add("LineExposureDuration", v("LINE_EXPOSURE_DURATION"))
    inst.add("FocalPlaneTemperature", v("FOCAL_PLANE_TEMPERATURE"))
    inst.add("SampleBitModeId", v("SAMPLE_BIT_MODE_ID"))
    inst.add("SpatialSumming", _int_attr(attrs, text, ("SPATIAL_SUMMING", "SAMPLING_FACTOR")))
    inst.add("SampleFirstPixel", _int_attr(attrs, text, ("EDIT_MODE_ID", "SAMPLE_FIRST_PIXEL")))

    archive = _Node("Group", "Archive")
    for native, foreign in (
        ("DataSetId", "DATA_SET_ID"),
        ("ProductId", "PRODUCT_ID"),
        ("ProducerId", "PRODUCER_ID"),
        ("ProductCreationTime", "PRODUCT_CREATION_TIME"),
        ("OrbitNumber", "ORBIT_NUMBER"),
    ):
        archive.add(native, v(foreign))

    bandbin = _Node("Group", "BandBin")
    bandbin.add("FilterName", "BroadBand")
    bandbin.add("Center", (0.65, _Unit("micrometers")))
    bandbin.add("Width", (0.15, _Unit("micrometers")))
    kernels = _Node("Group", "Kernels").add("NaifFrameCode", -74021)
    return [inst, archive, bandbin, kernels]


# --------------------------------------------------------------------------- blocks


def dark_table_block(dark: np.ndarray) -> np.ndarray:
    """Dark pixels -> the int32 records of the "Ctx Prefix Dark Pixels" table.

    Raw uint8 is decompanded (raw 0 -> 1, like ``mroctx2isis``); decompanded
    floats are rounded; NaN becomes the SignedWord Null -32768, as ISIS stores
    a special dark pixel.
    """
    dark = np.asarray(dark)
    if dark.dtype == np.uint8:
        return decompand_dark_block(dark).astype("<i4")
    values = dark.astype(np.float64)
    missing = np.isnan(values)
    out = np.rint(np.where(missing, 0.0, values)).astype("<i4")
    out[missing] = pixel_type("SignedWord").null
    return out


def _tile_bytes(block: np.ndarray, ptype: PixelType, order: str, ts: int, tl: int) -> bytes:
    """Encoded line block (whole tile rows, the last padded with Null) in tile order."""
    lines, samples = block.shape
    ncol, nrow = -(-samples // ts), -(-lines // tl)
    padded = np.empty((nrow * tl, ncol * ts), dtype=ptype.dtype.newbyteorder(order))
    padded[lines:] = ptype.null
    padded[:lines, samples:] = ptype.null
    window = padded[:lines, :samples]
    if padded.dtype.isnative:
        encode_block(block, ptype, order, out=window)  # straight into the tile buffer: one copy fewer
    else:
        window[...] = encode_block(block, ptype, order)
    return padded.reshape(nrow, tl, ncol, ts).transpose(0, 2, 1, 3).tobytes()


def _store_in_place(tmp, writers, data, dark, windows, encode, pos, tl, row_bytes) -> None:
    """Every line window computed, encoded and written into the cube by the task that computes it."""
    sizes = tuple(b - a for a, b in windows)
    sources = {"core": data.rechunk({0: sizes, 1: -1})}  # whole tile rows per task: no shared bytes
    targets = {"core": _FileRows(str(tmp), pos["core"], row_bytes, tl, encode, data.shape)}
    if dark is not None:
        sources["dark"] = dark.rechunk({0: sizes, 1: -1})
        targets["dark"] = _FileRows(str(tmp), pos["dark"], dark.shape[1] * 4, 1, _int32_bytes, dark.shape)
    stored = store_by_line_block(sources, targets, dict.fromkeys(sources, 0))
    if writers:  # a distributed client: only the workers that were seen to share the file
        writers[0].compute(stored, workers=writers[1:]).result()
    else:
        stored.compute()


def _store_from_here(f, data, dark, windows, encode, pos, tl, row_bytes, blocks_per_compute) -> None:
    """Line windows computed and encoded by dask, sent back and written here, a few at a time."""
    step = max(1, int(blocks_per_compute))
    batches = [windows[i : i + step] for i in range(0, len(windows), step)]
    encoded = dask.delayed(encode, pure=True)

    def compute(batch):
        # pixels are encoded where they are computed (in parallel, on the workers)
        todo = [encoded(data[a:b]) for a, b in batch]
        if dark is not None:
            todo += [dark[a:b] for a, b in batch]
        return dask.compute(*todo)

    # the next batch is computed while this one is written
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="isis-write") as ahead:
        pending = ahead.submit(compute, batches[0]) if batches else None
        for k, batch in enumerate(batches):
            results = pending.result()
            pending = ahead.submit(compute, batches[k + 1]) if k + 1 < len(batches) else None
            for (a, _), block in zip(batch, results[: len(batch)]):
                f.seek(pos["core"] + (a // tl) * row_bytes)
                f.write(block)
            for (a, _), block in zip(batch, results[len(batch) :]):
                f.seek(pos["dark"] + a * block.shape[1] * 4)
                f.write(_int32_bytes(block))


def _writers_sharing(path: pathlib.Path) -> list | None:
    """Who computes the blocks, if all of them can write into ``path`` themselves.

    ``[]`` for dask's local schedulers (threads, processes, sync: this machine);
    ``[client, *worker addresses]`` when every worker of the active distributed
    client sees this very file (same device and inode); ``None`` otherwise:
    blocks then come back to this process to be written.
    """
    client = active_client()
    if client is None:
        return []
    here = os.stat(path)
    seen = client.run(_file_identity, str(path))
    if not seen or any(identity != (here.st_dev, here.st_ino) for identity in seen.values()):
        return None
    return [client, *seen]


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _FileRows:
    """``target[lines, :] = block``: a window of whole rows, encoded and written at its byte offset.

    Picklable (a path and numbers), so dask tasks on any process of this machine
    write their own window; ``unit`` lines make one stored row of ``row_bytes``.
    """

    def __init__(self, path: str, offset: int, row_bytes: int, unit: int, encode, shape: tuple[int, ...]):
        self.path, self.offset, self.row_bytes, self.unit, self.encode = path, offset, row_bytes, unit, encode
        self.shape = shape

    def __setitem__(self, region: tuple[slice, ...], block: np.ndarray) -> None:
        data = memoryview(self.encode(block))
        position = self.offset + (region[0].start // self.unit) * self.row_bytes
        fd = os.open(self.path, os.O_WRONLY)
        try:
            while data:
                written = os.pwrite(fd, data, position)
                data, position = data[written:], position + written
        finally:
            os.close(fd)


def _int32_bytes(block: np.ndarray) -> bytes:
    """Dark table rows as little-endian int32."""
    return np.ascontiguousarray(block, dtype="<i4").tobytes()


def _line_bytes(block: np.ndarray, ptype: PixelType, order: str) -> bytes:
    """Encoded line block in BandSequential order."""
    return encode_block(block, ptype, order).tobytes()


def _windows(chunks: tuple[int, ...], lines: int, unit: int) -> list[tuple[int, int]]:
    """Line windows along the dask chunk boundaries, snapped up to multiples of ``unit``."""
    bounds, pos = {0, lines}, 0
    for c in chunks:
        pos += c
        bounds.add(min(lines, -(-pos // unit) * unit))
    edges = sorted(bounds)
    return list(zip(edges[:-1], edges[1:]))


# --------------------------------------------------------------------------- writer


def _as_dask(data: Any) -> da.Array:
    # in-memory input is streamed in full-width blocks like everything else
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=(1024, -1))


def _history(level: int, source: Any, path: pathlib.Path) -> str:
    from ctxdask import __version__

    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    node = _Node("Object", "ctxdask")
    node.add("ProgramVersion", __version__)
    node.add("ExecutionDateTime", _dt.datetime.now().replace(microsecond=0).isoformat())
    node.add("HostName", socket.gethostname())
    node.add("UserName", user)
    node.add(
        "Description",
        "Write a CTX cube like mroctx2isis" if level == 0 else "Write a CTX cube like ctxcal",
    )
    params = _Node("Group", "UserParameters")
    if source:
        params.add("FROM", str(source))
    params.add("TO", str(path))
    node.add("UserParameters", params)
    return _render_label([node])


def _radiometry_group(image: xr.DataArray, radiometry: Mapping[str, Any] | None) -> _Node:
    group = _Node("Group", "Radiometry")
    if radiometry is not None:
        for k, v in radiometry.items():
            group.add(k, _plain(v))
        return group
    attrs = image.attrs
    group.add("FlatFile", str(attrs.get("flat_source", "unity")))
    # ctxcal writes iof = 1 when it produces DN/ms
    iof = attrs.get("iof_factor") if attrs.get("calibration") == "iof" else 1.0
    if iof is None:
        raise ValueError(
            "image.attrs lacks iof_factor, which the level-1 Radiometry group needs; "
            "pass radiometry={'FlatFile': ..., 'iof': ...}"
        )
    group.add("iof", float(iof))
    return group


def write_isis(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    level: Literal[0, 1] | None = None,
    format: Literal["Tile", "BandSequential"] = "Tile",
    tile_size: tuple[int, int] | None = None,
    radiometry: Mapping[str, Any] | None = None,
    blocks_per_compute: int = 2,
) -> pathlib.Path:
    """Write a CTX Dataset as an ISIS3 cube, streaming line blocks.

    Parameters
    ----------
    ds : xarray.Dataset
        A CTX Dataset (DESIGN.md section 3): ``image`` (line, sample) with
        ``attrs["calibration"]``; optional ``dark`` (line, dark_sample); label
        keywords and ``pds3_label`` in ``ds.attrs``.
    path : str or os.PathLike
        Output ``.cub``. Replaced atomically if it exists.
    level : {0, 1}, optional
        0: SignedWord DN like ``mroctx2isis``; 1: Real like ``ctxcal``.
        Default: from ``image.attrs["calibration"]`` (raw/counts -> 0,
        rate/iof -> 1).
    format : {"Tile", "BandSequential"}, default "Tile"
        Core storage; ISIS writes Tile by default.
    tile_size : (samples, lines), optional
        Tile size; default as ISIS chooses it (:func:`good_tile_size`).
    radiometry : Mapping, optional
        Level 1 only: the Radiometry group's keywords. Default:
        ``FlatFile = image.attrs["flat_source"]`` (or ``unity``) and
        ``iof = image.attrs["iof_factor"]`` for I/F, 1 for DN/ms, as ctxcal.
    blocks_per_compute : int, default 2
        When blocks come back to be written here: line blocks computed
        together; the next group is computed while one is written, so the
        writer holds at most twice this many encoded blocks.

    Returns
    -------
    pathlib.Path
        The written cube.

    Raises
    ------
    ValueError
        If the level contradicts ``image.attrs["calibration"]`` or the image
        is not 2-D.
    UnsupportedModeError
        If raw input uses a companding mode other than SQROOT.
    """
    path = check_destination(path)
    image = ds["image"]
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (line, sample), got dims {image.dims}")
    calibration = image.attrs.get("calibration", "raw" if image.dtype == np.uint8 else None)
    if calibration not in _LEVEL_OF:
        raise ValueError(
            f"image.attrs['calibration'] is {calibration!r}; expected one of {sorted(_LEVEL_OF)}"
        )
    level = _LEVEL_OF[calibration] if level is None else int(level)
    if level not in (0, 1) or (level == 0) != (_LEVEL_OF[calibration] == 0):
        raise ValueError(
            f"cannot write {calibration!r} data as a level-{level} cube: level 0 holds "
            "raw/decompanded DN (mroctx2isis), level 1 calibrated rate or I/F (ctxcal)"
        )
    if format not in ("Tile", "BandSequential"):
        raise ValueError(f"format must be 'Tile' or 'BandSequential', got {format!r}")

    data = _as_dask(image.data)
    if data.dtype == np.uint8:
        check_bit_mode(ds.attrs.get("SAMPLE_BIT_MODE_ID", "SQROOT"), ds.attrs.get("source"))
        data = data.map_blocks(decompand_block, dtype=np.float32)
    ptype = pixel_type("SignedWord" if level == 0 else "Real")
    lines, samples = data.shape

    dark = None
    if "dark" in ds:
        dark = _as_dask(ds["dark"].data).map_blocks(dark_table_block, dtype=np.dtype("<i4"))
        if dark.shape[0] != lines:
            raise ValueError(f"dark has {dark.shape[0]} lines, image {lines}")

    if format == "Tile":
        ts, tl = tile_size or (
            good_tile_size(samples, ptype.itemsize),
            good_tile_size(lines, ptype.itemsize),
        )
    else:
        ts, tl = samples, 1  # BandSequential: one "tile row" per line
    row_bytes = -(-samples // ts) * ts * tl * ptype.itemsize
    core_bytes = -(-lines // tl) * row_bytes

    original = ds.attrs.get("pds3_label")
    if original:
        original = (original if original.endswith("\n") else original + "\n").encode()
    history = _history(level, ds.attrs.get("source"), path).encode()
    ndark = 0 if dark is None else dark.shape[1]
    dark_bytes = lines * ndark * 4

    def build(label_bytes: int) -> tuple[str, dict[str, int]]:
        pos = {"core": label_bytes}
        pos["dark"] = pos["core"] + core_bytes
        pos["history"] = pos["dark"] + dark_bytes
        pos["original"] = pos["history"] + len(history)
        core = _Node("Object", "Core", [("StartByte", pos["core"] + 1), ("Format", format)])
        if format == "Tile":
            core.add("TileSamples", ts).add("TileLines", tl)
        dims = [("Samples", samples), ("Lines", lines), ("Bands", 1)]
        core.add("Dimensions", _Node("Group", "Dimensions", dims))
        pixels = [("Type", ptype.name), ("ByteOrder", "Lsb"), ("Base", 0.0), ("Multiplier", 1.0)]
        core.add("Pixels", _Node("Group", "Pixels", pixels))
        cube = _Node("Object", "IsisCube").add("Core", core)
        for group in isis_label_groups(ds.attrs):
            cube.add(group.name, group)
        if level == 1:
            cube.add("Radiometry", _radiometry_group(image, radiometry))
        nodes = [cube, _Node("Object", "Label", [("Bytes", label_bytes)])]
        if dark is not None:
            table = _Node("Object", "Table", [
                ("Name", DARK_TABLE_NAME), ("StartByte", pos["dark"] + 1), ("Bytes", dark_bytes),
                ("Records", lines), ("ByteOrder", "Lsb"),
            ])
            field = [("Name", "DarkPixels"), ("Type", "Integer"), ("Size", ndark)]
            nodes.append(table.add("Field", _Node("Group", "Field", field)))
        blobs = [("History", history), ("OriginalLabel", original)]
        for kind, blob in blobs:
            if blob:
                at = pos["history"] if kind == "History" else pos["original"]
                items = [("Name", "IsisCube"), ("StartByte", at + 1), ("Bytes", len(blob))]
                nodes.append(_Node("Object", kind, items))
        return _render_label(nodes), pos

    # the label's own size moves every StartByte: grow its reserved space until it fits
    label_bytes = LABEL_BYTES
    text, pos = build(label_bytes)
    while len(text.encode()) > label_bytes:
        label_bytes = -(-len(text.encode()) // LABEL_BYTES) * LABEL_BYTES
        text, pos = build(label_bytes)

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "wb") as f:
            f.write(text.encode().ljust(label_bytes, b"\0"))
            f.truncate(pos["core"] + core_bytes)  # sparse until each block lands at its offset
            windows = _windows(data.chunks[0], lines, tl)
            if format == "Tile":
                encode = functools.partial(_tile_bytes, ptype=ptype, order="<", ts=ts, tl=tl)
            else:
                encode = functools.partial(_line_bytes, ptype=ptype, order="<")
            writers = _writers_sharing(tmp)
            if writers is not None:
                f.flush()  # the tasks write through their own descriptors
                _store_in_place(tmp, writers, data, dark, windows, encode, pos, tl, row_bytes)
            else:
                _store_from_here(f, data, dark, windows, encode, pos, tl, row_bytes, blocks_per_compute)
            f.seek(pos["history"])
            f.write(history)
            if original:
                f.write(original)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
