"""The one read model of a batch: what ``ctxdask status``, the HTML report and the live pages show.

:class:`BatchView` answers named questions on a read-only connection and
returns plain dicts and lists, raw as stored (JSON columns decoded): the
callers format them (durations, metrics, links) for their medium. Counts come
sorted in display order (problems first, :attr:`Status.rank`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sqlite3
from collections.abc import Iterable
from typing import Any

from ctxdask.tracking import selection
from ctxdask.tracking.connection import connect_reader
from ctxdask.tracking.grades import current_grades, grade_counts, history, manually_rejected, stac_properties
from ctxdask.tracking.previews import held_previews, previews
from ctxdask.tracking.status import Grade, Status, sql_list

__all__ = ["BatchView", "decode_json"]

_PROBLEM = sql_list(s for s in Status if s.problem)
_FINAL = sql_list(s for s in Status if s.final)
#: what the image and pair tables show (aliases of selection.image_from / pair_from)
_IMAGE_COLUMNS = ("i.product_id, i.status, i.error, i.summing, i.lines, qi.grade, qi.metrics, qi.thumbnail, "
                  "mi.value AS manual, mi.note AS manual_note, mi.who AS manual_who, gi.incidence, gi.emission, "
                  "gi.time")
_PAIR_COLUMNS = ("p.pair_id, p.left_id, p.right_id, p.line, p.status, p.error, mp.value AS manual, "
                 "mp.note AS manual_note, ql.grade AS left_grade, qr.grade AS right_grade, ml.value AS left_manual, "
                 "mr.value AS right_manual, pg.iou AS overlap, pg.convergence, pg.score")
#: the product columns of pair_quality that name files
PAIR_FILES = ("stac", "hillshade", "colour_relief", "ortho_thumbnail")


def decode_json(text: str | None, default: Any) -> Any:
    """A JSON column's value, or ``default`` when empty or unreadable."""
    try:
        return json.loads(text) if text else default
    except (TypeError, ValueError):
        return default


class BatchView:
    """Read a tracking database (read-only; safe while a batch writes).

    Parameters
    ----------
    path : path
        The database file (migrated first when older; see :mod:`ctxdask.tracking.schema`).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self.conn: sqlite3.Connection = connect_reader(self.path)

    def close(self) -> None:
        """Close the database connection."""
        self.conn.close()

    def __enter__(self) -> BatchView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _rows(self, sql: str, params: Iterable = ()) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, tuple(params))]

    def _one(self, sql: str, params: Iterable = ()) -> dict | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    # ------------------------------------------------------------- summaries
    def counts(self, table: str) -> dict[str, int]:
        """Status -> number of ``images``, ``pairs`` or ``steps``, problems first."""
        if table not in ("images", "pairs", "steps"):
            raise ValueError(table)
        rows = self.conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status").fetchall()
        return dict(sorted(((s, n) for s, n in rows), key=lambda sn: Status.rank_of(sn[0])))

    def runs(self, limit: int | None = None) -> list[dict]:
        """The runs, newest first; ``settings`` as the mapping it was recorded from (JSON in the table)."""
        rows = self._rows("SELECT * FROM runs ORDER BY id DESC" + ("" if limit is None else f" LIMIT {int(limit)}"))
        for row in rows:
            with contextlib.suppress(TypeError, ValueError):  # NULL, or text from before it was JSON: as it is
                row["settings"] = json.loads(row["settings"])
        return rows

    def run_count(self) -> int:
        """The number of runs recorded."""
        return self.conn.execute("SELECT count(*) FROM runs").fetchone()[0]

    def step_counts(self) -> dict[str, dict[str, int]]:
        """Step name -> {status: n}."""
        out: dict[str, dict[str, int]] = {}
        for r in self.conn.execute("SELECT step, status, count(*) AS n FROM steps GROUP BY step, status"):
            out.setdefault(r["step"], {})[r["status"]] = r["n"]
        return out

    def step_names(self) -> list[str]:
        """Step names in chain order: image steps first, then by first start."""
        return [r[0] for r in self.conn.execute(
            "SELECT step FROM steps GROUP BY step ORDER BY min(scope = 'pair'), min(coalesce(started, '9')), step")]

    def step_times(self) -> list[dict]:
        """Per step name: count, done, problems, total/mean/longest seconds, in chain order."""
        return self._rows(f"""
            SELECT step, count(*) AS n, sum(status = 'done') AS done, sum(status IN ({_PROBLEM})) AS problems,
                   sum(duration) AS total, avg(duration) AS mean, max(duration) AS longest
            FROM steps GROUP BY step ORDER BY min(scope = 'pair'), min(started), step""")

    def failures(self, limit: int | None = 50) -> list[dict]:
        """Failed, timed-out and interrupted steps, oldest first."""
        return self._rows(f"SELECT key, step, subject, status, worker, exit_code, log_path, error, ended FROM steps "
                          f"WHERE status IN ({_PROBLEM}) ORDER BY ended, key"
                          + ("" if limit is None else f" LIMIT {int(limit)}"))

    def failure_count(self) -> int:
        """The number of steps that ended in a problem status."""
        return self.conn.execute(f"SELECT count(*) FROM steps WHERE status IN ({_PROBLEM})").fetchone()[0]

    def failure_groups(self, limit: int = 50) -> list[dict]:
        """Problem steps grouped by step, status and the first line of their error, largest group first."""
        return self._rows(f"""
            SELECT step, status, min(scope) AS scope,
                   substr(coalesce(error, ''), 1, instr(coalesce(error, '') || char(10), char(10)) - 1) AS reason,
                   count(*) AS n, min(subject) AS example, min(key) AS example_key
            FROM steps WHERE status IN ({_PROBLEM})
            GROUP BY step, status, reason ORDER BY n DESC, step LIMIT {int(limit)}""")

    def skipped_groups(self, limit: int = 50) -> list[dict]:
        """Skipped steps grouped by step and why, largest group first.

        A step skipped because an earlier one did not succeed (``blocked_by``) is
        counted under one reason: the failure itself is listed with the failures.
        The others say their own reason (a program not installed, a pair held).
        """
        return self._rows(f"""
            SELECT step, 'skipped' AS status, min(scope) AS scope,
                   CASE WHEN blocked_by IS NOT NULL THEN 'not run: an earlier step did not succeed'
                        ELSE substr(coalesce(error, ''), 1, instr(coalesce(error, '') || char(10), char(10)) - 1)
                   END AS reason,
                   count(*) AS n, min(subject) AS example, min(key) AS example_key
            FROM steps WHERE status = 'skipped'
            GROUP BY step, reason ORDER BY n DESC, step LIMIT {int(limit)}""")

    def finished_since(self, stamp: str) -> int:
        """Steps that ended done, failed or timed out at or after ``stamp`` (ISO text)."""
        return self.conn.execute(f"SELECT count(*) FROM steps WHERE ended >= ? AND status IN ({_FINAL})",
                                 (stamp,)).fetchone()[0]

    def running(self, limit: int = 200) -> list[dict]:
        """Steps running now, oldest first."""
        return self._rows("SELECT key, step, scope, subject, worker, host, started, attempts FROM steps "
                          f"WHERE status = 'running' ORDER BY started LIMIT {int(limit)}")

    def skipped_steps(self) -> list[dict]:
        """Skipped steps in the order they were recorded: ``step``, ``error`` and ``blocked_by``."""
        return self._rows("SELECT step, error, blocked_by FROM steps WHERE status = 'skipped' ORDER BY rowid")

    def unfinished_steps(self) -> list[dict]:
        """Steps neither done nor skipped: ``key``, ``status``, ``error``."""
        return self._rows("SELECT key, status, error FROM steps WHERE status NOT IN ('done', 'skipped') ORDER BY key")

    def rejected(self) -> list[dict]:
        """The pair-list lines the last run skipped."""
        return self._rows("SELECT line, text, reason FROM rejected WHERE run_id = (SELECT max(run_id) FROM rejected) "
                          "ORDER BY line")

    def product_totals(self) -> dict[str, int]:
        """``{"files": n, "bytes": n}`` delivered."""
        return dict(self.conn.execute("SELECT count(*) AS files, coalesce(sum(size), 0) AS bytes FROM products")
                    .fetchone())

    def grade_counts(self) -> dict[str, int]:
        """Automatic grade -> number of images, fail first."""
        rows = self.conn.execute("SELECT grade, count(*) FROM quality WHERE grade IS NOT NULL GROUP BY grade")
        return dict(sorted(rows.fetchall(), key=lambda g: Grade.rank_of(g[0])))

    def has_quality(self) -> bool:
        """Whether quality assessment recorded anything (an image grade or a pair's DEM statistics)."""
        return self.conn.execute("SELECT EXISTS (SELECT 1 FROM quality) OR EXISTS (SELECT 1 FROM pair_quality)"
                                 ).fetchone()[0] == 1

    def manual_grade_counts(self) -> dict[str, dict[str, int]]:
        """Scope (image, pair) -> {manual grade: count}."""
        return grade_counts(self.conn)

    def tile_progress(self) -> dict[str, dict[str, Any]]:
        """Pair -> {"pair": pair status, "total": tiles, <tile status>: count}, for pairs with tiles."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.conn.execute(
                "SELECT t.pair_id, p.status AS pair_status, t.status, count(*) AS n FROM tiles t "
                "LEFT JOIN pairs p ON p.pair_id = t.pair_id GROUP BY t.pair_id, t.status ORDER BY t.pair_id"):
            entry = out.setdefault(r["pair_id"], {"pair": r["pair_status"], "total": 0})
            entry[r["status"]] = r["n"]
            entry["total"] += r["n"]
        return out

    def status_report(self, *, failures: int | None = 50) -> dict[str, Any]:
        """Everything ``ctxdask status`` shows, as plain data."""
        last = self.runs(limit=1)
        return {
            "database": str(self.path),
            "last_run": last[0] if last else None,
            "runs": self.run_count(),
            "pairs": self.counts("pairs"),
            "images": self.counts("images"),
            "steps": self.step_counts(),
            "failures": self.failures(failures),
            "failure_count": self.failure_count(),
            "rejected": self.rejected(),
            "tiles": self.tile_progress(),
            "products": self.product_totals(),
            "manual_grades": grade_counts(self.conn),
            "manually_rejected": dict(sorted(manually_rejected(self.conn).items())),
            "held_previews": held_previews(self.conn),
        }

    # ------------------------------------------------------------ whole tables
    def all_steps(self) -> list[dict]:
        """Every step, in start order (not started last)."""
        return self._rows("SELECT * FROM steps ORDER BY started IS NULL, started, key")

    def steps_of(self, subject: str) -> list[dict]:
        """The steps of one image or pair, in start order."""
        return self._rows("SELECT * FROM steps WHERE subject = ? ORDER BY started IS NULL, started, key", (subject,))

    def pair_steps(self, pair_ids: list[str]) -> dict[str, list[dict]]:
        """Pair -> its steps' ``step`` and ``status``, in start order."""
        if not pair_ids:
            return {}
        out: dict[str, list[dict]] = {}
        for s in self._rows(f"SELECT subject, step, status FROM steps WHERE scope = 'pair' AND subject IN "
                            f"({', '.join('?' * len(pair_ids))}) ORDER BY started IS NULL, started, key", pair_ids):
            out.setdefault(s["subject"], []).append(s)
        return out

    def all_pairs(self) -> list[dict]:
        """Every row of the ``pairs`` table."""
        return self._rows("SELECT * FROM pairs")

    def all_images(self) -> list[dict]:
        """Every row of the ``images`` table."""
        return self._rows("SELECT * FROM images")

    def image_quality(self) -> dict[str, dict]:
        """Product id -> its QA row (``reasons`` and ``metrics`` still JSON text)."""
        return {r["product_id"]: r for r in self._rows("SELECT * FROM quality ORDER BY product_id")}

    def pair_quality(self) -> dict[str, dict]:
        """Pair id -> its DEM QA row (``statistics`` still JSON text)."""
        return {r["pair_id"]: r for r in self._rows("SELECT * FROM pair_quality ORDER BY pair_id")}

    def previews(self) -> dict[str, dict]:
        """Pair id -> its preview verdict (:func:`ctxdask.tracking.previews.previews`)."""
        return previews(self.conn)

    def current_grades(self) -> dict[str, dict]:
        """Subject -> its latest manual grade row."""
        return current_grades(self.conn)

    def stac_properties(self, pair_id: str, left: str, right: str) -> dict:
        """The properties the database gives the STAC item of pair ``pair_id`` (``left``, ``right``)."""
        return stac_properties(self.conn, pair_id, left, right)

    def work_dirs(self) -> list[str]:
        """The work folders the runs recorded in their settings."""
        found = []
        for (text,) in self.conn.execute("SELECT settings FROM runs"):
            work = decode_json(text, {}).get("work_dir") if text else None
            if work:
                found.append(work)
        return found

    # --------------------------------------------------------------- one item
    def image(self, product_id: str) -> dict | None:
        """The image's row with its QA, geometry, pairs, products and manual grades; None if unknown."""
        row = self._one("SELECT * FROM images WHERE product_id = ?", (product_id,))
        if row is None:
            return None
        return {
            "image": row,
            "quality": self._one("SELECT * FROM quality WHERE product_id = ?", (product_id,)) or {},
            "geometry": self._one("SELECT * FROM image_geometry WHERE product_id = ?", (product_id,)),
            "pairs": self._rows("SELECT pair_id, left_id, right_id, status FROM pairs WHERE left_id = ? OR "
                                "right_id = ? ORDER BY line", (product_id, product_id)),
            "products": self.products_of(product_id),
            "manual": current_grades(self.conn).get(product_id),
            "history": history(self.conn, product_id),
        }

    def pair(self, pair_id: str) -> dict | None:
        """The pair's row with its DEM QA, geometry, images, products, tiles and grades; None if unknown."""
        row = self._one("SELECT * FROM pairs WHERE pair_id = ?", (pair_id,))
        if row is None:
            return None
        sides = (row["left_id"], row["right_id"])
        return {
            "pair": row,
            "quality": self._one("SELECT * FROM pair_quality WHERE pair_id = ?", (pair_id,)) or {},
            "geometry": self._one("SELECT * FROM pair_geometry WHERE pair_id = ?", (pair_id,)),
            "image_quality": {r["product_id"]: r for r in self._rows(
                "SELECT product_id, grade, thumbnail FROM quality WHERE product_id IN (?, ?)", sides)},
            "images": {r["product_id"]: r for r in self._rows(
                "SELECT product_id, status, error FROM images WHERE product_id IN (?, ?)", sides)},
            "products": self.products_of(pair_id),
            "has_tiles": self.has_tiles(pair_id),
            "grades": current_grades(self.conn),
            "history": history(self.conn, pair_id),
            "preview": previews(self.conn, pair_id).get(pair_id),
        }

    def products_of(self, subject: str) -> list[dict]:
        """The delivered files of ``subject`` (path, size, delivered, key), by path."""
        return self._rows("SELECT path, size, delivered, key FROM products WHERE subject = ? ORDER BY path",
                          (subject,))

    def thumbnail_of(self, product_id: str) -> str | None:
        """The thumbnail path of image ``product_id`` (relative to the output folder), or None."""
        row = self.conn.execute("SELECT thumbnail FROM quality WHERE product_id = ?", (product_id,)).fetchone()
        return row[0] if row else None

    def stac_of(self, pair_id: str) -> tuple[str, str, str] | None:
        """``(stac path, left, right)`` of a pair with a STAC item, else None."""
        row = self.conn.execute("SELECT q.stac, p.left_id, p.right_id FROM pair_quality q JOIN pairs p "
                                "ON p.pair_id = q.pair_id WHERE q.pair_id = ? AND q.stac IS NOT NULL",
                                (pair_id,)).fetchone()
        return tuple(row) if row else None

    def listed_path(self, candidates: tuple[str, ...]) -> str | None:
        """The first of ``candidates`` the database lists as a file (product, log, thumbnail, pair QA file)."""
        marks = ", ".join("?" * len(candidates))
        for table, column in (("products", "path"), ("steps", "log_path"), ("quality", "thumbnail"),
                              *(("pair_quality", c) for c in PAIR_FILES)):
            row = self.conn.execute(f"SELECT {column} FROM {table} WHERE {column} IN ({marks}) LIMIT 1",
                                    candidates).fetchone()
            if row:
                return row[0]
        return None

    # ------------------------------------------------------------ tiles, maps
    def tiles(self, pair_id: str) -> list[dict]:
        """A pair's tiles in index order (``footprint`` decoded)."""
        rows = self._rows("SELECT * FROM tiles WHERE pair_id = ? ORDER BY tile_index", (pair_id,))
        for r in rows:
            r["footprint"] = decode_json(r.get("footprint"), None)
        return rows

    def has_tiles(self, pair_id: str) -> bool:
        """Whether the pair's stereo ran by tile (it has tile rows)."""
        return self.conn.execute("SELECT 1 FROM tiles WHERE pair_id = ? LIMIT 1", (pair_id,)).fetchone() is not None

    def orthoimage_of(self, pair_id: str) -> str | None:
        """The delivered orthoimage mosaic (``results/out-DRG.tif``) or its COG of a pair, not a tile's."""
        row = self.conn.execute("SELECT path FROM products WHERE subject = ? AND path LIKE '%DRG.tif' "
                                "AND path NOT LIKE '%/tiles/%' ORDER BY delivered DESC LIMIT 1", (pair_id,)).fetchone()
        return row[0] if row else None

    def footprints(self) -> list[dict]:
        """Images with a footprint: ``product_id``, ``status``, ``grade``, ``manual``, ``footprint``."""
        return self._rows(f"{selection.WITH_CLAUSE} SELECT i.product_id, i.status, qi.grade, mi.value AS manual, "
                          f"gi.footprint {selection.image_from()} WHERE gi.footprint IS NOT NULL")

    def map_pairs(self) -> list[dict]:
        """Every pair as the map colours it: ``pair_id``, ``status``, ``grade`` (its DEM QA), ``manual``,
        ``left_footprint``/``right_footprint`` (pair finder; None when not imported) and ``stac``."""
        return self._rows(f"{selection.WITH_CLAUSE} SELECT p.pair_id, p.status, pq.grade, mp.value AS manual, "
                          f"gl.footprint AS left_footprint, gr.footprint AS right_footprint, pq.stac "
                          f"{selection.pair_from()} ORDER BY p.pair_id")

    def dem_of(self, pair_id: str) -> str | None:
        """The pair's delivered DEM (its COG ``<pair>-DEM.tif`` before ASP's ``out-DEM.tif``), not a tile's."""
        row = self.conn.execute("SELECT path FROM products WHERE subject = ? AND path LIKE '%-DEM.tif' "
                                "AND path NOT LIKE '%/tiles/%' ORDER BY path LIKE ? DESC, delivered DESC LIMIT 1",
                                (pair_id, f"%{pair_id}-DEM.tif")).fetchone()
        return row[0] if row else None

    def stac_items(self) -> list[tuple[str, str]]:
        """``(pair_id, stac path)`` of the pairs with DEM QA."""
        return [tuple(r) for r in self.conn.execute("SELECT q.pair_id, q.stac FROM pair_quality q "
                                                    "JOIN pairs p ON p.pair_id = q.pair_id")]

    # -------------------------------------------------------- filtered tables
    def _page(self, query: selection.Query, columns: str, source: str, order: str, limit: int,
              offset: int) -> tuple[int, list[dict]]:
        head = f"{selection.WITH_CLAUSE} SELECT"
        total = self.conn.execute(f"{head} count(*) {source} WHERE {query.sql}", query.params).fetchone()[0]
        rows = self._rows(f"{head} {columns} {source} WHERE {query.sql} ORDER BY {order} LIMIT ? OFFSET ?",
                          (*query.params, limit, offset))
        return total, rows

    def image_page(self, text: str, order: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        """``(total, rows)`` of the images matching filter ``text`` (:mod:`.selection`), one page.

        ``order`` is an ORDER BY expression built from :data:`selection.IMAGE_FIELDS` (never input).
        """
        return self._page(selection.compile_images(text), _IMAGE_COLUMNS, selection.image_from(),
                          f"{order}, i.product_id", limit, offset)

    def pair_page(self, text: str, order: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        """``(total, rows)`` of the pairs matching filter ``text``, one page (see :meth:`image_page`)."""
        return self._page(selection.compile_pairs(text), _PAIR_COLUMNS, selection.pair_from(),
                          f"{order}, p.pair_id", limit, offset)

    def select_pairs(self, text: str | None) -> list[tuple[str, str, str]]:
        """``(pair_id, left, right)`` of the pairs matching ``text``, in pair-list order."""
        return selection.select_pairs(self.conn, text)
