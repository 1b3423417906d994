"""Synthetic, spec-conformant CTX EDRs for tests, notebooks, demos and benchmarks.

:func:`make_edr` writes an EDR of any size in any summing/first-pixel/bit mode,
with a label laid out like the real ones (EDR SIS section 4.2), a correct
CHECKSUM (the unsigned 32-bit byte sum of the IMAGE object), and optional
defects: zero-filled lost lines, saturated pixels, a wrong checksum,
``DATA_QUALITY_DESC = "ERROR"``. Pixels are a smooth synthetic scene with
noise, dark-reference pixels with distinct even (A) and odd (B) channel
levels, and every value deterministic for a given ``seed`` however the file
is written in blocks.

:func:`edr_from_label` pairs a real label with synthetic pixels sized to match.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ctxdask.edr import EDRLayout
from ctxdask.product_id import is_product_id

__all__ = ["DEFAULT_LINE_SAMPLES", "edr_from_label", "make_edr", "synthetic_lines", "byte_checksum"]

#: full-width raw line length of each (summing, first pixel > 0) mode as flown
DEFAULT_LINE_SAMPLES = {(1, False): 5056, (1, True): 4096, (2, False): 2528, (2, True): 2048}

#: mean raw levels of the synthetic dark-reference pixels, even (A) and odd (B) channel
DARK_LEVELS = (18, 23)

_LABEL_TEMPLATE = """\
PDS_VERSION_ID               = PDS3
FILE_NAME                    = "{file_name}"
RECORD_TYPE                  = FIXED_LENGTH
RECORD_BYTES                 = {record_bytes}
FILE_RECORDS                 = {file_records}
{label_records_line}^IMAGE                       = {image_pointer}
SPACECRAFT_NAME              = MARS_RECONNAISSANCE_ORBITER
INSTRUMENT_NAME              = "CONTEXT CAMERA"
INSTRUMENT_HOST_NAME         = "MARS RECONNAISSANCE ORBITER"
MISSION_PHASE_NAME           = "{mission_phase}"
TARGET_NAME                  = MARS
INSTRUMENT_ID                = CTX
PRODUCER_ID                  = MRO_CTX_TEAM
DATA_SET_ID                  = "MRO-M-CTX-2-EDR-L0-V1.0"
PRODUCT_CREATION_TIME        = 2026-01-01T00:00:00
SOFTWARE_NAME                = "ctxdask.testing (synthetic EDR)"
UPLOAD_ID                    = "UNK"
ORIGINAL_PRODUCT_ID          = "4A_04_0000000000"
PRODUCT_ID                   = "{product_id}"
START_TIME                   = {start_time}
STOP_TIME                    = {stop_time}
SPACECRAFT_CLOCK_START_COUNT = "{sclk}"
SPACECRAFT_CLOCK_STOP_COUNT  = "N/A"
FOCAL_PLANE_TEMPERATURE      = 295.2 <K>
SAMPLE_BIT_MODE_ID           = "{bit_mode}"
OFFSET_MODE_ID               = "196/202/188"
LINE_EXPOSURE_DURATION       = {exposure_ms:.3f} <MSEC>
SAMPLING_FACTOR              = {summing}
SAMPLE_FIRST_PIXEL           = {first_pixel}
RATIONALE_DESC               = "synthetic test scene"
DATA_QUALITY_DESC            = "{data_quality}"
ORBIT_NUMBER                 = {orbit}

OBJECT = IMAGE
  LINES             = {lines}
  LINE_SAMPLES      = {line_samples}
  LINE_PREFIX_BYTES = 0
  LINE_SUFFIX_BYTES = 0
  SAMPLE_TYPE       = UNSIGNED_INTEGER
  SAMPLE_BITS       = 8
  SAMPLE_BIT_MASK   = 2#11111111#
  CHECKSUM          = 16#{checksum:08X}#
END_OBJECT = IMAGE
END
"""


def byte_checksum(blocks: Iterable[np.ndarray]) -> int:
    """Unsigned 32-bit sum of every byte in ``blocks`` (the CTX label CHECKSUM)."""
    total = 0
    for block in blocks:
        total += int(np.sum(block, dtype=np.uint64))
    return total % 2**32


#: lines per independently seeded noise tile; keeps the bytes independent of block splits
_TILE_LINES = 256


def synthetic_lines(
    layout: EDRLayout,
    start: int,
    stop: int,
    *,
    seed: int = 0,
    lost_lines: Iterable[int] = (),
    saturated_fraction: float = 0.0,
) -> np.ndarray:
    """Raw lines ``start:stop`` of the synthetic scene, ``(n, line_samples)`` uint8.

    Values depend only on ``seed`` and the line numbers, so any block split of
    an image produces the same bytes.
    """
    tiles = [_synthetic_tile(layout, t, seed, saturated_fraction)
             for t in range(start // _TILE_LINES, (stop - 1) // _TILE_LINES + 1)] if stop > start else []
    first = (start // _TILE_LINES) * _TILE_LINES
    out = np.concatenate(tiles)[start - first : stop - first] if tiles else np.zeros((0, layout.line_samples), np.uint8)
    lost = [line - start for line in lost_lines if start <= line < stop]
    out[lost, :] = 0  # the decompressor zero-fills whole lost lines
    return out


def _synthetic_tile(layout: EDRLayout, tile: int, seed: int, saturated_fraction: float) -> np.ndarray:
    n, width = _TILE_LINES, layout.line_samples
    lines = np.arange(tile * n, (tile + 1) * n, dtype=np.float32)[:, None]
    columns = np.arange(width, dtype=np.float32)[None, :]
    rng = np.random.default_rng([seed, tile])
    # smooth "terrain" plus albedo stripes, raw values well inside 1..254
    scene = 110 + 45 * np.sin(lines / 157.0 + seed) * np.cos(columns / 97.0) + 20 * np.sin(columns / 23.0)
    out = (scene + rng.integers(-4, 5, size=(n, width), dtype=np.int8)).clip(1, 254).astype(np.uint8)

    # prefix: non-dark reference bytes at one level, the masked dark pixels per channel
    out[:, : layout.prefix_bytes] = 40
    dark = out[:, layout.dark_start : layout.dark_stop]
    noise = rng.integers(-1, 2, size=dark.shape, dtype=np.int8)
    parity = np.arange(dark.shape[1]) % 2
    dark[:] = (np.where(parity == 0, DARK_LEVELS[0], DARK_LEVELS[1]) + noise).astype(np.uint8)
    if layout.suffix_bytes:
        out[:, layout.active_stop :] = 35 + rng.integers(0, 3, size=(n, layout.suffix_bytes), dtype=np.uint8)
    if saturated_fraction > 0:
        active = out[:, layout.active_start : layout.active_stop]
        active[rng.random(active.shape) < saturated_fraction] = 255
    return out


def make_edr(
    path: str | os.PathLike,
    *,
    lines: int = 512,
    line_samples: int | None = None,
    summing: int = 1,
    first_pixel: int = 0,
    bit_mode: str = "SQROOT",
    product_id: str | None = None,
    start_time: str = "2009-06-01T00:38:16.057",
    exposure_ms: float = 1.877,
    lost_lines: Iterable[int] = (),
    saturated_fraction: float = 0.0,
    data_quality: str = "OK",
    checksum: str = "correct",
    detached: bool = False,
    crlf: bool = False,
    seed: int = 0,
    raw: np.ndarray | None = None,
    block_lines: int = 4096,
) -> pathlib.Path:
    """Write a synthetic CTX EDR and return its path.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.IMG`` path. With ``detached=True`` the label goes to the
        ``.LBL`` beside it and the ``.IMG`` holds pixels only.
    lines, line_samples : int
        Image size; ``line_samples`` defaults to the full width of the mode
        (:data:`DEFAULT_LINE_SAMPLES`) and should be a multiple of 16.
    summing, first_pixel : int
        SAMPLING_FACTOR (1 or 2) and SAMPLE_FIRST_PIXEL.
    bit_mode : str
        SAMPLE_BIT_MODE_ID, e.g. ``"SQROOT"`` or ``"LIN4"``.
    product_id : str, optional
        Defaults to the file stem when it is a product id, else a fixed valid id.
    start_time : str
        START_TIME (UTC).
    exposure_ms : float
        LINE_EXPOSURE_DURATION in ms.
    lost_lines : iterable of int
        Lines to zero-fill, as the decompressor does after a lost packet.
    saturated_fraction : float
        Fraction of active pixels set to raw 255.
    data_quality : str
        DATA_QUALITY_DESC (``"OK"`` or ``"ERROR"``).
    checksum : {"correct", "wrong"}
        Write the true CHECKSUM, or one that is off by one.
    detached : bool
        Write a detached label.
    crlf : bool
        End label lines with CR LF, as many PDS volumes do.
    seed : int
        Seed of the synthetic scene.
    raw : numpy.ndarray, optional
        Exact raw lines ``(lines, line_samples)`` to write instead of the scene.
    block_lines : int
        Lines generated and written at a time (bounds memory for full-size files).
    """
    path = pathlib.Path(path)
    if raw is not None:
        raw = np.asarray(raw, dtype=np.uint8)
        lines, line_samples = raw.shape
    if line_samples is None:
        line_samples = DEFAULT_LINE_SAMPLES[(summing, first_pixel > 0)]
    layout = EDRLayout.for_modes(line_samples, summing, first_pixel)
    lost_lines = sorted(set(lost_lines))

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, lines, block_lines):
            stop = min(start + block_lines, lines)
            if raw is not None:
                yield raw[start:stop]
            else:
                yield synthetic_lines(
                    layout, start, stop, seed=seed, lost_lines=lost_lines, saturated_fraction=saturated_fraction
                )

    if product_id is None:
        stem = path.stem.upper()
        product_id = stem if is_product_id(stem) else "B10_013341_1010_XN_79S172W"
    fields: dict[str, Any] = dict(
        product_id=product_id,
        start_time=start_time,
        stop_time=_stop_time(start_time, lines * exposure_ms * summing),
        sclk="0928283918:060",
        bit_mode=bit_mode,
        exposure_ms=exposure_ms,
        summing=summing,
        first_pixel=first_pixel,
        data_quality=data_quality,
        orbit=int(product_id[4:10]) if product_id[4:10].isdigit() else 0,
        mission_phase="ESP",
        lines=lines,
        line_samples=line_samples,
        record_bytes=line_samples,
    )
    newline = "\r\n" if crlf else "\n"
    image_path = path
    label_path = path.with_suffix(".LBL") if detached else path

    def render(total: int) -> bytes:
        if detached:
            text = _LABEL_TEMPLATE.format(
                **fields, file_name=label_path.name, file_records=lines, label_records_line="",
                image_pointer=f'("{image_path.name}", 1)', checksum=total,
            )
            return text.replace("\n", newline).encode("ascii")
        label_records = 1
        for _ in range(3):  # the record count changes the label length only through its digits
            text = _LABEL_TEMPLATE.format(
                **fields, file_name=path.name, file_records=label_records + lines,
                label_records_line=f"LABEL_RECORDS                = {label_records}\n",
                image_pointer=label_records + 1, checksum=total,
            ).replace("\n", newline).encode("ascii")
            label_records = max(1, math.ceil(len(text) / line_samples))
        return text.ljust(label_records * line_samples, b" ")

    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"" if detached else render(0)
    total = 0
    with open(image_path, "wb") as f:
        f.write(header)
        for block in blocks():
            total += int(np.sum(block, dtype=np.uint64))
            f.write(np.ascontiguousarray(block).tobytes())
        total %= 2**32
        if checksum == "wrong":
            total = (total + 1) % 2**32
        final = render(total)
        if detached:
            label_path.write_bytes(final)
        else:
            assert len(final) == len(header)
            f.seek(0)
            f.write(final)
    return path


def edr_from_label(
    label: str | os.PathLike,
    path: str | os.PathLike,
    *,
    lines: int | None = None,
    seed: int = 0,
    fix_checksum: bool = True,
) -> pathlib.Path:
    """Write an EDR that carries a real label and synthetic pixels sized to match.

    Parameters
    ----------
    label : str or os.PathLike
        A real attached-label file (e.g. from ``shared/reference/labels``); its
        first ``LABEL_RECORDS x RECORD_BYTES`` bytes or up to ``END`` are used.
    path : str or os.PathLike
        Output ``.IMG``.
    lines : int, optional
        Reduce LINES (and FILE_RECORDS with it) to keep test files small.
    seed : int
        Seed of the synthetic scene.
    fix_checksum : bool
        Replace the label CHECKSUM with the byte sum of the synthetic pixels.
    """
    from ctxdask.pds3 import read_label

    parsed = read_label(label)
    text = parsed.text
    module = parsed.module
    image = module["IMAGE"]
    record_bytes = module["RECORD_BYTES"]
    label_records = module.get("LABEL_RECORDS", 1)
    if lines is not None:
        text = _set_keyword(text, "LINES", str(lines))
        text = _set_keyword(text, "FILE_RECORDS", str(label_records + lines))
    else:
        lines = image["LINES"]
    layout = EDRLayout.for_modes(image["LINE_SAMPLES"], module["SAMPLING_FACTOR"], module["SAMPLE_FIRST_PIXEL"])
    pixels = synthetic_lines(layout, 0, lines, seed=seed)
    if fix_checksum:
        text = _set_keyword(text, "CHECKSUM", f"16#{byte_checksum([pixels]):08X}#")
    header = text.encode("ascii")
    if len(header) > label_records * record_bytes:
        raise ValueError(f"{label}: edited label no longer fits in {label_records} records")
    path = pathlib.Path(path)
    with open(path, "wb") as f:
        f.write(header.ljust(label_records * record_bytes, b" "))
        f.write(pixels.tobytes())
    return path


def _set_keyword(text: str, key: str, value: str) -> str:
    new, count = re.subn(rf"(?m)^(\s*{key}\s*=\s*)\S+", lambda m: m.group(1) + value, text, count=1)
    if count != 1:
        raise ValueError(f"keyword {key} not found in label")
    return new


def _stop_time(start_time: str, duration_ms: float) -> str:
    start = np.datetime64(start_time, "ms")
    stop = start + np.timedelta64(int(round(duration_ms)), "ms")
    return str(stop)


def rewrite_label(path: str | os.PathLike, edit) -> pathlib.Path:
    """Edit the label of an EDR written by :func:`make_edr` in place, keeping the pixels where they are.

    ``edit`` takes the label text (up to and including ``END``) and returns
    the new text. An attached label keeps its records (the new text is padded
    with blanks and must still fit before the image); a detached ``.LBL`` is
    rewritten as it is. For building deliberately broken products in tests.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.IMG`` (attached label) or the detached ``.LBL``.
    edit : callable
        ``str -> str``.

    Returns
    -------
    pathlib.Path
        The file that was rewritten.
    """
    from ctxdask.pds3 import read_label

    label = read_label(path)
    target = pathlib.Path(label.source)
    text = edit(label.text).encode("ascii")
    if not label.attached or target.suffix.upper() == ".LBL":
        target.write_bytes(text)
        return target
    data = target.read_bytes()
    room = label.module["LABEL_RECORDS"] * label.module["RECORD_BYTES"]
    if len(text) > room:
        raise ValueError(f"{target}: the edited label needs {len(text)} bytes, the label records hold {room}")
    target.write_bytes(text.ljust(room, b" ") + data[room:])
    return target
