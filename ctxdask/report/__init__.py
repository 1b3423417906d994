"""A static HTML report of a batch: summary, pairs, per-image QA, failures first.

:func:`build_report` reads the tracking database of a batch output folder
(read-only, so it can run while a batch writes) and writes one folder::

    report/
      index.html          the page: inline CSS, no external resources
      files/thumbs/...    copies of the image and DEM thumbnails
      files/map/...       each DEM's hillshade in longitude/latitude, for the map (pan and zoom: inline script)
      files/logs/...      copies of the step logs (the last 1 MB of long ones)

The folder opens offline from anywhere (``file://``, a web server, an e-mail
attachment after zipping): every link in it is relative and points inside it.

Every value the template prints (product ids, errors, log tails, grade
reasons: everything from the database) goes through :func:`html.escape`
(Jinja2 ``finalize``), with Jinja2 autoescaping behind it; nothing from the
database is ever marked safe.

Batches run without quality assessment (or before it recorded anything) give a
report without grades, thumbnails and DEM statistics.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from ctxdask.report.demmap import map_cache, map_hillshade
from ctxdask.report.geo import describe_crs
from ctxdask.report.mapdata import map_layers, pair_relief_bar
from ctxdask.report.templating import environment, fmt_metric, seconds
from ctxdask.tools.runner import read_tail
from ctxdask.tracking import BatchView, Grade, Status, database_path, open_existing

__all__ = ["ReportData", "build_report", "collect", "render"]

#: statuses that mean something went wrong, listed first everywhere
PROBLEM = tuple(s for s in Status if s.problem)
#: logs longer than this are copied as their last LOG_LIMIT bytes
LOG_LIMIT = 1 << 20
#: lines of a failed step's log shown inline
TAIL_LINES = 20
#: metrics shown in the image table (key in QualityMetrics.to_dict(), heading, format)
IMAGE_METRICS = (  # headings say the unit (a fraction, DN) or the ratio they are
    ("valid_fraction", "valid fraction", "{:.4f}"),
    ("lost_line_count", "lost lines", "{:d}"),
    ("saturated_fraction", "saturated fraction", "{:.2e}"),
    ("dark_level", "dark level DN", "{:.1f}"),
    ("dark_noise", "dark σ DN", "{:.2f}"),
    ("even_odd_relative", "even/odd / signal", "{:.3f}"),
    ("snr", "SNR", "{:.1f}"),
    ("contrast", "contrast / signal", "{:.3f}"),
    ("haze", "haze / signal", "{:.3f}"),
)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
_TEMPLATE = "report.html.j2"
_MARKER = ".ctxdask-report"


@dataclasses.dataclass
class ReportData:
    """Everything the page shows, as plain values (the template's context).

    Attributes
    ----------
    title, out_dir, database, generated : str
    runs : list of dict
        Every run, newest first, with ``duration`` in seconds (None while running).
    counts : dict
        ``{"pairs"|"images"|"steps": {status: n}}``.
    grades : dict
        Grade -> number of graded images (empty without QA).
    step_times : list of dict
        Per step name: runs, done/failed counts, total/mean/max seconds.
    failures : list of dict
        Failed, timed-out and interrupted steps, with log link and tail.
    pairs, images : list of dict
        Table rows, problems first.
    rejected : list of dict
        Pair-list lines the last run skipped.
    products : dict
        ``{"files": n, "bytes": n}`` delivered.
    has_quality : bool
        Whether quality assessment recorded anything.
    manual_grades : dict
        ``{"image"|"pair": {grade: n}}`` of the current manual grades.
    previews : dict
        Pair id -> its preview verdict (``tools.asp.preview``), held pairs first.
    map : dict
        The batch map's layers (:func:`ctxdask.report.mapdata.map_layers`), linking to the rows here.
    """

    title: str
    out_dir: str
    database: str
    generated: str
    runs: list[dict]
    counts: dict[str, dict[str, int]]
    grades: dict[str, int]
    step_times: list[dict]
    failures: list[dict]
    pairs: list[dict]
    images: list[dict]
    rejected: list[dict]
    products: dict[str, int]
    has_quality: bool
    manual_grades: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    previews: dict[str, dict] = dataclasses.field(default_factory=dict)
    map: dict[str, Any] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- helpers
def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def _span(started: str | None, ended: str | None) -> float | None:
    a, b = _parse_time(started), _parse_time(ended)
    return (b - a).total_seconds() if a and b else None


_seconds = seconds


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _safe_name(text: str) -> str:
    """A file name made from ``text`` that cannot leave its folder or need quoting in a URL."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "file"
    return name[:150]


def _tail(path: pathlib.Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file."""
    return read_tail(path, lines, max_bytes=16384)


class _Files:
    """Copies files into the report folder under unique, URL-safe names."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.done: dict[tuple[str, str], str] = {}
        self.used: set[str] = set()

    def _name(self, sub: str, stem: str, suffix: str) -> pathlib.Path:
        name, n = f"{stem}{suffix}", 1
        while f"{sub}/{name}" in self.used:
            n += 1
            name = f"{stem}-{n}{suffix}"
        self.used.add(f"{sub}/{name}")
        return self.root / "files" / sub / name

    def copy(self, source: pathlib.Path, sub: str, stem: str, suffix: str, *,
             limit: int | None = None) -> str | None:
        """Copy ``source`` to ``files/<sub>/<stem><suffix>``; return its path relative to the report."""
        key = (sub, str(source))
        if key in self.done:
            return self.done[key]
        try:
            if not source.is_file():
                return None
            size = source.stat().st_size
            target = self._name(sub, _safe_name(stem), suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            if limit is not None and size > limit:
                with open(source, "rb") as src, open(target, "wb") as dst:
                    src.seek(size - limit)
                    dst.write(f"[ctxdask report: the first {size - limit} bytes of {source} are left out]\n"
                              .encode())
                    shutil.copyfileobj(src, dst)
            else:
                shutil.copyfile(source, target)
        except OSError:
            return None  # unreadable now (permissions, deleted mid-run): show the path without a link
        rel = target.relative_to(self.root).as_posix()
        self.done[key] = rel
        return rel


def _thumb(files: _Files, out_dir: pathlib.Path, rel: str | None, stem: str) -> str | None:
    """Copy a thumbnail named relative to the output folder; only image files inside it."""
    if not rel:
        return None
    path = (out_dir / rel).resolve()
    if path.suffix.lower() not in _IMAGE_SUFFIXES or not path.is_relative_to(out_dir.resolve()):
        return None
    return files.copy(path, "thumbs", stem, path.suffix.lower())


def _log(files: _Files, step: Mapping[str, Any]) -> dict[str, Any]:
    """Log link (copied) and whether it exists here, for one step row."""
    path = step.get("log_path")
    if not path:
        return {"log": None, "log_path": None}
    return {"log": files.copy(pathlib.Path(path), "logs", step["key"], ".log", limit=LOG_LIMIT), "log_path": path}


_fmt_metric = fmt_metric


_status_rank = Status.rank_of


# --------------------------------------------------------------------------- collect
def collect(out_dir: str | os.PathLike, *, db: str | os.PathLike | None = None,
            dest: str | os.PathLike | None = None) -> ReportData:
    """Read a batch's tracking database into :class:`ReportData`, copying files into ``dest``.

    Parameters
    ----------
    out_dir : path
        The batch output folder (thumbnail paths in the database are relative to it).
    db : path or URL, optional
        The tracking database (default ``<out_dir>/ctxdask-batch.sqlite``).
    dest : path, optional
        The report folder that thumbnails and logs are copied into (default
        ``<out_dir>/report``): new, empty or an earlier report, whose copied
        files are removed first.

    Raises
    ------
    ctxdask.exceptions.MissingFileError
        There is no database.
    ctxdask.exceptions.CTXError
        ``dest`` is a file or a folder of other files.
    """
    out_dir = pathlib.Path(out_dir).resolve()
    path = open_existing(database_path(db, out_dir))
    dest = pathlib.Path(dest) if dest is not None else out_dir / "report"
    _prepare(dest)
    files = _Files(dest)
    # the read model's connection is read-only: the report may run while a batch writes
    with BatchView(path) as view:
        manual = view.current_grades()
        runs = view.runs()
        for r in runs:
            r["duration"] = _span(r.get("started"), r.get("ended"))
            r["duration_text"] = _seconds(r["duration"])
        counts = {table: view.counts(table) for table in ("pairs", "images", "steps")}
        step_times = view.step_times()
        for s in step_times:
            s.update(total_text=_seconds(s["total"]), mean_text=_seconds(s["mean"]),
                     longest_text=_seconds(s["longest"]))
        by_subject: dict[str, list[dict]] = {}
        failures = []
        for s in view.all_steps():
            s["duration_text"] = _seconds(s.get("duration"))
            by_subject.setdefault(s["subject"], []).append(s)
            if s["status"] in PROBLEM:
                failures.append(s)
        failures = [_failure(files, s) for s in sorted(failures, key=lambda s: (
            _status_rank(s["status"]), s.get("ended") or "", s["key"]))]
        pair_quality = view.pair_quality()
        pairs = [_pair_row(view, files, out_dir, p, by_subject, manual, pair_quality) for p in view.all_pairs()]
        pairs.sort(key=lambda p: (_status_rank(p["status"]), p.get("line") or 0, p["pair_id"]))
        quality = view.image_quality()
        images = [_image_row(files, out_dir, im, quality.get(im["product_id"], {}), by_subject, manual)
                  for im in view.all_images()]
        rejected, products = view.rejected(), view.product_totals()
        manual_counts = view.manual_grade_counts()
        has_quality = view.has_quality()
        previews = dict(sorted(view.previews().items(), key=lambda p: (p[1]["verdict"] != "held", p[0])))
        batch_map = _batch_map(view, files, out_dir)
    grades: dict[str, int] = {}
    for im in images:
        if im["grade"]:
            grades[im["grade"]] = grades.get(im["grade"], 0) + 1
    # processing failures, then failed grades, then warnings and unfinished work, then the rest
    images.sort(key=lambda im: (0 if im["status"] in PROBLEM else 1 if im["grade"] == "fail" else
                                2 if im["grade"] == "warn" or im["status"] != "done" else 3,
                                _status_rank(im["status"]), Grade.rank_of(im["grade"]), im["product_id"]))
    return ReportData(
        title=f"ctxdask batch report: {out_dir.name}",
        out_dir=str(out_dir), database=str(path),
        generated=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        runs=runs, counts=counts, grades=dict(sorted(grades.items(), key=lambda g: Grade.rank_of(g[0]))),
        step_times=step_times, failures=failures, pairs=pairs, images=images, rejected=rejected,
        products=products, has_quality=has_quality, manual_grades=manual_counts, previews=previews, map=batch_map,
    )


def _failure(files: _Files, step: dict) -> dict:
    """A failed step's row with its log copied and the log's tail."""
    row = {**step, **_log(files, step), "tail": None}
    if row["log_path"] and os.path.isfile(row["log_path"]):
        try:
            row["tail"] = _tail(pathlib.Path(row["log_path"]))
        except OSError:
            pass
    return row


def _metric_title(key: str) -> str:
    """What a metric column means (the heading's tooltip), from the quality module's own table."""
    from ctxdask.quality.metrics import METRICS

    units, meaning = METRICS.get(key, ("", ""))
    return f"{key}: {meaning}" + (f" ({units})" if units not in ("", "1") else "")


def _pair_row(view: BatchView, files: _Files, out_dir: pathlib.Path, p: dict, by_subject: Mapping[str, list],
              manual: Mapping[str, dict], pair_quality: Mapping[str, dict]) -> dict:
    """One row of the pair table: steps with logs, step time, DEM thumbnails, tile map, STAC copy."""
    psteps = [{**s, **_log(files, s)} for s in by_subject.get(p["pair_id"], [])]
    durations = [s["duration"] for s in psteps if s.get("duration") is not None]
    q = pair_quality.get(p["pair_id"], {})
    thumbs = []
    stats = _json(q.get("statistics"), {})
    for column, label in (("hillshade", "hillshade"), ("colour_relief", "colour relief"),
                          ("ortho_thumbnail", "orthoimage")):
        src = _thumb(files, out_dir, q.get(column), f"{p['pair_id']}_{column}")
        if src:
            bar = pair_relief_bar(view, out_dir, p["pair_id"], stats, q.get("stac")) if column == "colour_relief" \
                else None
            thumbs.append({"src": src, "label": label, "bar": bar})
    tile_map = _tile_map(view, files, out_dir, p["pair_id"])
    if tile_map:
        thumbs.append(tile_map)
    stac = _stac(files, out_dir, q.get("stac"), p["pair_id"],
                 view.stac_properties(p["pair_id"], p["left_id"], p["right_id"]))
    return {**p, "steps": psteps, "step_time": sum(durations) if durations else None,
            "step_time_text": _seconds(sum(durations)) if durations else "–",
            "thumbs": thumbs, "stats": stats, "qa": _json(q.get("qa"), {}), "stac": stac,
            "crs": describe_crs(stats.get("crs"), stats.get("resolution")),
            "problem": p["status"] in PROBLEM, "manual": manual.get(p["pair_id"])}


def _image_row(files: _Files, out_dir: pathlib.Path, im: dict, q: Mapping[str, Any], by_subject: Mapping[str, list],
               manual: Mapping[str, dict]) -> dict:
    """One row of the image table: grade, reasons, metrics, thumbnail, steps with logs."""
    metrics = _json(q.get("metrics"), {})
    grade = q.get("grade")
    reasons = _json(q.get("reasons"), [])
    if not isinstance(reasons, list):
        reasons = [str(reasons)]
    return {
        **im,
        "grade": grade, "reasons": [str(r) for r in reasons],
        "metrics": [(label, _fmt_metric(metrics.get(key), fmt)) for key, label, fmt in IMAGE_METRICS],
        "thumb": _thumb(files, out_dir, q.get("thumbnail"), f"{im['product_id']}_thumb"),
        "steps": [{**s, **_log(files, s)} for s in by_subject.get(im["product_id"], [])],
        "problem": im["status"] in PROBLEM or grade == "fail",
        "manual": manual.get(im["product_id"]),
    }


def _batch_map(view: BatchView, files: _Files, out_dir: pathlib.Path) -> dict[str, Any]:
    """The batch map, linking to the report's rows, with each DEM's hillshade copied into ``files/map``."""
    from rasterio.errors import RasterioError

    def links(kind: str, ident: str) -> str:
        return f"#{kind}-{ident}"

    def shades(pair_id: str, dem: pathlib.Path):
        try:
            made = map_hillshade(dem, map_cache(out_dir))
        except (OSError, ValueError, RasterioError):
            return None  # an unreadable DEM: its outline still shows
        copied = files.copy(made["png"], "map", f"{pair_id}_map", ".png")
        return (copied, tuple(made["bounds"])) if copied else None

    return map_layers(view, out_dir, "status", links=links, shades=shades)


def _tile_map(view: BatchView, files: _Files, out_dir: pathlib.Path, pair_id: str) -> dict | None:
    """Draw a tiled-stereo pair's tile map into the report (``None`` for monolithic pairs)."""
    from ctxdask.report.tilemap import tile_map_for_pair

    target = files._name("thumbs", _safe_name(f"{pair_id}_tiles"), ".png")
    try:
        drawn = tile_map_for_pair(view, out_dir, pair_id, target, size=480)
    except (OSError, ValueError):
        return None  # an unreadable orthoimage or no tiles: the pair row still shows
    if drawn is None:
        return None
    return {"src": drawn.relative_to(files.root).as_posix(), "label": "tile map", "bar": None}


def _stac(files: _Files, out_dir: pathlib.Path, rel: str | None, pair_id: str,
          grades: Mapping[str, Any]) -> str | None:
    """Copy a pair's STAC item (a JSON file inside the output folder) for linking, with the current grades."""
    if not rel:
        return None
    path = (out_dir / rel).resolve()
    if path.suffix.lower() != ".json" or not path.is_relative_to(out_dir.resolve()):
        return None
    copied = files.copy(path, "stac", f"{pair_id}.stac", ".json")
    if copied:
        target = files.root / copied
        try:
            item = json.loads(target.read_text())
            item.setdefault("properties", {}).update(grades)
            target.write_text(json.dumps(item, indent=2) + "\n")
        except (OSError, ValueError, AttributeError):
            pass  # an unreadable item is still linked as it was delivered
    return copied


# --------------------------------------------------------------------------- render
def render(data: ReportData) -> str:
    """The HTML page of ``data`` (Jinja2, autoescaped)."""
    env = environment()
    longest = max((s["total"] or 0 for s in data.step_times), default=0)
    return env.get_template(_TEMPLATE).render(
        **dataclasses.asdict(data), problem_statuses=PROBLEM, longest_step=longest, statuses=[str(s) for s in Status],
        metric_labels=[label for _, label, _ in IMAGE_METRICS],
        metric_titles=[_metric_title(key) for key, _, _ in IMAGE_METRICS],
    )


def _prepare(dest: pathlib.Path) -> None:
    """Make ``dest`` an empty report folder, clearing only what an earlier report wrote."""
    from ctxdask.exceptions import CTXError

    if dest.exists():
        if not dest.is_dir():
            raise CTXError(dest, "the report folder is a file; choose another --out")
        if any(dest.iterdir()) and not (dest / _MARKER).is_file():
            raise CTXError(dest, "the folder is not empty and holds no earlier ctxdask report; "
                                 "choose an empty or new folder with --out")
        shutil.rmtree(dest / "files", ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / _MARKER).write_text("a ctxdask report folder: `ctxdask report` may replace its contents\n")


def build_report(out_dir: str | os.PathLike, *, db: str | os.PathLike | None = None,
                 dest: str | os.PathLike | None = None) -> pathlib.Path:
    """Write the HTML report of a batch into one self-contained folder.

    Parameters
    ----------
    out_dir : path
        The batch output folder (``run_batch(..., out)``).
    db : path or URL, optional
        The tracking database (default ``<out_dir>/ctxdask-batch.sqlite``).
    dest : path, optional
        The report folder (default ``<out_dir>/report``). It must be new, empty
        or an earlier report, whose copied files are replaced.

    Returns
    -------
    pathlib.Path
        The page, ``<dest>/index.html``.

    Raises
    ------
    ctxdask.exceptions.CTXError
        No database, or ``dest`` is a folder of other files.

    Examples
    --------
    >>> from ctxdask.report import build_report      # doctest: +SKIP
    >>> build_report("results")                       # doctest: +SKIP
    PosixPath('results/report/index.html')
    """
    out_dir = pathlib.Path(out_dir)
    dest = pathlib.Path(dest) if dest is not None else out_dir / "report"
    page = render(collect(out_dir, db=db, dest=dest))
    # temp file + rename: a browser refreshing the page never sees half of it
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=".index.", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(page)
    os.chmod(tmp, 0o644)
    target = dest / "index.html"
    os.replace(tmp, target)
    return target
