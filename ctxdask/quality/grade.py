"""Grades: pass, warn or fail, with the reasons, from thresholds in ``ctxdask.yaml``.

Thresholds live under ``quality.grade``: one mapping per metric (hyphenated
metric name) with ``warn-below``/``fail-below`` (low values are bad) or
``warn-above``/``fail-above`` (high values are bad). A metric past a
``fail`` value fails the image; past a ``warn`` value it warns; a metric
with a threshold that could not be measured (None/NaN) warns, since the
image could not be checked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

from ctxdask.quality.errors import QualityError
from ctxdask.settings import current as current_settings

__all__ = ["Grade", "grade"]

Status = Literal["pass", "warn", "fail"]
_ORDER = {"pass": 0, "warn": 1, "fail": 2}
_KEYS = {"warn-below", "fail-below", "warn-above", "fail-above"}


@dataclasses.dataclass(frozen=True)
class Grade:
    """An image's grade and why.

    Attributes
    ----------
    status : {"pass", "warn", "fail"}
    reasons : tuple of str
        One line per metric beyond a threshold, worst first.
    """

    status: Status
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``{"grade": status, "grade_reasons": [...]}``, plain JSON values."""
        return {"grade": self.status, "grade_reasons": list(self.reasons)}


def grade(metrics: Any, thresholds: Mapping[str, Mapping[str, float | None] | None] | None = None) -> Grade:
    """Grade metrics against thresholds.

    Parameters
    ----------
    metrics : QualityMetrics or mapping
        :class:`~ctxdask.quality.QualityMetrics` or its :meth:`to_dict`.
    thresholds : mapping, optional
        ``{metric: {"warn-below": x, "fail-below": y}}`` and/or ``-above``;
        ``None`` reads ``quality.grade`` now. Metric names may use ``-`` or ``_``.

    Raises
    ------
    QualityError
        A threshold names an unknown metric or key, or its warn and fail
        values are in the wrong order.
    """
    values = metrics.to_dict() if hasattr(metrics, "to_dict") else dict(metrics)
    thresholds = current_settings().quality.grade if thresholds is None else thresholds
    found: list[tuple[int, str]] = []
    for name, limits in (thresholds or {}).items():
        if not limits:
            continue
        key = name.replace("-", "_")
        if key not in values:
            raise QualityError(None, f"grade threshold for unknown metric {name!r}; metrics: {sorted(values)}")
        unknown = set(limits) - _KEYS
        if unknown:
            raise QualityError(
                None, f"grade threshold {name!r} has unknown keys {sorted(unknown)}; use {sorted(_KEYS)}"
            )
        _check_order(name, limits)
        value = values[key]
        if not _applies(key, values):
            continue  # e.g. the even/odd offset of a summing-2 image: ctxevenodd does not apply
        if value is None or (isinstance(value, float) and math.isnan(value)):
            found.append((1, f"{key}: not measurable"))
            continue
        value = float(value)
        status = _status(value, limits)
        if status:
            level, side, limit = status
            found.append((level, f"{key} {value:.4g} {'<' if side == 'below' else '>'} "
                                 f"{'fail' if level == 2 else 'warn'} limit {limit:g}"))
    found.sort(key=lambda item: -item[0])
    worst = max((level for level, _ in found), default=0)
    return Grade(status=[s for s, v in _ORDER.items() if v == worst][0], reasons=tuple(r for _, r in found))


#: metrics measured only in some modes: metric -> the summing modes it applies to
_ONLY_FOR_SUMMING = {"even_odd_offset": (1,), "even_odd_relative": (1,)}


def _applies(key: str, values: Mapping[str, Any]) -> bool:
    """Whether metric ``key`` means anything for this image (a threshold is then checked)."""
    modes = _ONLY_FOR_SUMMING.get(key)
    summing = values.get("summing")
    return modes is None or summing is None or int(summing) in modes


def _status(value: float, limits: Mapping[str, float | None]) -> tuple[int, str, float] | None:
    """(2 fail / 1 warn, side, limit) of the worst threshold ``value`` is past, or None."""
    for level, prefix in ((2, "fail"), (1, "warn")):
        below, above = limits.get(f"{prefix}-below"), limits.get(f"{prefix}-above")
        if below is not None and value < below:
            return level, "below", float(below)
        if above is not None and value > above:
            return level, "above", float(above)
    return None


def _check_order(name: str, limits: Mapping[str, float | None]) -> None:
    wb, fb, wa, fa = (limits.get(k) for k in ("warn-below", "fail-below", "warn-above", "fail-above"))
    if wb is not None and fb is not None and fb > wb:
        raise QualityError(None, f"grade threshold {name!r}: fail-below {fb} is above warn-below {wb}")
    if wa is not None and fa is not None and fa < wa:
        raise QualityError(None, f"grade threshold {name!r}: fail-above {fa} is below warn-above {wa}")
