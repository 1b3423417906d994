"""Synthetic, spec-conformant CTX EDRs for tests, notebooks, demos and benchmarks.

:func:`make_edr` writes an EDR of any size in any summing/first-pixel/bit mode,
with a label laid out like the real ones (EDR SIS section 4.2), a correct
CHECKSUM (the unsigned 32-bit byte sum of the IMAGE object), and optional
defects: zero-filled lost lines, saturated pixels, a wrong checksum,
``DATA_QUALITY_DESC = "ERROR"``. Pixels are a smooth synthetic scene with
noise, dark-reference pixels with distinct even (A) and odd (B) channel
levels in summing 1 (summing 2 adds an A and a B pixel into each sample, so
one level, as ctxcal assumes), and every value deterministic for a given ``seed`` however the file
is written in blocks.

For flat-field work, ``make_edr(scene=Scene(...), flat=known_flat())`` writes
physically modelled pixels instead: a seed-dependent terrain (:class:`Scene`:
level, contrast, haze) times a known detector flat (:func:`known_flat`:
vignetting plus a fixed pixel-to-pixel pattern), plus the channel dark level
and shot/read noise, companded through the SQROOT table.

:func:`edr_from_label` pairs a real label with synthetic pixels sized to match.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ctxdask.companding import SQROOT_TABLE, compand_block
from ctxdask.edr import EDRLayout
from ctxdask.product_id import is_product_id

__all__ = [
    "DEFAULT_LINE_SAMPLES",
    "Scene",
    "byte_checksum",
    "edr_from_label",
    "known_flat",
    "make_edr",
    "plausible_start_time",
    "synthetic_lines",
]

#: full-width raw line length of each (summing, first pixel > 0) mode as flown
DEFAULT_LINE_SAMPLES = {(1, False): 5056, (1, True): 4096, (2, False): 2528, (2, True): 2048}

#: mean raw levels of the synthetic dark-reference pixels, even (A) and odd (B) channel
DARK_LEVELS = (18, 23)


#: two real images (orbit, START_TIME) the orbit period is taken between
_ORBIT_EPOCHS = ((1472, "2006-11-19T04:01:27.976"), (31011, "2013-03-08T21:38:44.237"))


def plausible_start_time(product_id: str) -> str:
    """A START_TIME near the one the real image of ``product_id``'s orbit has (within hours).

    Interpolated between two real labels (orbits 1472 and 31011) at MRO's mean
    orbit period, so that synthetic images of different orbits lie years apart,
    as real ones do, instead of all sharing :func:`make_edr`'s default.
    """
    import datetime

    orbit = int(product_id.split("_")[1])
    (o1, t1), (o2, t2) = _ORBIT_EPOCHS
    start, end = (datetime.datetime.fromisoformat(t) for t in (t1, t2))
    period = (end - start) / (o2 - o1)
    return (start + period * (orbit - o1)).isoformat(timespec="milliseconds")


def dark_levels(summing: int) -> np.ndarray:
    """Raw dark level of each channel parity: (A, B) in summing 1, the one summed channel twice in summing 2.

    In summing 2 each sample adds two neighbouring CCD pixels, one of each read-out channel,
    so the dark-reference columns no longer alternate (ctxcal takes one mean, DESIGN 4).
    """
    return np.array(DARK_LEVELS if summing == 1 else (sum(DARK_LEVELS) // 2,) * 2)

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
    scene: Scene | None = None,
    flat: np.ndarray | None = None,
) -> np.ndarray:
    """Raw lines ``start:stop`` of the synthetic scene, ``(n, line_samples)`` uint8.

    Values depend only on ``seed`` and the line numbers, so any block split of
    an image produces the same bytes. With ``scene`` or ``flat``, the pixels are
    the physical model of :func:`make_edr` (see :class:`Scene`).
    """
    if scene is not None or flat is not None:
        model = _PhysicalModel(layout, seed, scene or Scene(), flat)
        make_tile = lambda t: model.tile(t, saturated_fraction)  # noqa: E731
    else:
        make_tile = lambda t: _synthetic_tile(layout, t, seed, saturated_fraction)  # noqa: E731
    tiles = [make_tile(t)
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
    _reference_pixels(out, layout, rng)
    if saturated_fraction > 0:
        active = out[:, layout.active_start : layout.active_stop]
        active[rng.random(active.shape) < saturated_fraction] = 255
    return out


def _reference_pixels(out: np.ndarray, layout: EDRLayout, rng: np.random.Generator) -> None:
    """Fill the prefix (masked dark pixels per channel) and suffix bytes of raw lines in place."""
    n = out.shape[0]
    out[:, : layout.prefix_bytes] = 40  # non-dark reference bytes at one level
    dark = out[:, layout.dark_start : layout.dark_stop]
    noise = rng.integers(-1, 2, size=dark.shape, dtype=np.int8)
    parity = np.arange(dark.shape[1]) % 2
    dark[:] = (dark_levels(layout.summing)[parity] + noise).astype(np.uint8)
    if layout.suffix_bytes:
        out[:, layout.active_stop :] = 35 + rng.integers(0, 3, size=(n, layout.suffix_bytes), dtype=np.uint8)


# -- physically modelled pixels for flat-field work ----------------------------------------------

#: CCD pixels of the CTX line array (the length of a ctxcal flat)
CCD_PIXELS = 5000


def known_flat(seed: int = 0, *, vignetting: float = 0.12, pattern: float = 0.01, tilt: float = 0.02) -> np.ndarray:
    """A CTX-like detector flat of :data:`CCD_PIXELS` values with median 1.

    The product of a smooth cross-track falloff (the frown FU Berlin's monthly
    flats remove: edges ``vignetting`` darker than the centre, with a slight
    ``tilt`` between the two ends) and a fixed pixel-to-pixel pattern (Gaussian,
    relative standard deviation ``pattern``, drawn from ``seed``).
    """
    x = np.linspace(-1.0, 1.0, CCD_PIXELS)
    smooth = 1.0 - vignetting * x**2 + tilt / 2 * x
    rng = np.random.default_rng([seed, 1000])
    flat = smooth * (1.0 + pattern * rng.standard_normal(CCD_PIXELS))
    return flat / np.median(flat)


@dataclasses.dataclass(frozen=True)
class Scene:
    """The radiance model of a synthetic image for flat-field tests.

    The signal above dark, before the flat, is
    ``level x ((1 - haze) x (1 + contrast x T) x A + haze)`` where ``T`` is a
    unit-variance terrain: a sum of plane waves whose directions (at least 30
    degrees off the track), wavelengths (20 to 400 pixels, more power in long
    waves) and phases are drawn from the image seed, and ``A`` are smooth
    along-track albedo stripes of relative size ``stripes``, also drawn from
    the seed: every seed gives a different scene with its own cross-track
    structure. ``haze`` adds a uniform veil and lowers contrast.
    The detector then sees ``signal x flat + dark`` with shot noise
    (``sqrt(DN)``) and 2 DN read noise; a bright ``level`` saturates.

    Attributes
    ----------
    level : float
        Mean signal in DN above dark.
    contrast : float
        Relative standard deviation of the terrain.
    haze : float
        Fraction of the signal that is a uniform veil (0: none, 1: featureless).
    stripes : float
        Relative standard deviation of the along-track albedo stripes.
    waves : int
        Plane waves in the terrain.
    """

    level: float = 900.0
    contrast: float = 0.25
    haze: float = 0.0
    stripes: float = 0.02
    waves: int = 24


class _PhysicalModel:
    """Raw tiles of ``Scene x flat + dark + noise`` for one image (see :class:`Scene`)."""

    def __init__(self, layout: EDRLayout, seed: int, scene: Scene, flat: np.ndarray | None):
        self.layout, self.seed, self.scene = layout, seed, scene
        pixels = layout.detector_pixels()
        if flat is None:
            self.flat_row = np.ones(layout.samples)
        else:
            flat = np.asarray(flat, dtype=np.float64)
            if flat.ndim != 1 or flat.size < int(pixels.max(initial=0)) + layout.summing:
                raise ValueError(f"the flat needs {int(pixels.max(initial=0)) + layout.summing} detector pixels")
            # what the summed sample sees: the mean of its CCD pixels, as ctxcal assumes
            self.flat_row = flat[pixels] if layout.summing == 1 else (flat[pixels] + flat[pixels + 1]) / 2
        # channel dark level under each active sample (summing 1: even samples A, odd B), in DN
        parity = np.arange(layout.samples) % 2
        self.dark_dn = SQROOT_TABLE[dark_levels(layout.summing)[parity]].astype(np.float64)
        rng = np.random.default_rng([seed, 2000])
        wavelength = np.exp(rng.uniform(np.log(20.0), np.log(400.0), scene.waves))
        # no wave runs closer than 30 degrees to the track: such waves are stripes that no
        # image length averages out (``stripes`` models those explicitly)
        angle = rng.uniform(np.pi / 6, 5 * np.pi / 6, scene.waves)
        k = 2 * np.pi / wavelength
        self.k_line, self.k_sample = k * np.sin(angle), k * np.cos(angle)
        self.phase = rng.uniform(0, 2 * np.pi, scene.waves)
        amplitude = wavelength**0.5
        self.amplitude = amplitude / np.sqrt(np.sum(amplitude**2) / 2)  # unit variance
        # along-track albedo stripes: smooth cross-track structure of relative size ``stripes``
        x = np.arange(layout.samples) * layout.summing / CCD_PIXELS
        stripes = sum(rng.standard_normal() * np.sin(2 * np.pi * (j * x + rng.uniform())) / j for j in range(1, 30))
        self.stripes = 1 + scene.stripes * stripes / np.std(stripes)

    def tile(self, tile: int, saturated_fraction: float) -> np.ndarray:
        layout, scene = self.layout, self.scene
        n = _TILE_LINES
        lines = np.arange(tile * n, (tile + 1) * n, dtype=np.float64)
        samples = np.arange(layout.samples, dtype=np.float64)
        terrain = np.zeros((n, layout.samples), dtype=np.float64)
        for a, kl, ks, ph in zip(self.amplitude, self.k_line, self.k_sample, self.phase):
            # sin(kl l + ks s + ph) = sin(kl l) cos(ks s + ph) + cos(kl l) sin(ks s + ph): two outer products
            terrain += np.outer(a * np.sin(kl * lines), np.cos(ks * samples + ph))
            terrain += np.outer(a * np.cos(kl * lines), np.sin(ks * samples + ph))
        albedo = np.maximum(1 + scene.contrast * terrain, 0.02) * self.stripes
        signal = scene.level * ((1 - scene.haze) * albedo + scene.haze)
        signal *= self.flat_row
        rng = np.random.default_rng([self.seed, tile, 1])
        noise = rng.standard_normal(signal.shape) * np.sqrt(signal + 4.0)  # shot noise and 2 DN read noise
        out = np.empty((n, layout.line_samples), dtype=np.uint8)
        active = compand_block(np.clip(signal + noise + self.dark_dn, 1, None), exact=False)
        out[:, layout.active_start : layout.active_stop] = np.maximum(active, 1)  # raw 0 means a lost packet
        _reference_pixels(out, layout, rng)
        if saturated_fraction > 0:
            act = out[:, layout.active_start : layout.active_stop]
            act[rng.random(act.shape) < saturated_fraction] = 255
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
    scene: Scene | None = None,
    flat: np.ndarray | None = None,
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
    scene : Scene, optional
        Write physically modelled pixels (:class:`Scene`) instead of the
        default stripes; implied by ``flat``.
    flat : numpy.ndarray, optional
        A detector flat (:data:`CCD_PIXELS` values, e.g. :func:`known_flat`)
        applied to the scene as ctxcal assumes: CCD pixel ``detector_pixel``,
        or the mean of the pair when summing 2.
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
                    layout, start, stop, seed=seed, lost_lines=lost_lines, saturated_fraction=saturated_fraction,
                    scene=scene, flat=flat,
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
