"""The preview's QA and verdict: is a pair worth its hours of full-resolution correlation?

The preview pass (:mod:`ctxdask.tools.recipe.preview`) makes a coarse DEM of a
pair in minutes. Its QA is the full DEM's (:func:`ctxdask.quality.dem_qa.measure_dem`:
valid fraction, CTX - MOLA statistics, intersection error), and its verdict is
``pass`` or ``held`` with the measured reasons, against the thresholds of
setting ``quality.preview`` (each ``None``: not checked). A held pair waits
before full resolution until a person grades it (:mod:`ctxdask.batch.triage`).

:func:`preview_verdict` is the native recipe step; :func:`triage` the pure rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["HELD", "PASS", "preview_verdict", "summary", "triage"]

PASS, HELD = "pass", "held"

#: threshold -> (what it is called, how to read it off the metrics, True when the value is too low)
_CHECKS = {
    "min_valid_fraction": ("valid fraction", lambda m: m.get("valid_fraction"), True),
    "max_mola_nmad": ("NMAD of CTX - MOLA (m)", lambda m: (m.get("after_alignment") or {}).get("nmad"), False),
    "max_mola_median_abs": ("|median| of CTX - MOLA (m)",
                            lambda m: _abs((m.get("after_alignment") or {}).get("median")), False),
    "max_intersection_error": ("median intersection error (m)",
                               lambda m: (m.get("intersection_error") or {}).get("p50"), False),
}


def _abs(value: float | None) -> float | None:
    return None if value is None else abs(value)


def triage(metrics: Mapping[str, Any], thresholds: Mapping[str, float | None]) -> list[str]:
    """The reasons ``metrics`` (a preview's :func:`~ctxdask.quality.dem_qa.measure_dem` metrics) fail.

    A threshold that is ``None`` is not checked; a metric that could not be
    measured (no MOLA shots, no error image) fails its threshold: a pair is
    never let through on a number nobody has.

    Examples
    --------
    >>> triage({"valid_fraction": 0.12}, {"min_valid_fraction": 0.5})
    ['valid fraction 0.12 < 0.5']
    >>> triage({"valid_fraction": 0.9}, {"min_valid_fraction": 0.5, "max_mola_nmad": None})
    []
    """
    reasons = []
    for key, limit in thresholds.items():
        if limit is None or key not in _CHECKS:
            continue
        name, read, low_is_bad = _CHECKS[key]
        value = read(metrics)
        if value is None:
            reasons.append(f"{name} not measured (threshold {limit:g})")
        elif (value < limit) if low_is_bad else (value > limit):
            reasons.append(f"{name} {value:.3g} {'<' if low_is_bad else '>'} {limit:g}")
    return reasons


def summary(record: Mapping[str, Any]) -> str:
    """One line for people: ``held after its preview: valid fraction 0.12 < 0.5``."""
    if record.get("verdict") == PASS:
        return "passed its preview"
    return "held after its preview: " + "; ".join(record.get("reasons") or ["no reason recorded"])


def preview_verdict(dem: str, destination: str, *, error: str | None = None, mola: str | None = None,
                    dem_before: str | None = None, csv_format: str | None = None,
                    thresholds: Mapping[str, float | None] | None = None,
                    timeout: float | None = None) -> dict[str, Any]:
    """Native recipe step ``preview_qa``: the preview DEM's QA and verdict, as JSON in ``destination``.

    Parameters
    ----------
    dem : str
        The preview DEM (point2dem of the preview's cloud).
    destination : str
        The verdict: ``{"verdict": "pass"|"held", "reasons": [...], "metrics": {...}}``.
    error : str, optional
        The preview's ``-IntersectionErr.tif``.
    mola, csv_format : str, optional
        MOLA shots (CSV) and their ``--csv-format``: the CTX - MOLA statistics.
    dem_before : str, optional
        With pc_align: the preview DEM before alignment (``dem`` is the aligned one).
    thresholds : mapping, optional
        ``quality.preview`` (field names); default: none checked.
    timeout : float, optional
        The step's deadline (every native step is given it; this one runs no program).
    """
    from ctxdask.quality.alignment import DEFAULT_FORMAT, read_mola_csv
    from ctxdask.quality.dem_qa import measure_dem

    points = read_mola_csv(mola, csv_format or DEFAULT_FORMAT) if mola else None
    qa, _ = measure_dem(dem, points, dem_before=dem_before, error=error, thresholds={}, scheduler="sync")
    reasons = triage(qa.metrics, thresholds or {})
    record = {"verdict": HELD if reasons else PASS, "reasons": reasons,
              "thresholds": {k: v for k, v in (thresholds or {}).items() if v is not None}, "metrics": qa.metrics}
    record["summary"] = summary(record)
    tmp = f"{destination}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, allow_nan=False)
    os.replace(tmp, destination)
    print(f"preview verdict: {record['summary']}", flush=True)
    return record
