"""What the live pages show, read from the tracking database (read-only) as plain values.

Every function takes an open read-only connection (:func:`connect`) and
returns dicts and lists for the templates and the JSON endpoints. Queries are
fixed text with ``?`` parameters; sorting and filtering go through the
whitelists of :mod:`ctxdask.web.selection`.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import sqlite3
from typing import Any

from ctxdask.batch import grades
from ctxdask.report import GRADE_ORDER, IMAGE_METRICS, PROBLEM, STATUS_ORDER
from ctxdask.report.templating import fmt_metric, seconds
from ctxdask.tools.runner import read_tail
from ctxdask.web import selection

__all__ = ["connect", "file_listed", "image_detail", "image_table", "overview", "pair_detail", "pair_table"]

PAGE_SIZE = 100
#: recent window for the completion rate behind the ETA
RATE_WINDOW = datetime.timedelta(minutes=15)
TAIL_LINES = 30
#: pair-table geometry columns (key in PAIR_FIELDS, heading, format)
PAIR_COLUMNS = (("overlap", "overlap", "{:.2f}"), ("convergence", "convergence °", "{:.1f}"),
                ("score", "score", "{:.3f}"))
#: image-table extra columns (image field, heading, format) beside IMAGE_METRICS
IMAGE_GEOMETRY = (("incidence", "incidence °", "{:.1f}"), ("emission", "emission °", "{:.1f}"))


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection (never takes the write lock; reads while the driver writes, WAL)."""
    conn = sqlite3.connect(f"{pathlib.Path(path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.row_factory = sqlite3.Row
    return conn


def check_database(path: str | os.PathLike) -> pathlib.Path:
    """``path`` if it is a tracking database (it has ``images`` and ``pairs``), else a one-line CTXError."""
    from ctxdask.exceptions import CTXError, MissingFileError

    path = pathlib.Path(path)
    if not path.is_file():
        raise MissingFileError(path, "no tracking database here; give the output folder of a `ctxdask batch` run")
    try:
        conn = connect(path)
        try:
            conn.execute("SELECT count(*) FROM images").fetchone()
            conn.execute("SELECT count(*) FROM pairs").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise CTXError(path, f"not a ctxdask tracking database ({exc})") from None
    return path


def _rows(conn: sqlite3.Connection, sql: str, params=()) -> list[dict]:
    return [dict(r) for r in conn.execute(sql, tuple(params))]


def _time(text: str | None) -> datetime.datetime | None:
    try:
        value = datetime.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value


def _rank(status: str | None) -> int:
    return STATUS_ORDER.get(status or "", len(STATUS_ORDER))


def _counts(conn: sqlite3.Connection, table: str) -> dict[str, int]:
    rows = conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status").fetchall()
    return dict(sorted(((s, n) for s, n in rows), key=lambda sn: _rank(sn[0])))


# ----------------------------------------------------------------------------- overview
def overview(conn: sqlite3.Connection) -> dict[str, Any]:
    """Progress by step, rates, ETA, failures grouped by reason, running work, summary counts."""
    tables = selection.tables_of(conn)
    now = datetime.datetime.now(datetime.UTC)
    counts = {t: _counts(conn, t) for t in ("pairs", "images", "steps")}
    # one row per step, in chain order (image steps first, then by first start)
    steps = [{"step": r["step"], "counts": {}, "total": 0} for r in _rows(
        conn, "SELECT step FROM steps GROUP BY step ORDER BY min(scope = 'pair'), min(coalesce(started, '9')), step")]
    by_name = {s["step"]: s for s in steps}
    for r in _rows(conn, "SELECT step, status, count(*) AS n FROM steps GROUP BY step, status"):
        by_name[r["step"]]["counts"][r["status"]] = r["n"]
        by_name[r["step"]]["total"] += r["n"]
    for s in steps:
        s["counts"] = dict(sorted(s["counts"].items(), key=lambda sn: _rank(sn[0])))
        finished = sum(n for st, n in s["counts"].items() if st not in ("pending", "running", "interrupted"))
        s["done_pct"] = round(100.0 * s["counts"].get("done", 0) / s["total"], 1) if s["total"] else 0.0
        s["finished_pct"] = round(100.0 * finished / s["total"], 1) if s["total"] else 0.0

    since = (now - RATE_WINDOW).isoformat(timespec="microseconds")
    recent = conn.execute("SELECT count(*) FROM steps WHERE ended >= ? AND status IN ('done', 'failed', 'timeout')",
                          (since,)).fetchone()[0]
    last = _rows(conn, "SELECT * FROM runs ORDER BY id DESC LIMIT 1")
    run = last[0] if last else None
    window = RATE_WINDOW.total_seconds()
    if run and _time(run["started"]) and run["status"] == "running":
        window = min(window, max((now - _time(run["started"])).total_seconds(), 1.0))
    rate = recent / window * 60.0  # steps a minute
    remaining = sum(counts["steps"].get(s, 0) for s in ("pending", "running"))
    eta = remaining / rate * 60.0 if rate > 0 and remaining else None

    failures = _rows(conn, """
        SELECT step, status, min(scope) AS scope,
               substr(coalesce(error, ''), 1, instr(coalesce(error, '') || char(10), char(10)) - 1) AS reason,
               count(*) AS n, min(subject) AS example, min(key) AS example_key
        FROM steps WHERE status IN ('failed', 'timeout', 'interrupted')
        GROUP BY step, status, reason ORDER BY n DESC, step LIMIT 50""")
    running = _rows(conn, "SELECT key, step, scope, subject, worker, host, started, attempts FROM steps "
                          "WHERE status = 'running' ORDER BY started LIMIT 200")
    for r in running:
        start = _time(r["started"])
        r["elapsed"] = (now - start).total_seconds() if start else None
        r["elapsed_text"] = seconds(r["elapsed"])
    auto = {}
    if "quality" in tables:
        auto = dict(conn.execute("SELECT grade, count(*) FROM quality WHERE grade IS NOT NULL GROUP BY grade")
                    .fetchall())
    manual: dict[str, dict[str, int]] = {}
    for g in grades.current_grades(conn).values():
        manual.setdefault(g["scope"], {}).setdefault(g["value"], 0)
        manual[g["scope"]][g["value"]] += 1
    products = {"files": 0, "bytes": 0}
    if "products" in tables:
        products = dict(conn.execute("SELECT count(*) AS files, coalesce(sum(size), 0) AS bytes FROM products")
                        .fetchone())
    return {
        "generated": now.isoformat(timespec="seconds"),
        "run": run, "counts": counts, "steps": steps,
        "rate_per_minute": round(rate, 2), "remaining": remaining, "eta": eta, "eta_text": seconds(eta),
        "failures": failures, "failure_total": sum(f["n"] for f in failures),
        "running": running,
        "grades": dict(sorted(auto.items(), key=lambda g: GRADE_ORDER.get(g[0], 3))),
        "manual_grades": {s: dict(sorted(c.items(), key=lambda g: GRADE_ORDER.get(g[0], 3)))
                          for s, c in sorted(manual.items())},
        "products": products, "has_quality": "quality" in tables,
    }


# ----------------------------------------------------------------------------- tables
def _order(sort: str | None, direction: str | None, fields: dict[str, str], side: str | None,
           default: str) -> tuple[str, str, str]:
    key = sort if sort in fields else default
    expr = fields[key] if side is None else fields[key].format(s=side)
    desc = direction == "desc"
    return key, "desc" if desc else "asc", f"{expr} IS NULL, {expr} {'DESC' if desc else 'ASC'}"


def _quick(where: str | None, quick: dict[str, tuple[str | None, tuple[str, ...]]]) -> str:
    """``where`` ANDed with the dropdown filters (values checked against their whitelist first)."""
    parts = [f"({where})"] if where and where.strip() else []
    for field, (value, allowed) in quick.items():
        if value in allowed:
            parts.append(f'{field} = "{value}"')
        elif value == "none":
            parts.append(f"{field} is null")
    return " and ".join(parts)


def image_table(conn: sqlite3.Connection, *, where: str | None = None, status: str | None = None,
                grade: str | None = None, manual: str | None = None, sort: str | None = None,
                direction: str | None = None, page: int = 1) -> dict[str, Any]:
    """One page of the image table, filtered and sorted in SQL.

    Raises
    ------
    ctxdask.web.selection.SelectionError
        ``where`` is not a valid filter.
    """
    from ctxdask.batch.db import STATUSES

    text = _quick(where, {"status": (status, STATUSES), "grade": (grade, grades.GRADES),
                          "manual": (manual, grades.GRADES)})
    q = selection.compile_images(text)
    fields = {k: v for k, v in selection.IMAGE_FIELDS.items()}
    sort_key, direction, order = _order(sort, direction, fields, "i", "status")
    head = selection.with_clause(selection.tables_of(conn))
    total = conn.execute(f"{head} SELECT count(*) {selection.image_from()} WHERE {q.sql}", q.params).fetchone()[0]
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = _rows(conn, f"{head} SELECT i.product_id, i.status, i.error, i.summing, i.lines, qi.grade, qi.metrics, "
                       f"qi.thumbnail, mi.value AS manual, mi.note AS manual_note, mi.who AS manual_who, "
                       f"gi.incidence, gi.emission, gi.time {selection.image_from()} WHERE {q.sql} "
                       f"ORDER BY {order}, i.product_id LIMIT ? OFFSET ?",
                 (*q.params, PAGE_SIZE, (page - 1) * PAGE_SIZE))
    for r in rows:
        metrics = _json(r.pop("metrics"), {})
        r["metrics"] = [fmt_metric(metrics.get(key), fmt) for key, _, fmt in IMAGE_METRICS]
        r["geometry"] = [fmt_metric(r.get(key), fmt) for key, _, fmt in IMAGE_GEOMETRY]
        r["problem"] = r["status"] in PROBLEM or r["grade"] == "fail" or r["manual"] == "fail"
    return {"rows": rows, "total": total, "page": page, "pages": pages, "sort": sort_key, "direction": direction,
            "where": where or "", "status": status or "", "grade": grade or "", "manual": manual or "",
            "metric_labels": [label for _, label, _ in IMAGE_METRICS],
            "metric_keys": [key for key, _, _ in IMAGE_METRICS],
            "geometry_labels": [label for _, label, _ in IMAGE_GEOMETRY],
            "geometry_keys": [key for key, _, _ in IMAGE_GEOMETRY]}


def pair_table(conn: sqlite3.Connection, *, where: str | None = None, status: str | None = None,
               manual: str | None = None, sort: str | None = None, direction: str | None = None,
               page: int = 1) -> dict[str, Any]:
    """One page of the pair table (see :func:`image_table`)."""
    from ctxdask.batch.db import STATUSES

    text = _quick(where, {"status": (status, STATUSES), "manual": (manual, grades.GRADES)})
    q = selection.compile_pairs(text)
    fields = {**selection.PAIR_FIELDS, "left": "p.left_id", "right": "p.right_id"}
    sort_key, direction, order = _order(sort, direction, fields, None, "status")
    head = selection.with_clause(selection.tables_of(conn))
    total = conn.execute(f"{head} SELECT count(*) {selection.pair_from()} WHERE {q.sql}", q.params).fetchone()[0]
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = _rows(conn, f"{head} SELECT p.pair_id, p.left_id, p.right_id, p.line, p.status, p.error, "
                       f"mp.value AS manual, mp.note AS manual_note, ql.grade AS left_grade, qr.grade AS right_grade, "
                       f"ml.value AS left_manual, mr.value AS right_manual, pg.iou AS overlap, pg.convergence, "
                       f"pg.score {selection.pair_from()} WHERE {q.sql} ORDER BY {order}, p.pair_id LIMIT ? OFFSET ?",
                 (*q.params, PAGE_SIZE, (page - 1) * PAGE_SIZE))
    if rows:
        marks = ", ".join("?" * len(rows))
        by_pair: dict[str, list] = {}
        for s in _rows(conn, f"SELECT subject, step, status FROM steps WHERE scope = 'pair' AND subject IN ({marks}) "
                             "ORDER BY started IS NULL, started, key", [r["pair_id"] for r in rows]):
            by_pair.setdefault(s["subject"], []).append(s)
        for r in rows:
            r["steps"] = by_pair.get(r["pair_id"], [])
            r["geometry"] = [fmt_metric(r.get(key), fmt) for key, _, fmt in PAIR_COLUMNS]
            r["problem"] = r["status"] in PROBLEM or r["manual"] == "fail"
    return {"rows": rows, "total": total, "page": page, "pages": pages, "sort": sort_key, "direction": direction,
            "where": where or "", "status": status or "", "manual": manual or "",
            "geometry_labels": [label for _, label, _ in PAIR_COLUMNS],
            "geometry_keys": [key for key, _, _ in PAIR_COLUMNS]}


def _json(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except (TypeError, ValueError):
        return default


# ----------------------------------------------------------------------------- files
def output_roots(conn: sqlite3.Connection, out: pathlib.Path) -> list[pathlib.Path]:
    """Folders whose logs may be read: the output folder and the runs' recorded work folders."""
    roots = [out.resolve()]
    for r in conn.execute("SELECT settings FROM runs"):
        work = _json(r[0], {}).get("work_dir") if r[0] else None
        if work:
            roots.append(pathlib.Path(work).resolve())
    return roots


def _inside(path: pathlib.Path, roots: list[pathlib.Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def file_listed(conn: sqlite3.Connection, out: pathlib.Path, rel: str) -> pathlib.Path | None:
    """The file ``rel`` (relative to the output folder) if the database lists it there, else None.

    Listed: delivered products, image thumbnails, pair quality products and
    step logs. The path from the URL is only ever compared with those listed;
    the file opened is the listed one, resolved, and must lie inside ``out``.
    """
    out = out.resolve()
    if not rel or rel.startswith("/") or "\\" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
        return None
    candidates = (rel, str(out / rel))
    tables = selection.tables_of(conn)
    queries = [("products", "path"), ("steps", "log_path"), ("quality", "thumbnail")]
    queries += [("pair_quality", c) for c in ("stac", "hillshade", "colour_relief", "ortho_thumbnail")]
    for table, column in queries:
        if table not in tables:
            continue
        row = conn.execute(f"SELECT {column} FROM {table} WHERE {column} IN (?, ?) LIMIT 1", candidates).fetchone()
        if row:
            listed = pathlib.Path(row[0])
            path = (listed if listed.is_absolute() else out / listed).resolve()
            if path.is_relative_to(out) and path.is_file():
                return path
    return None


def _rel(out: pathlib.Path, path: str | None) -> str | None:
    """A database path as a ``/files/`` link (relative to ``out``), when it lies inside ``out``."""
    if not path:
        return None
    p = pathlib.Path(path)
    full = (p if p.is_absolute() else out / p).resolve()
    out = out.resolve()
    return full.relative_to(out).as_posix() if full.is_relative_to(out) else None


def _steps(conn: sqlite3.Connection, out: pathlib.Path, subject: str) -> list[dict]:
    roots = output_roots(conn, out)
    steps = _rows(conn, "SELECT * FROM steps WHERE subject = ? ORDER BY started IS NULL, started, key", (subject,))
    for s in steps:
        s["duration_text"] = seconds(s["duration"])
        s["log_link"] = _rel(out, s["log_path"])
        s["tail"] = ""
        if s["log_path"]:
            path = pathlib.Path(s["log_path"]).resolve()
            if _inside(path, roots):
                s["tail"] = read_tail(path, TAIL_LINES, max_bytes=32768)
    return steps


# ----------------------------------------------------------------------------- detail pages
def image_detail(conn: sqlite3.Connection, out: pathlib.Path, product_id: str) -> dict[str, Any] | None:
    """Everything the image page shows, or None for an unknown id."""
    rows = _rows(conn, "SELECT * FROM images WHERE product_id = ?", (product_id,))
    if not rows:
        return None
    tables = selection.tables_of(conn)
    q = _rows(conn, "SELECT * FROM quality WHERE product_id = ?", (product_id,)) if "quality" in tables else []
    q = q[0] if q else {}
    metrics = _json(q.get("metrics"), {})
    histogram = metrics.pop("histogram", None)
    geo = (_rows(conn, "SELECT * FROM image_geometry WHERE product_id = ?", (product_id,))
           if "image_geometry" in tables else [])
    pairs = _rows(conn, "SELECT pair_id, left_id, right_id, status FROM pairs WHERE left_id = ? OR right_id = ? "
                        "ORDER BY line", (product_id, product_id))
    products = _rows(conn, "SELECT path, size, delivered FROM products WHERE subject = ? ORDER BY path",
                     (product_id,)) if "products" in tables else []
    for p in products:
        p["link"] = _rel(out, p["path"])
    return {
        "image": rows[0], "grade": q.get("grade"), "reasons": [str(r) for r in _json(q.get("reasons"), [])],
        "metrics": sorted((k, v) for k, v in metrics.items() if not isinstance(v, (list, dict))),
        "histogram": histogram if isinstance(histogram, list) else None,
        "thumbnail": _rel(out, q.get("thumbnail")), "geometry": geo[0] if geo else None,
        "keywords": _keywords(rows[0]), "steps": _steps(conn, out, product_id), "pairs": pairs,
        "products": products, "manual": grades.current_grades(conn).get(product_id),
        "history": grades.history(conn, product_id),
    }


def _keywords(image: dict) -> list[tuple[str, Any]]:
    """Label facts the batch recorded for an image (its validation)."""
    out = [("SUMMING (validation)", image.get("summing")), ("LINES (validation)", image.get("lines")),
           ("validation", image.get("validation"))]
    pid = image["product_id"]
    if len(pid) >= 10 and pid[4:10].isdigit():
        out.insert(0, ("ORBIT_NUMBER (from PRODUCT_ID)", int(pid[4:10])))
    out.insert(0, ("PRODUCT_ID", pid))
    return [(k, v) for k, v in out if v is not None]


def pair_detail(conn: sqlite3.Connection, out: pathlib.Path, pair_id: str) -> dict[str, Any] | None:
    """Everything the pair page shows, or None for an unknown id."""
    rows = _rows(conn, "SELECT * FROM pairs WHERE pair_id = ?", (pair_id,))
    if not rows:
        return None
    pair = rows[0]
    tables = selection.tables_of(conn)
    pq = _rows(conn, "SELECT * FROM pair_quality WHERE pair_id = ?", (pair_id,)) if "pair_quality" in tables else []
    pq = pq[0] if pq else {}
    geo = (_rows(conn, "SELECT * FROM pair_geometry WHERE pair_id = ?", (pair_id,))
           if "pair_geometry" in tables else [])
    images = []
    quality = {}
    if "quality" in tables:
        quality = {r["product_id"]: r for r in _rows(conn, "SELECT product_id, grade, thumbnail FROM quality "
                                                           "WHERE product_id IN (?, ?)",
                                                     (pair["left_id"], pair["right_id"]))}
    current = grades.current_grades(conn)
    for side, pid in (("left", pair["left_id"]), ("right", pair["right_id"])):
        im = _rows(conn, "SELECT product_id, status, error FROM images WHERE product_id = ?", (pid,))
        q = quality.get(pid, {})
        images.append({"side": side, "product_id": pid, "status": im[0]["status"] if im else None,
                       "grade": q.get("grade"), "thumbnail": _rel(out, q.get("thumbnail")),
                       "manual": current.get(pid)})
    pictures = [{"label": label, "src": _rel(out, pq.get(col))}
                for col, label in (("hillshade", "DEM hillshade"), ("colour_relief", "DEM colour relief"),
                                   ("ortho_thumbnail", "orthoimage"))]
    products = _rows(conn, "SELECT path, size, delivered FROM products WHERE subject = ? ORDER BY path",
                     (pair_id,)) if "products" in tables else []
    for p in products:
        p["link"] = _rel(out, p["path"])
    # stereo ran by tile: the tile map is drawn on request (ctxdask.report.tilemap, /pair/<id>/tiles.png)
    tile_map = "tiles" in tables and conn.execute("SELECT 1 FROM tiles WHERE pair_id = ? LIMIT 1",
                                                  (pair_id,)).fetchone() is not None
    return {
        "pair": pair, "images": images, "geometry": geo[0] if geo else None,
        "statistics": _json(pq.get("statistics"), {}), "stac": _rel(out, pq.get("stac")),
        "pictures": [p for p in pictures if p["src"]], "tile_map": tile_map, "products": products,
        "steps": _steps(conn, out, pair_id), "manual": current.get(pair_id),
        "history": grades.history(conn, pair_id),
    }
