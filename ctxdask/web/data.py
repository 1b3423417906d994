"""What the live pages show, from the tracking database's read model, as plain values for the templates.

Every function takes an open :class:`ctxdask.tracking.BatchView` and returns
dicts and lists for the templates and the JSON endpoints: the rows it reads,
formatted for a page (durations, metrics, links into ``/files/``, log tails).
Sorting and filtering go through the whitelists of
:mod:`ctxdask.tracking.selection`.
"""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

from ctxdask.report import IMAGE_METRICS
from ctxdask.report.geo import describe_crs
from ctxdask.report.mapdata import pair_relief_bar
from ctxdask.report.templating import fmt_metric, seconds
from ctxdask.tools.runner import read_tail
from ctxdask.tracking import BatchView, Grade, Status, selection
from ctxdask.tracking.read import decode_json

__all__ = ["file_listed", "image_detail", "image_table", "link", "overview", "pair_detail", "pair_table"]

PAGE_SIZE = 100
#: recent window for the completion rate behind the ETA
RATE_WINDOW = datetime.timedelta(minutes=15)
TAIL_LINES = 30
#: pair-table geometry columns (key in PAIR_FIELDS, heading, format)
PAIR_COLUMNS = (("overlap", "overlap", "{:.2f}"), ("convergence", "convergence °", "{:.1f}"),
                ("score", "score", "{:.3f}"))
#: image-table extra columns (image field, heading, format) beside IMAGE_METRICS
IMAGE_GEOMETRY = (("incidence", "incidence °", "{:.1f}"), ("emission", "emission °", "{:.1f}"))


def _time(text: str | None) -> datetime.datetime | None:
    try:
        value = datetime.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value


def _problem(status: str | None) -> bool:
    return status in {s for s in Status if s.problem}


# ----------------------------------------------------------------------------- overview
def overview(view: BatchView) -> dict[str, Any]:
    """Progress by step, rates, ETA, failures grouped by reason, running work, summary counts."""
    now = datetime.datetime.now(datetime.UTC)
    counts = {t: view.counts(t) for t in ("pairs", "images", "steps")}
    by_step = view.step_counts()
    steps = []
    for name in view.step_names():  # chain order
        step_counts = dict(sorted(by_step.get(name, {}).items(), key=lambda sn: Status.rank_of(sn[0])))
        total = sum(step_counts.values())
        finished = sum(n for st, n in step_counts.items() if Status(st).ended)
        steps.append({"step": name, "counts": step_counts, "total": total,
                      "done_pct": round(100.0 * step_counts.get("done", 0) / total, 1) if total else 0.0,
                      "finished_pct": round(100.0 * finished / total, 1) if total else 0.0})

    recent = view.finished_since((now - RATE_WINDOW).isoformat(timespec="microseconds"))
    last = view.runs(limit=1)
    run = last[0] if last else None
    window = RATE_WINDOW.total_seconds()
    if run and _time(run["started"]) and run["status"] == "running":
        window = min(window, max((now - _time(run["started"])).total_seconds(), 1.0))
    rate = recent / window * 60.0  # steps a minute
    remaining = sum(n for s, n in counts["steps"].items() if Status(s).in_flight)
    eta = remaining / rate * 60.0 if rate > 0 and remaining else None

    failures = view.failure_groups()
    running = view.running()
    for r in running:
        start = _time(r["started"])
        r["elapsed"] = (now - start).total_seconds() if start else None
        r["elapsed_text"] = seconds(r["elapsed"])
    return {
        "generated": now.isoformat(timespec="seconds"),
        "run": run, "counts": counts, "steps": steps,
        "rate_per_minute": round(rate, 2), "remaining": remaining, "eta": eta, "eta_text": seconds(eta),
        "failures": failures, "failure_total": sum(f["n"] for f in failures), "skipped": view.skipped_groups(),
        "running": running,
        "grades": view.grade_counts(),
        "manual_grades": view.manual_grade_counts(),
        "products": view.product_totals(), "has_quality": view.has_quality(),
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


def image_table(view: BatchView, *, where: str | None = None, status: str | None = None,
                grade: str | None = None, manual: str | None = None, sort: str | None = None,
                direction: str | None = None, page: int = 1) -> dict[str, Any]:
    """One page of the image table, filtered and sorted in SQL.

    Raises
    ------
    ctxdask.tracking.selection.SelectionError
        ``where`` is not a valid filter.
    """
    text = _quick(where, {"status": (status, tuple(Status)), "grade": (grade, tuple(Grade)),
                          "manual": (manual, tuple(Grade))})
    sort_key, direction, order = _order(sort, direction, selection.IMAGE_FIELDS, "i", "status")
    total, rows, page = _page(view.image_page, text, order, page)
    # geometry columns only once the pair finder's scores are imported: empty ones push the error off-screen
    geometry = IMAGE_GEOMETRY if any(r.get(key) is not None for r in rows for key, _, _ in IMAGE_GEOMETRY) else ()
    for r in rows:
        metrics = decode_json(r.pop("metrics"), {})
        r["metrics"] = [fmt_metric(metrics.get(key), fmt) for key, _, fmt in IMAGE_METRICS]
        r["geometry"] = [fmt_metric(r.get(key), fmt) for key, _, fmt in geometry]
        r["problem"] = _problem(r["status"]) or r["grade"] == "fail" or r["manual"] == "fail"
    return {"rows": rows, "total": total, "page": page, "pages": _pages(total), "sort": sort_key,
            "direction": direction, "where": where or "", "status": status or "", "grade": grade or "",
            "manual": manual or "",
            "metric_labels": [label for _, label, _ in IMAGE_METRICS],
            "metric_keys": [key for key, _, _ in IMAGE_METRICS],
            "geometry_labels": [label for _, label, _ in geometry],
            "geometry_keys": [key for key, _, _ in geometry]}


def pair_table(view: BatchView, *, where: str | None = None, status: str | None = None,
               manual: str | None = None, sort: str | None = None, direction: str | None = None,
               page: int = 1) -> dict[str, Any]:
    """One page of the pair table (see :func:`image_table`)."""
    text = _quick(where, {"status": (status, tuple(Status)), "manual": (manual, tuple(Grade))})
    fields = {**selection.PAIR_FIELDS, "left": "p.left_id", "right": "p.right_id"}
    sort_key, direction, order = _order(sort, direction, fields, None, "status")
    total, rows, page = _page(view.pair_page, text, order, page)
    steps = view.pair_steps([r["pair_id"] for r in rows])
    for r in rows:
        r["steps"] = steps.get(r["pair_id"], [])
        r["geometry"] = [fmt_metric(r.get(key), fmt) for key, _, fmt in PAIR_COLUMNS]
        r["problem"] = _problem(r["status"]) or r["manual"] == "fail"
    return {"rows": rows, "total": total, "page": page, "pages": _pages(total), "sort": sort_key,
            "direction": direction, "where": where or "", "status": status or "", "manual": manual or "",
            "geometry_labels": [label for _, label, _ in PAIR_COLUMNS],
            "geometry_keys": [key for key, _, _ in PAIR_COLUMNS]}


def _pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


def _page(query, text: str, order: str, page: int) -> tuple[int, list[dict], int]:
    """``(total, rows, page)`` of page ``page`` of a filtered table (clamped to the pages there are)."""
    page = max(1, page)
    total, rows = query(text, order, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    if page > _pages(total):
        page = _pages(total)
        total, rows = query(text, order, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return total, rows, page


# ----------------------------------------------------------------------------- files
def output_roots(view: BatchView, out: pathlib.Path) -> list[pathlib.Path]:
    """Folders whose logs may be read: the output folder and the runs' recorded work folders."""
    return [out.resolve(), *(pathlib.Path(w).resolve() for w in view.work_dirs())]


def _inside(path: pathlib.Path, roots: list[pathlib.Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def file_listed(view: BatchView, out: pathlib.Path, rel: str) -> pathlib.Path | None:
    """The file ``rel`` (relative to the output folder) if the database lists it there, else None.

    Listed: delivered products, image thumbnails, pair quality products and
    step logs. The path from the URL is only ever compared with those listed;
    the file opened is the listed one, resolved, and must lie inside ``out``.
    """
    out = out.resolve()
    if not rel or rel.startswith("/") or "\\" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
        return None
    listed = view.listed_path((rel, str(out / rel)))
    if listed is None:
        return None
    path = pathlib.Path(listed)
    path = (path if path.is_absolute() else out / path).resolve()
    return path if path.is_relative_to(out) and path.is_file() else None


def link(out: pathlib.Path, path: str | None) -> str | None:
    """A database path as a ``/files/`` link (relative to ``out``), when it lies inside ``out``."""
    if not path:
        return None
    p = pathlib.Path(path)
    full = (p if p.is_absolute() else out / p).resolve()
    out = out.resolve()
    return full.relative_to(out).as_posix() if full.is_relative_to(out) else None


def _steps(view: BatchView, out: pathlib.Path, subject: str) -> list[dict]:
    """The subject's steps with their logs: the recorded path when it is in the output folder, else the copy
    delivered home with the step's files (the recorded path is in a worker's scratch, meaningless here)."""
    roots = output_roots(view, out)
    delivered_logs = {p["key"]: p["path"] for p in view.products_of(subject) if p["path"].endswith(".log")}
    steps = view.steps_of(subject)
    for s in steps:
        s["duration_text"] = seconds(s["duration"])
        s["log_link"] = link(out, s["log_path"]) or link(out, delivered_logs.get(s["key"]))
        s["tail"] = ""
        for candidate in (s["log_path"], delivered_logs.get(s["key"])):
            path = pathlib.Path(out, candidate).resolve() if candidate else None
            if path is not None and _inside(path, roots) and path.is_file():
                s["tail"] = read_tail(path, TAIL_LINES, max_bytes=32768)
                break
    return steps


def _linked(out: pathlib.Path, products: list[dict]) -> list[dict]:
    return [{**p, "link": link(out, p["path"])} for p in products]


# ----------------------------------------------------------------------------- detail pages
def image_detail(view: BatchView, out: pathlib.Path, product_id: str) -> dict[str, Any] | None:
    """Everything the image page shows, or None for an unknown id."""
    found = view.image(product_id)
    if found is None:
        return None
    q = found["quality"]
    metrics = decode_json(q.get("metrics"), {})
    histogram = metrics.pop("histogram", None)
    return {
        "image": found["image"], "grade": q.get("grade"),
        "reasons": [str(r) for r in decode_json(q.get("reasons"), [])],
        "metrics": sorted((k, v) for k, v in metrics.items() if not isinstance(v, (list, dict))),
        "histogram": histogram if isinstance(histogram, list) else None,
        "thumbnail": link(out, q.get("thumbnail")), "geometry": found["geometry"],
        "keywords": _keywords(found["image"]), "steps": _steps(view, out, product_id), "pairs": found["pairs"],
        "products": _linked(out, found["products"]), "manual": found["manual"], "history": found["history"],
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


def pair_detail(view: BatchView, out: pathlib.Path, pair_id: str) -> dict[str, Any] | None:
    """Everything the pair page shows, or None for an unknown id."""
    found = view.pair(pair_id)
    if found is None:
        return None
    pair, pq, current = found["pair"], found["quality"], found["grades"]
    images = []
    for side, pid in (("left", pair["left_id"]), ("right", pair["right_id"])):
        im = found["images"].get(pid)
        q = found["image_quality"].get(pid, {})
        images.append({"side": side, "product_id": pid, "status": im["status"] if im else None,
                       "grade": q.get("grade"), "thumbnail": link(out, q.get("thumbnail")),
                       "manual": current.get(pid)})
    statistics = decode_json(pq.get("statistics"), {})
    pictures = [{"label": label, "src": link(out, pq.get(col)), "key": col, "bar": None}
                for col, label in (("hillshade", "DEM hillshade"), ("colour_relief", "DEM colour relief"),
                                   ("ortho_thumbnail", "orthoimage"))]
    for p in pictures:
        if p["key"] == "colour_relief" and p["src"]:
            p["bar"] = pair_relief_bar(view, out, pair_id, statistics, pq.get("stac"))
    return {
        "pair": pair, "images": images, "geometry": found["geometry"],
        "statistics": _readable(statistics), "stac": link(out, pq.get("stac")),
        # stereo ran by tile: the tile map is drawn on request (ctxdask.report.tilemap, /pair/<id>/tiles.png)
        "pictures": [p for p in pictures if p["src"]], "tile_map": found["has_tiles"],
        "products": _linked(out, found["products"]), "bundle_adjust": _bundle_adjust(out, found["products"]),
        "steps": _steps(view, out, pair_id), "manual": current.get(pair_id), "history": found["history"],
        "preview": found.get("preview"),
    }


def _readable(statistics: dict[str, Any]) -> dict[str, Any]:
    """DEM statistics as a person reads them: the CRS in words (body, projection, centre, pixel size; its WKT
    is in the STAC item), bounds and resolution left to that sentence, the relief's stretch to its colour bar."""
    statistics = {k: v for k, v in statistics.items() if k != "relief_limits"}
    wkt = statistics.get("crs")
    if isinstance(wkt, str) and wkt:
        words = describe_crs(wkt, statistics.get("resolution"))
        statistics["crs"] = words if words else wkt[:60] + "…"  # not a CRS pyproj reads: the start of it
    return statistics


def _bundle_adjust(out: pathlib.Path, products: list[dict]) -> dict[str, Any] | None:
    """The pair's bundle adjustment residuals, as its delivered ``qa_metrics.json`` records them (else None).

    ``{"cameras": [{"image", "initial": {...}, "final": {...}}], "initial_mean_px", "final_mean_px",
    "improvement"}``, each stage ``{"mean_px", "median_px", "count"}`` (:mod:`ctxdask.quality.bundle`).
    """
    import json

    listed = next((p["path"] for p in products if str(p["path"]).endswith("qa_metrics.json")), None)
    path = pathlib.Path(listed) if listed else None
    if path is not None and not path.is_absolute():
        path = out / path
    try:
        record = json.loads(path.read_text(encoding="utf-8"))["bundle_adjust"] if path else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not record:
        return None
    stages = {when: {c["image"]: c for c in record[when]["cameras"]} for when in ("initial", "final")}
    cameras = [{"image": image, "initial": cam, "final": stages["final"].get(image, {})}
               for image, cam in stages["initial"].items()]
    return {"cameras": cameras, "initial_mean_px": record["initial"].get("mean_px"),
            "final_mean_px": record["final"].get("mean_px"), "improvement": record.get("improvement")}
