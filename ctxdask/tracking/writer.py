"""The batch driver's handle on the tracking database: every write, and the reads planning needs.

Only the batch driver writes through :class:`TrackingDB`, from one thread;
:func:`~ctxdask.tracking.connection.lock_database` keeps a second driver out.
(Manual grades and imported geometry have their own writers in
:mod:`ctxdask.tracking.grades` and :mod:`ctxdask.tracking.geometry`: they come
from other processes while a batch runs.)

Columns are set by keyword; each table's settable columns are listed here and
anything else is refused, so no caller's name ever becomes SQL text. Statuses
are :class:`~ctxdask.tracking.status.Status` values (or their text); the
tables' ``CHECK`` constraints refuse any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ctxdask.tracking.connection import connect_reader, connect_writer, now
from ctxdask.tracking.grades import manually_rejected
from ctxdask.tracking.previews import held_previews, record_preview
from ctxdask.tracking.status import AttemptStatus, Status, sql_list

__all__ = ["STEP_FIELDS", "TrackingDB"]

#: columns of ``steps`` a caller may set
STEP_FIELDS = ("scope", "subject", "step", "status", "run_id", "worker", "host", "started", "ended", "duration",
               "exit_code", "log_path", "error", "blocked_by")
_SUBJECT_FIELDS = ("status", "error", "summing", "lines", "validation", "output_dir")
_TILE_FIELDS = ("status", "failure_kind", "error", "outputs", "sha256", "param_set", "param_label")
_ATTEMPT_FIELDS = ("status", "ended", "duration", "failure_kind", "exit_code", "log_path", "error")
_SUBJECT_TABLES = {"images": "product_id", "pairs": "pair_id"}
_IN_FLIGHT = sql_list(s for s in Status if s.in_flight)
#: a tile in one of these leaves a hole in its pair's DEM (skipped tiles do not exist)
_NOT_DONE_TILE = sql_list(s for s in Status if s not in (Status.DONE, Status.SKIPPED))


def _checked(fields: Mapping[str, Any], allowed: tuple[str, ...], table: str) -> None:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise TypeError(f"unknown {table} columns: {sorted(unknown)}")


def _assignments(fields: Mapping[str, Any]) -> str:
    return ", ".join(f"{c} = ?" for c in fields)


class TrackingDB:
    """Read and write the tracking database.

    Parameters
    ----------
    path : str or path
        The SQLite file (created with its folder when missing; migrated when older).
    readonly : bool
        Open for reading only (the file must exist).
    """

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False):
        self.path = pathlib.Path(path)
        if readonly and not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no tracking database here")
        self.conn: sqlite3.Connection = connect_reader(self.path) if readonly else connect_writer(self.path)
        self._depth = 0

    def close(self) -> None:
        """Close the database connection."""
        self.conn.close()

    def __enter__(self) -> TrackingDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (nestable; the outermost one commits)."""
        if self._depth == 0:
            self.conn.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self.conn.execute("COMMIT")

    def rows(self, sql: str, params: Iterable = ()) -> list[dict]:
        """Run a query and return plain dicts (for notebooks and tests; ctxdask itself asks named questions)."""
        return [dict(r) for r in self.conn.execute(sql, tuple(params))]

    # ------------------------------------------------------------------ runs
    def start_run(self, *, pairs_file: str, out: str, scheduler: str = "", dashboard: str = "",
                  settings: Mapping[str, Any] | None = None) -> int:
        """Record a new run and return its id."""
        cur = self.conn.execute(
            "INSERT INTO runs (started, status, host, pid, pairs_file, out, scheduler, dashboard, settings)"
            " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            (now(), socket.gethostname(), os.getpid(), pairs_file, out, scheduler, dashboard,
             json.dumps(dict(settings or {}), default=str, sort_keys=True)),
        )
        return int(cur.lastrowid)

    def end_run(self, run_id: int, status: Status | str, error: str | None = None) -> None:
        """Record the end of run ``run_id``: its final status and error, if any."""
        self.conn.execute("UPDATE runs SET ended = ?, status = ?, error = ? WHERE id = ?",
                          (now(), status, error, run_id))

    def interrupt_stale(self) -> int:
        """Mark work left ``running``/``pending`` by a driver that died as ``interrupted``.

        Call only while holding :func:`~ctxdask.tracking.connection.lock_database`:
        then no other driver is alive, so anything still in flight belongs to a
        dead one. Returns the number of steps changed.
        """
        with self.transaction():
            stamp = now()
            self.conn.execute("UPDATE runs SET status = 'interrupted', ended = ?, "
                              "error = 'the driver stopped without closing the run' "
                              f"WHERE status IN ({_IN_FLIGHT})", (stamp,))
            cur = self.conn.execute(
                "UPDATE steps SET status = 'interrupted', updated = ?, "
                "error = coalesce(error, 'the driver stopped while this step was in flight') "
                f"WHERE status IN ({_IN_FLIGHT})", (stamp,))
            for table in ("images", "pairs", "tiles"):
                self.conn.execute(f"UPDATE {table} SET status = 'interrupted', updated = ? "
                                  f"WHERE status IN ({_IN_FLIGHT})", (stamp,))
            self.conn.execute("UPDATE tile_attempts SET status = 'interrupted', ended = ?, "
                              "error = coalesce(error, 'the driver stopped while this tile ran') "
                              "WHERE status = 'running'", (stamp,))
        return cur.rowcount

    # ----------------------------------------------------- images and pairs
    def register(self, pairs: Iterable, images: Iterable[str]) -> None:
        """Insert images and pairs not yet known (existing rows are kept)."""
        stamp = now()
        with self.transaction():
            self.conn.executemany("INSERT OR IGNORE INTO images (product_id, updated) VALUES (?, ?)",
                                  [(pid, stamp) for pid in images])
            self.conn.executemany(
                "INSERT OR IGNORE INTO pairs (pair_id, left_id, right_id, line, updated) VALUES (?, ?, ?, ?, ?)",
                [(p.pair_id, p.left, p.right, p.line, stamp) for p in pairs])

    def record_rejected(self, run_id: int, rejected: Iterable) -> None:
        """Record the pair-list lines of run ``run_id`` that were skipped, with why."""
        self.conn.executemany("INSERT INTO rejected VALUES (?, ?, ?, ?)",
                              [(run_id, r.line, r.text, r.reason) for r in rejected])

    def set_subject(self, table: str, ident: str, status: Status | str, error: str | None = None,
                    **fields: Any) -> None:
        """Set the status (and ``summing``, ``lines``, ``validation``, ``output_dir``) of an image or a pair."""
        key = _SUBJECT_TABLES[table]
        _checked(fields, _SUBJECT_FIELDS, table)
        cols = {"status": status, "error": error, **fields, "updated": now()}
        self.conn.execute(f"UPDATE {table} SET {_assignments(cols)} WHERE {key} = ?", (*cols.values(), ident))

    # ----------------------------------------------------------------- steps
    def upsert_step(self, key: str, *, count_attempt: bool = False, **fields: Any) -> None:
        """Update the row of step ``key`` (only the given columns), creating it if needed.

        Creating a row needs ``scope``, ``subject``, ``step`` and ``status``.
        ``count_attempt`` adds one to the step's attempt counter (it started again).
        """
        _checked(fields, STEP_FIELDS, "step")
        fields["updated"] = now()
        sets = _assignments(fields) + (", attempts = attempts + 1" if count_attempt else "")
        cur = self.conn.execute(f"UPDATE steps SET {sets} WHERE key = ?", (*fields.values(), key))
        if cur.rowcount == 0:
            cols = [*fields, "attempts"]
            self.conn.execute(
                f"INSERT INTO steps (key, {', '.join(cols)}) VALUES (?, {', '.join('?' * len(cols))})",
                (key, *fields.values(), int(count_attempt)),
            )

    def pending_steps(self, steps: Iterable[tuple[str, str, str, str]], run_id: int) -> None:
        """Mark many steps ``(key, scope, subject, step)`` pending for run ``run_id`` (one statement).

        Earlier results of the same keys are cleared; the attempt count is kept.
        """
        stamp = now()
        self.conn.executemany(
            "INSERT INTO steps (key, scope, subject, step, status, run_id, updated) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "scope = excluded.scope, subject = excluded.subject, step = excluded.step, status = 'pending', "
            "run_id = excluded.run_id, worker = NULL, host = NULL, started = NULL, ended = NULL, duration = NULL, "
            "exit_code = NULL, log_path = NULL, error = NULL, blocked_by = NULL, updated = excluded.updated",
            [(key, scope, subject, step, run_id, stamp) for key, scope, subject, step in steps])

    def record_product(self, path: str, key: str, subject: str, size: int, sha256: str) -> None:
        """Record a delivered file: its path, step key, subject, size and sha256."""
        self.conn.execute("INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?, ?)",
                          (path, key, subject, size, sha256, now()))

    def set_quality(self, product_id: str, *, grade: str | None, reasons: Iterable[str],
                    metrics: Mapping[str, Any], thumbnail: str | None) -> None:
        """Store an image's grade, reasons, metrics and thumbnail path (relative to the output folder)."""
        self.conn.execute("INSERT OR REPLACE INTO quality VALUES (?, ?, ?, ?, ?, ?)",
                          (product_id, grade, json.dumps(list(reasons)), json.dumps(dict(metrics)), thumbnail,
                           now()))

    def set_pair_quality(self, pair_id: str, *, statistics: Mapping[str, Any], stac: str | None,
                         hillshade: str | None, colour_relief: str | None, ortho_thumbnail: str | None,
                         qa: Mapping[str, Any] | None = None) -> None:
        """Store a pair's DEM statistics, QA record and product paths (relative to the output folder)."""
        self.conn.execute("INSERT OR REPLACE INTO pair_quality (pair_id, statistics, stac, hillshade, colour_relief, "
                          "ortho_thumbnail, updated, qa) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (pair_id, json.dumps(dict(statistics)), stac, hillshade, colour_relief, ortho_thumbnail,
                           now(), json.dumps(dict(qa)) if qa is not None else None))

    # ----------------------------------------------------------------- tiles
    def register_tiles(self, pair_id: str, tiles: Iterable, footprints: Mapping[int, Any] | None = None) -> None:
        """Insert a pair's tiles (``Tile`` objects) not yet known; existing rows are kept.

        ``footprints`` maps tile index -> ``(xmin, ymin, xmax, ymax)`` in the map projection.
        """
        feet = footprints or {}
        self.conn.executemany(
            "INSERT OR IGNORE INTO tiles (pair_id, tile_index, x, y, width, height, padding, footprint, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(pair_id, t.index, t.x, t.y, t.width, t.height, t.padding,
              json.dumps(list(feet[t.index])) if t.index in feet else None, now()) for t in tiles])

    def set_tile(self, pair_id: str, index: int, status: Status | str, **fields: Any) -> None:
        """Set a tile's status and ``failure_kind``, ``error``, ``outputs``, ``sha256`` (mappings stored as JSON),
        ``param_set``, ``param_label`` (the parameter set of its last attempt)."""
        _checked(fields, _TILE_FIELDS, "tile")
        for name in ("outputs", "sha256"):
            if isinstance(fields.get(name), Mapping):
                fields[name] = json.dumps(dict(fields[name]), sort_keys=True)
        cols = {"status": status, **fields, "updated": now()}
        self.conn.execute(f"UPDATE tiles SET {_assignments(cols)} WHERE pair_id = ? AND tile_index = ?",
                          (*cols.values(), pair_id, index))

    def start_tile_attempt(self, pair_id: str, tile, *, run_id: int | None, dask_key: str, worker: str,
                           host: str = "", started: str | None = None, param_set: int = 0,
                           param_label: str | None = None) -> int:
        """Record that an attempt at ``tile`` started (with parameter set ``param_set``, named ``param_label``);
        returns its row id and counts it on the tile."""
        attempt = 1 + self.conn.execute("SELECT count(*) FROM tile_attempts WHERE pair_id = ? AND tile_index = ?",
                                        (pair_id, tile.index)).fetchone()[0]
        cur = self.conn.execute(
            "INSERT INTO tile_attempts (pair_id, tile_index, attempt, x, y, width, height, run_id, dask_key, "
            "worker, host, started, status, param_set, param_label) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
            (pair_id, tile.index, attempt, tile.x, tile.y, tile.width, tile.height, run_id, dask_key, worker,
             host, started or now(), param_set, param_label))
        self.conn.execute("UPDATE tiles SET status = 'running', attempts = ?, updated = ? "
                          "WHERE pair_id = ? AND tile_index = ?", (attempt, now(), pair_id, tile.index))
        return int(cur.lastrowid)

    def end_tile_attempt(self, row: int, status: AttemptStatus | str, **fields: Any) -> None:
        """Close an attempt: status, ended, duration, failure_kind, exit_code, log_path, error."""
        _checked(fields, _ATTEMPT_FIELDS, "tile attempt")
        cols = {"status": status, "ended": now(), **fields}
        self.conn.execute(f"UPDATE tile_attempts SET {_assignments(cols)} WHERE id = ?", (*cols.values(), row))

    # --------------------------------------------------- what planning asks
    def step_status(self) -> dict[str, str]:
        """Step key -> status, for planning a run."""
        return {r["key"]: r["status"] for r in self.conn.execute("SELECT key, status FROM steps")}

    def step_rows(self, keys: Iterable[str]) -> list[dict]:
        """The rows of the given steps (those the database has)."""
        keys = list(keys)
        if not keys:
            return []
        return self.rows(f"SELECT * FROM steps WHERE key IN ({', '.join('?' * len(keys))})", keys)

    def image_summing(self) -> dict[str, int | None]:
        """Product id -> the summing mode validation found (None before validation)."""
        return {r["product_id"]: r["summing"] for r in self.conn.execute("SELECT product_id, summing FROM images")}

    def product_ids(self) -> list[str]:
        """Every image the database lists, sorted."""
        return [r[0] for r in self.conn.execute("SELECT product_id FROM images ORDER BY product_id")]

    def manually_rejected(self) -> dict[str, str]:
        """Images and pairs people failed by hand -> why (:func:`ctxdask.tracking.grades.manually_rejected`)."""
        return manually_rejected(self.conn)

    def record_preview(self, pair_id: str, verdict: str, reasons: Iterable[str], metrics: Mapping[str, Any]) -> None:
        """Store a pair's preview verdict (:func:`ctxdask.tracking.previews.record_preview`)."""
        record_preview(self.conn, pair_id, verdict, reasons, metrics)

    def held_previews(self) -> dict[str, str]:
        """Pairs held after their preview and not released by a grade -> why
        (:func:`ctxdask.tracking.previews.held_previews`)."""
        return held_previews(self.conn)

    def pairs_with_holes(self) -> set[str]:
        """Pairs with a tile not done (tiled stereo): their DEMs have holes a retry may fill."""
        return {r[0] for r in self.conn.execute(
            f"SELECT DISTINCT pair_id FROM tiles WHERE status IN ({_NOT_DONE_TILE})")}

    def done_tiles(self) -> list[tuple[str, int]]:
        """``(pair_id, tile_index)`` of every tile done."""
        return [(r[0], r[1]) for r in self.conn.execute("SELECT pair_id, tile_index FROM tiles WHERE status = 'done'")]

    def tiles(self, pair_id: str) -> list[dict]:
        """A pair's tiles in index order (``outputs``/``sha256`` decoded)."""
        rows = self.rows("SELECT * FROM tiles WHERE pair_id = ? ORDER BY tile_index", (pair_id,))
        for row in rows:
            for name in ("outputs", "sha256"):
                row[name] = json.loads(row[name]) if row[name] else {}
            row["footprint"] = json.loads(row["footprint"]) if row.get("footprint") else None
        return rows

    def tile_attempts(self, pair_id: str, index: int | None = None) -> list[dict]:
        """A pair's tile attempts (of one tile with ``index``), in order."""
        if index is None:
            return self.rows("SELECT * FROM tile_attempts WHERE pair_id = ? ORDER BY tile_index, attempt",
                             (pair_id,))
        return self.rows("SELECT * FROM tile_attempts WHERE pair_id = ? AND tile_index = ? ORDER BY attempt",
                         (pair_id, index))
