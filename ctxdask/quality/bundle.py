"""What ``bundle_adjust`` reports: reprojection errors per camera and per triangulated point.

Sources (NeoGeographyToolkit/StereoPipeline): ``write_residual_logs`` and
``write_residual_map`` (``src/asp/Camera/BundleAdjustResiduals.cc``:164-222,
303-466) and ``docs/tools/bundle_adjust.rst`` ("Reprojection errors per camera",
"Reprojection errors per triangulated point"). Two files per stage, the stage being
``initial`` (before the first pass) or ``final`` (after the last):

``<prefix>-<stage>_residuals_stats.txt``
    ``# Pixel reprojection error per camera`` and ``# Image, mean, median, count``,
    then one ``image, mean, median, count`` line per camera (pixels; the median is
    ``nan`` for a camera without residuals). With ``--reference-terrain`` a line
    ``reference terrain residual errors:`` and ``index, error`` lines follow.
``<prefix>-<stage>_residuals_pointmap.csv``
    ``# lon, lat, height_above_datum, mean_residual, num_observations``, ``# <datum>``,
    then a line per inlier point, flagged `` # GCP`` or `` # from DEM`` at the end.

The documentation's test of a good run: final errors under a pixel (ideally under
half), with at least a dozen residuals per camera (``docs/tools/bundle_adjust.rst``,
"Validation").
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from ctxdask.quality.errors import QualityError

__all__ = ["bundle_adjust_summary", "read_pointmap", "read_residual_stats"]


def _number(text: str, path: str, number: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise QualityError(path, f"line {number}: {text.strip()!r} is not a number") from None


def read_residual_stats(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-camera lines of a ``*_residuals_stats.txt``.

    Returns
    -------
    list of dict
        ``{"image", "mean_px", "median_px", "count"}`` per camera, in file order
        (``None`` for a ``nan``).

    Raises
    ------
    QualityError
        The file is missing, a line is not ``image, mean, median, count``, or it lists no camera.
    """
    path = os.fspath(path)
    cameras = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise QualityError(path, f"cannot read bundle_adjust's residual statistics: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("reference terrain residual errors"):
            break
        fields = [f.strip() for f in line.rsplit(",", 3)]
        if len(fields) != 4:
            raise QualityError(path, f"line {number}: expected 'image, mean, median, count', found {line!r}")
        mean, median, count = (_number(v, path, number) for v in fields[1:])
        cameras.append({"image": fields[0], "mean_px": _finite(mean), "median_px": _finite(median),
                        "count": int(count)})
    if not cameras:
        raise QualityError(path, "no camera lines: is it bundle_adjust's *_residuals_stats.txt?")
    return cameras


def read_pointmap(path: str | os.PathLike) -> dict[str, Any]:
    """Summary of a ``*_residuals_pointmap.csv``: point count, mean and median of the points' mean residuals.

    Returns
    -------
    dict
        ``{"points", "mean_px", "median_px", "gcp", "from_dem"}`` (``None`` statistics without points).

    Raises
    ------
    QualityError
        The file is missing or a line does not have five numbers.
    """
    path = os.fspath(path)
    residuals: list[float] = []
    flags = {"gcp": 0, "from_dem": 0}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                data, _, comment = line.partition("#")
                if not data.strip():
                    continue
                fields = data.split(",")
                if len(fields) != 5:
                    raise QualityError(path, f"line {number}: expected 'lon, lat, height_above_datum, "
                                             f"mean_residual, num_observations', found {line.strip()!r}")
                residuals.append(_number(fields[3], path, number))
                if "GCP" in comment:
                    flags["gcp"] += 1
                elif "from DEM" in comment:
                    flags["from_dem"] += 1
    except OSError as exc:
        raise QualityError(path, f"cannot read bundle_adjust's point map: {exc.strerror}") from None
    ordered = sorted(residuals)
    return {"points": len(residuals), "mean_px": sum(residuals) / len(residuals) if residuals else None,
            "median_px": ordered[len(ordered) // 2] if ordered else None, **flags}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _stage(stats: str | os.PathLike, pointmap: str | os.PathLike | None) -> dict[str, Any]:
    cameras = read_residual_stats(stats)
    count = sum(c["count"] for c in cameras)
    weighted = [(c["mean_px"], c["count"]) for c in cameras if c["mean_px"] is not None]
    out: dict[str, Any] = {
        "cameras": cameras,
        "residuals": count,
        # the mean over all residuals: each camera's mean weighted by its count
        "mean_px": sum(m * n for m, n in weighted) / sum(n for _, n in weighted) if weighted and count else None,
        "max_camera_median_px": max((c["median_px"] for c in cameras if c["median_px"] is not None), default=None),
    }
    if pointmap is not None:
        out["pointmap"] = read_pointmap(pointmap)
    return out


def bundle_adjust_summary(files: Mapping[str, str | os.PathLike]) -> dict[str, Any]:
    """The ``bundle_adjust`` record of a pair's QA and provenance, from its residual files.

    Parameters
    ----------
    files : mapping
        ``initial_stats`` and ``final_stats`` (required), ``initial_pointmap`` and
        ``final_pointmap`` (optional): the files of the module docstring.

    Returns
    -------
    dict
        ``{"initial": stage, "final": stage, "improvement": final/initial mean}``, a stage being
        ``{"cameras": [per camera], "residuals", "mean_px", "max_camera_median_px"[, "pointmap"]}``.

    Raises
    ------
    QualityError
        A file is missing or not in bundle_adjust's format (named in the message).
    """
    missing = [k for k in ("initial_stats", "final_stats") if k not in files]
    if missing:
        raise QualityError(None, f"bundle_adjust summary needs the {' and '.join(missing)} residual file")
    stages = {when: _stage(files[f"{when}_stats"], files.get(f"{when}_pointmap")) for when in ("initial", "final")}
    before, after = stages["initial"]["mean_px"], stages["final"]["mean_px"]
    return {**stages, "improvement": after / before if before and after is not None else None}
