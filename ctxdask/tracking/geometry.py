"""Pair and image geometry in the tracking database, from the pair finder's scores.

``ctxdask pairs`` writes, beside the pair list, a CSV of scores: per pair the
overlap (IoU), convergence angle, parallax/height ratio, shadow-tip distance,
and per image its incidence, emission and phase angles, time and footprint
corners (:func:`ctxdask.catalog.pairs.find_pairs`). :func:`import_scores` copies
them into two tables (:mod:`ctxdask.tracking.schema`) so the live pages can filter, sort and map by them::

    image_geometry (product_id, time, orbit, incidence, emission, phase, gsd,
                    center_lat, center_lon, footprint)      footprint: "lon,lat lon,lat ..." east
    pair_geometry  (pair_id, score, iou, overlap_km2, convergence, parallax_height,
                    shadow_tip_distance, gsd_ratio)

Rows are replaced on each import; pairs the database does not list are left out.
"""

from __future__ import annotations

import csv
import math
import os
import pathlib

from ctxdask.tracking.connection import connect_writer
from ctxdask.tracking.read import BatchView

__all__ = ["default_scores", "import_scores", "parse_footprint"]

_PAIR_COLUMNS = ("score", "iou", "overlap_km2", "convergence", "parallax_height", "shadow_tip_distance", "gsd_ratio")


def _number(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def parse_footprint(text: str | None) -> list[tuple[float, float]]:
    """``"lon,lat lon,lat ..."`` -> ``[(lon, lat), ...]`` (bad or missing: empty list)."""
    points = []
    for item in (text or "").split():
        lon, _, lat = item.partition(",")
        x, y = _number(lon), _number(lat)
        if x is None or y is None or not -360 <= x <= 360 or not -90 <= y <= 90:
            return []
        points.append((x, y))
    return points if len(points) >= 3 else []


def default_scores(db: str | os.PathLike) -> pathlib.Path | None:
    """The scores CSV beside the last run's pair list (``pairs.txt`` -> ``pairs.csv``), if there is one."""
    with BatchView(db) as view:
        last = view.runs(limit=1)
    if not last or not last[0]["pairs_file"]:
        return None
    listing = pathlib.Path(last[0]["pairs_file"])
    for candidate in (listing.with_suffix(".csv"), listing.with_name(listing.name + ".csv")):
        if candidate != listing and candidate.is_file():
            return candidate
    return None


def import_scores(db: str | os.PathLike, scores: str | os.PathLike) -> tuple[int, int]:
    """Copy a scores CSV of ``ctxdask pairs`` into the database; return (pairs, images) stored.

    Raises
    ------
    ValueError
        The CSV has no ``left``/``right`` columns.
    """
    with open(scores, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"left", "right"} <= set(rows[0]):
        raise ValueError(f"{scores}: not a pair-finder scores CSV (no left/right columns)")
    conn = connect_writer(db, timeout=30)
    try:
        known = {r[0] for r in conn.execute("SELECT pair_id FROM pairs")}
        pairs, images = [], {}
        for r in rows:
            left, right = r["left"].strip().upper(), r["right"].strip().upper()
            pid = f"{left}-{right}"
            if pid not in known:
                continue
            pairs.append((pid, *(_number(r.get(c)) for c in _PAIR_COLUMNS)))
            for side, product in (("left", left), ("right", right)):
                corners = parse_footprint(r.get(f"footprint_{side}"))
                lat = sum(y for _, y in corners) / len(corners) if corners else None
                lon = sum(x for x, _ in corners) / len(corners) if corners else None
                orbit = product[4:10]
                images[product] = (product, r.get(f"time_{side}") or None, int(orbit) if orbit.isdigit() else None,
                                   _number(r.get(f"incidence_{side}")), _number(r.get(f"emission_{side}")),
                                   _number(r.get(f"phase_{side}")), _number(r.get(f"gsd_{side}")), lat, lon,
                                   " ".join(f"{x},{y}" for x, y in corners) or None)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT OR REPLACE INTO pair_geometry VALUES ({', '.join('?' * 8)})", pairs)
        conn.executemany(f"INSERT OR REPLACE INTO image_geometry VALUES ({', '.join('?' * 10)})",
                         list(images.values()))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return len(pairs), len(images)
