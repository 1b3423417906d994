"""Preview verdicts: which pairs passed their preview, which are held before full resolution, and why.

One row per pair in ``previews`` (the latest verdict of its preview pass,
:mod:`ctxdask.quality.preview`). A pair held by its preview stays held until a
person releases it: its current manual grade is ``pass`` or ``warn`` and was
given after the verdict (:func:`held_previews`); a ``fail`` keeps it back as
any failed pair (:func:`ctxdask.tracking.grades.manually_rejected`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from ctxdask.tracking.connection import now
from ctxdask.tracking.grades import current_grades
from ctxdask.tracking.status import Grade

__all__ = ["HELD", "PASS", "VERDICTS", "held_previews", "previews", "record_preview"]

PASS, HELD = "pass", "held"
VERDICTS = (PASS, HELD)


def record_preview(conn: sqlite3.Connection, pair_id: str, verdict: str, reasons: Iterable[str],
                   metrics: Mapping[str, Any]) -> None:
    """Store a pair's preview verdict (replacing an earlier one)."""
    conn.execute("INSERT OR REPLACE INTO previews (pair_id, verdict, reasons, metrics, at) VALUES (?, ?, ?, ?, ?)",
                 (pair_id, verdict, json.dumps(list(reasons)), json.dumps(dict(metrics), allow_nan=False), now()))


def previews(conn: sqlite3.Connection, pair_id: str | None = None) -> dict[str, dict]:
    """Pair id -> its verdict row (``verdict``, ``reasons`` list, ``metrics`` dict, ``at``, ``released``: who
    released it with which grade when, or None); of one pair when ``pair_id`` is given."""
    sql, params = "SELECT pair_id, verdict, reasons, metrics, at FROM previews", ()
    if pair_id is not None:
        sql, params = sql + " WHERE pair_id = ?", (pair_id,)
    try:
        rows = conn.execute(sql + " ORDER BY pair_id", params).fetchall()
    except sqlite3.OperationalError:  # a file from before the table (opened read-only, not migrated)
        return {}
    grades = current_grades(conn, "pair") if rows else {}
    out = {}
    for pid, verdict, reasons, metrics, at in rows:
        g = grades.get(pid)
        released = (verdict == HELD and g is not None and g["value"] in (Grade.PASS, Grade.WARN) and g["at"] >= at)
        out[pid] = {"verdict": verdict, "reasons": json.loads(reasons or "[]"),
                        "metrics": json.loads(metrics or "{}"), "at": at,
                        "released": {"by": g["who"], "at": g["at"], "grade": g["value"]} if released else None}
    return out


def held_previews(conn: sqlite3.Connection) -> dict[str, str]:
    """Pairs held after their preview and not released: pair id -> the measured reason."""
    return {pid: "held after its preview: " + "; ".join(row["reasons"] or ["no reason recorded"])
            for pid, row in previews(conn).items() if row["verdict"] == HELD and row["released"] is None}
