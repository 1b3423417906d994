"""MOLA shots and what ``pc_align`` reports: the inputs and outputs of aligning a CTX DEM.

Sources (NeoGeographyToolkit/StereoPipeline): ``docs/tools/pc_align.rst``
(CSV formats, ``--csv-format`` column names, ``-beg_errors.csv`` /
``-end_errors.csv``, the transform files) and ``src/asp/Tools/pc_align.cc``
(``save_errors`` writes ``# <csv columns>,error (meters)`` then a datum
comment; ``calc_stats`` logs ``Input|Output: error percentile of smallest
errors (meters): 16%: a, 50%: b, 84%: c`` and ``... stats (meters): Mean: ..,
StdDev: .., RMSE: .., Median: .., NMAD: ..``; then ``Translation vector
(North-East-Down, meters): Vector3(n,e,d)``, ``Translation vector magnitude
(meters): m``, ``Maximum displacement of points between the source cloud ...:
d m``, the warning ``The input --max-displacement value is smaller than the
final observed displacement`` and ``Euler angles (degrees): Vector3(..)``).
Heights of a ``lon lat radius`` CSV are relative to the ``--datum`` sphere
(D_MARS: 3,396,190 m), as point2dem's ``-r mars`` DEM heights are.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any

import numpy as np

from ctxdask.quality.errors import QualityError

__all__ = ["DATUM_RADIUS", "MolaPoints", "PcAlignReport", "mola_for_pair", "parse_pc_align_log", "read_mola_csv",
           "suggest_max_displacement"]

#: pc_align --datum radii (docs/tools/pc_align.rst)
DATUM_RADIUS = {"D_MARS": 3396190.0, "MARS": 3396190.0, "MOLA": 3396000.0}
_COLUMNS = {"lon", "lat", "radius_km", "radius_m", "height_above_datum"}
#: the real pc_align's default when --csv-format is not given
DEFAULT_FORMAT = "1:lat 2:lon 3:height_above_datum"


@dataclasses.dataclass(frozen=True)
class MolaPoints:
    """MOLA shots: east longitude (-180..180), latitude (degrees), height above the datum sphere (m)."""

    lon: np.ndarray
    lat: np.ndarray
    height: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.lon.size)


def _parse_format(csv_format: str, path: str) -> dict[str, int]:
    columns: dict[str, int] = {}
    for item in csv_format.split():
        index, sep, name = item.partition(":")
        if not sep or not index.isdigit() or name not in _COLUMNS:
            raise QualityError(path, f"csv-format item {item!r} is not 'N:name' with name one of {sorted(_COLUMNS)}")
        columns[name] = int(index) - 1
    if not {"lon", "lat"} <= set(columns) or len(columns) != 3:
        raise QualityError(path, f"csv-format {csv_format!r} needs lon, lat and one height or radius column")
    return columns


def read_mola_csv(path: str | os.PathLike, csv_format: str = DEFAULT_FORMAT, *,
                  datum: str = "D_MARS") -> MolaPoints:
    """Read a MOLA PEDR CSV as pc_align reads it (``#`` lines ignored, commas or spaces).

    Raises
    ------
    QualityError
        Missing file, bad ``csv_format``, a line with too few or non-numeric
        fields (its line number is named), or no points at all.
    """
    path = os.fspath(path)
    columns = _parse_format(csv_format, path)
    radius = DATUM_RADIUS.get(datum.upper())
    if radius is None:
        raise QualityError(path, f"unknown datum {datum!r}; one of {sorted(DATUM_RADIUS)}")
    need = max(columns.values()) + 1
    rows: list[list[float]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.replace(",", " ").split()
                try:
                    if len(parts) < need:
                        raise ValueError
                    rows.append([float(parts[i]) for i in columns.values()])
                except ValueError:
                    if not rows:  # header lines without '#' before the first shot
                        continue
                    raise QualityError(path, f"line {number}: expected {need}+ numeric fields "
                                             f"for csv-format {csv_format!r}: {line[:80]!r}") from None
    except FileNotFoundError:
        raise QualityError(path, "MOLA point file not found") from None
    if not rows:
        raise QualityError(path, "no MOLA points in the file")
    data = np.asarray(rows, dtype=np.float64)
    by = {name: data[:, k] for k, name in enumerate(columns)}
    if "radius_km" in by:
        height = by["radius_km"] * 1000.0 - radius
    elif "radius_m" in by:
        height = by["radius_m"] - radius
    else:
        height = by["height_above_datum"]
    lon = (by["lon"] + 180.0) % 360.0 - 180.0
    bad = ~np.isfinite(height) | (np.abs(by["lat"]) > 90)
    if bad.all():
        raise QualityError(path, "no usable MOLA points (latitudes beyond +-90 or non-finite heights)")
    keep = ~bad
    return MolaPoints(lon[keep], by["lat"][keep], height[keep], path)


@dataclasses.dataclass(frozen=True)
class PcAlignReport:
    """What one pc_align run said in its log."""

    translation_ned: tuple[float, float, float] | None = None
    translation_magnitude: float | None = None
    euler_angles: tuple[float, float, float] | None = None
    rotation_angle: float | None = None
    observed_displacement: float | None = None
    displacement_warning: bool = False
    input_stats: dict[str, float] = dataclasses.field(default_factory=dict)
    output_stats: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (non-finite numbers as None)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = [None if not math.isfinite(v) else v for v in value]
            elif isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"


def _vector(text: str, label: str) -> tuple[float, float, float] | None:
    match = re.search(re.escape(label) + r"\s*Vector3\((" + _NUM + r"),(" + _NUM + r"),(" + _NUM + r")\)", text)
    return tuple(float(match.group(i)) for i in (1, 2, 3)) if match else None  # type: ignore[return-value]


def _number(text: str, pattern: str) -> float | None:
    match = re.search(pattern + r"\s*(" + _NUM + ")", text)
    return float(match.group(1)) if match else None


def _stats(text: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    match = re.search(rf"^{label} stats \(meters\):(.*)$", text, re.MULTILINE)
    if match:
        for key, value in re.findall(r"(\w+):\s*(" + _NUM + ")", match.group(1)):
            out[key.lower()] = float(value)
    match = re.search(rf"^{label}: error percentile of smallest errors \(meters\):(.*)$", text, re.MULTILINE)
    if match:
        for key, value in re.findall(r"(\d+)%:\s*(" + _NUM + ")", match.group(1)):
            out[f"p{key}"] = float(value)
    return out


def parse_pc_align_log(text: str) -> PcAlignReport:
    """Read translation, rotation, observed displacement, warning and error statistics from a log."""
    axis = re.search(r"Axis of rotation and angle \(degrees\):\s*Vector3\([^)]*\)\s*(" + _NUM + ")", text)
    return PcAlignReport(
        translation_ned=_vector(text, "Translation vector (North-East-Down, meters):"),
        translation_magnitude=_number(text, r"Translation vector magnitude \(meters\):"),
        euler_angles=_vector(text, "Euler angles (degrees):"),
        rotation_angle=float(axis.group(1)) if axis else None,
        observed_displacement=_number(text, r"after alignment to the reference:"),
        displacement_warning="--max-displacement value is smaller than the final observed displacement" in text,
        input_stats=_stats(text, "Input"),
        output_stats=_stats(text, "Output"),
    )


def suggest_max_displacement(differences: np.ndarray, *, factor: float = 3.0, floor: float = 10.0) -> float:
    """``--max-displacement`` from the data: ``factor`` x the median |CTX - MOLA| before alignment.

    The USGS Kaguya TC DTM workflow (planetary-ard, ``content/data/moon/kaguyatc_dtms.md``)
    seeds pc_align this way; ``floor`` keeps a near-perfect DEM from getting a
    value too small for ICP to move at all.
    """
    d = np.abs(np.asarray(differences, dtype=np.float64))
    d = d[np.isfinite(d)]
    if not d.size:
        raise QualityError(None, "no MOLA point falls on a valid DEM pixel: cannot choose --max-displacement")
    return float(max(factor * np.median(d), floor))


def mola_for_pair(source: str | os.PathLike | None, pair_id: str, left: str, right: str) -> str | None:
    """The MOLA shots file of a pair: ``source`` itself when it is a file, else the first of
    ``<pair_id>.csv``, ``<left>_<right>.csv``, ``<left>-<right>.csv``, ``<left>.csv`` in the
    folder ``source``; when none exists, the first candidate (so that the step fails naming it).
    ``None`` when no source is configured.
    """
    if source is None or source == "":
        return None
    source = os.fspath(source)
    if not os.path.isdir(source):
        return source
    names = [f"{pair_id}.csv", f"{left}_{right}.csv", f"{left}-{right}.csv", f"{left}.csv"]
    for name in names:
        path = os.path.join(source, name)
        if os.path.isfile(path):
            return path
    return os.path.join(source, names[0])
