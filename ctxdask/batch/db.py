"""The tracking database: every image, pair and step of a batch, and every run.

SQLite, one file (by default ``<out>/ctxdask-batch.sqlite``), in WAL mode so
``ctxdask status`` and notebooks can read while a batch writes. Only the batch
driver writes, from one thread, through one :class:`TrackingDB`; a lock file
beside the database (:func:`lock_database`) keeps a second driver out.

Tables:

``runs``
    One row per driver run: start/end, status, host, pid, pair list, settings.
``images``, ``pairs``
    One row per product / stereo pair ever listed, with its current status,
    error and (images) what validation found.
``steps``
    One row per step key (``validate-<id>``, ``point2dem-<L>-<R>``...): status,
    attempts, worker, start/end, duration, exit code, log path, error text.
``products``
    Every file delivered to the output folder: path, size, sha256, time.
``rejected``
    The pair-list lines each run skipped, with line numbers and reasons.
``quality``
    Per image: grade (pass/warn/fail), reasons (JSON list), metrics (JSON of
    :meth:`ctxdask.quality.QualityMetrics.to_dict`) and the thumbnail's path
    relative to the output folder.
``tiles``
    Tiled stereo (:mod:`ctxdask.batch.tiles`): one row per tile of a pair,
    its bbox in left map-image pixels and footprint in the map projection
    (JSON ``[xmin, ymin, xmax, ymax]``), current status (``pending``,
    ``running``, ``done``, ``failed``, ``timeout``, ``interrupted``), attempts,
    and, when done, its delivered outputs (JSON role -> path relative to the
    output folder, and their sha256).
``tile_attempts``
    One row per attempt at a tile: attempt number, dask key, worker, host,
    start/end, status (also ``lost``: its worker died), failure kind
    (:func:`ctxdask.tools.tiling.failure_kind`), exit code, log path, error.
``manual_grades``
    Every manual pass/warn/fail with its note, who and when (see
    :mod:`ctxdask.batch.grades`, which owns it).
``pair_quality``
    Per pair: DEM statistics (JSON of
    :meth:`ctxdask.quality.DEMStatistics.to_dict`) and the paths, relative to
    the output folder, of the STAC item, hillshade, colour relief and
    orthoimage thumbnail.

Every table is created with ``CREATE TABLE IF NOT EXISTS`` when the database
is opened for writing, so a database made by an older version gains the new
tables on its next run.

Statuses are those of :data:`STATUSES`; ``done`` is final, ``failed`` and
``timeout`` are final unless a run retries failures, the others are redone by
the next run.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ctxdask.batch.grades import SCHEMA as _GRADES_SCHEMA

__all__ = ["DEFAULT_NAME", "FINAL", "STATUSES", "TrackingDB", "database_path", "lock_database", "now"]

DEFAULT_NAME = "ctxdask-batch.sqlite"
#: every status a step, image or pair can have
STATUSES = ("pending", "running", "done", "failed", "timeout", "skipped", "interrupted")
#: statuses a plain rerun leaves alone (``failed``/``timeout`` are redone with ``retry_failed``)
FINAL = ("done", "failed", "timeout")
SCHEMA_VERSION = 1

_STATUS_CHECK = "CHECK (status IN ({}))".format(", ".join(f"'{s}'" for s in STATUSES))
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL, ended TEXT,
    status TEXT NOT NULL {_STATUS_CHECK},
    host TEXT, pid INTEGER, pairs_file TEXT, out TEXT, scheduler TEXT, dashboard TEXT,
    settings TEXT, error TEXT
);
CREATE TABLE IF NOT EXISTS images (
    product_id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'pending' {_STATUS_CHECK},
    summing INTEGER, lines INTEGER, validation TEXT, error TEXT, updated TEXT
);
CREATE TABLE IF NOT EXISTS pairs (
    pair_id TEXT PRIMARY KEY,
    left_id TEXT NOT NULL, right_id TEXT NOT NULL, line INTEGER,
    status TEXT NOT NULL DEFAULT 'pending' {_STATUS_CHECK},
    error TEXT, output_dir TEXT, updated TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    key TEXT PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('image', 'pair')),
    subject TEXT NOT NULL, step TEXT NOT NULL,
    status TEXT NOT NULL {_STATUS_CHECK},
    run_id INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT, host TEXT, started TEXT, ended TEXT, duration REAL,
    exit_code INTEGER, log_path TEXT, error TEXT, updated TEXT
);
CREATE INDEX IF NOT EXISTS steps_subject ON steps (subject);
CREATE INDEX IF NOT EXISTS steps_status ON steps (status);
CREATE TABLE IF NOT EXISTS products (
    path TEXT PRIMARY KEY, key TEXT NOT NULL, subject TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, delivered TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (run_id INTEGER NOT NULL, line INTEGER, text TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS quality (
    product_id TEXT PRIMARY KEY, grade TEXT, reasons TEXT, metrics TEXT, thumbnail TEXT, updated TEXT
);
CREATE TABLE IF NOT EXISTS tiles (
    pair_id TEXT NOT NULL, tile_index INTEGER NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    padding INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' {_STATUS_CHECK},
    attempts INTEGER NOT NULL DEFAULT 0, failure_kind TEXT, error TEXT, outputs TEXT, sha256 TEXT,
    footprint TEXT, updated TEXT, PRIMARY KEY (pair_id, tile_index)
);
CREATE TABLE IF NOT EXISTS tile_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL, tile_index INTEGER NOT NULL, attempt INTEGER NOT NULL,
    x INTEGER, y INTEGER, width INTEGER, height INTEGER,
    run_id INTEGER, dask_key TEXT, worker TEXT, host TEXT, started TEXT, ended TEXT, duration REAL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'timeout', 'lost', 'interrupted',
                                           'skipped')),
    failure_kind TEXT, exit_code INTEGER, log_path TEXT, error TEXT
);
CREATE INDEX IF NOT EXISTS tile_attempts_tile ON tile_attempts (pair_id, tile_index);
CREATE TABLE IF NOT EXISTS pair_quality (
    pair_id TEXT PRIMARY KEY, statistics TEXT, stac TEXT, hillshade TEXT, colour_relief TEXT,
    ortho_thumbnail TEXT, updated TEXT
);
"""

#: columns of ``steps`` a caller may set
STEP_FIELDS = ("scope", "subject", "step", "status", "run_id", "attempts", "worker", "host", "started",
               "ended", "duration", "exit_code", "log_path", "error")


def now() -> str:
    """The current UTC time, ISO 8601 with microseconds (sortable as text)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def database_path(spec: str | os.PathLike | None, out: str | os.PathLike) -> pathlib.Path:
    """Resolve the ``--db`` option: ``None`` (the default file in ``out``), a path or a URL.

    URLs are SQLAlchemy-style ``sqlite:///relative.sqlite`` or
    ``sqlite:////absolute/path.sqlite``; other databases are not supported.
    """
    if spec is None:
        return pathlib.Path(out) / DEFAULT_NAME
    text = os.fspath(spec)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme != "sqlite" or not rest.startswith("/") or rest == "/":
            raise ValueError(
                f"{text!r}: only SQLite databases are supported, as a path or a URL "
                "sqlite:///relative/file.sqlite or sqlite:////absolute/file.sqlite"
            )
        text = rest[1:]
    path = pathlib.Path(text)
    return path / DEFAULT_NAME if path.is_dir() else path


@contextlib.contextmanager
def lock_database(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` for one driver at a time.

    The lock is an ``flock``, released by the kernel when the holder dies, so a
    killed driver never leaves a stale lock behind.

    Raises
    ------
    RuntimeError
        Another process holds it.
    """
    lock = pathlib.Path(f"{os.fspath(path)}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RuntimeError(
                f"{path}: another ctxdask batch (pid {holder}) is using this database; "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


class TrackingDB:
    """Read and write the tracking database.

    Parameters
    ----------
    path : str or path
        The SQLite file (created with its folder when missing).
    readonly : bool
        Open for reading only (``ctxdask status``); the file must exist.
    """

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False):
        self.path = pathlib.Path(path)
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: no tracking database here")
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a killed process loses nothing committed; only power loss could
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
            self.conn.executescript(_GRADES_SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.row_factory = sqlite3.Row
        self._depth = 0

    def close(self) -> None:
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

    # ------------------------------------------------------------------ runs
    def start_run(self, *, pairs_file: str, out: str, scheduler: str = "", dashboard: str = "",
                  settings: Mapping[str, Any] | None = None) -> int:
        """Record a new run and return its id."""
        import socket

        cur = self.conn.execute(
            "INSERT INTO runs (started, status, host, pid, pairs_file, out, scheduler, dashboard, settings)"
            " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            (now(), socket.gethostname(), os.getpid(), pairs_file, out, scheduler, dashboard,
             json.dumps(dict(settings or {}), default=str, sort_keys=True)),
        )
        return int(cur.lastrowid)

    def end_run(self, run_id: int, status: str, error: str | None = None) -> None:
        self.conn.execute("UPDATE runs SET ended = ?, status = ?, error = ? WHERE id = ?",
                          (now(), status, error, run_id))

    def interrupt_stale(self) -> int:
        """Mark work left ``running``/``pending`` by a driver that died as ``interrupted``.

        Call only while holding :func:`lock_database`: then no other driver is
        alive, so anything still in flight belongs to a dead one.
        Returns the number of steps changed.
        """
        with self.transaction():
            stamp = now()
            self.conn.execute("UPDATE runs SET status = 'interrupted', ended = ?, "
                              "error = 'the driver stopped without closing the run' "
                              "WHERE status IN ('running', 'pending')", (stamp,))
            cur = self.conn.execute(
                "UPDATE steps SET status = 'interrupted', updated = ?, "
                "error = coalesce(error, 'the driver stopped while this step was in flight') "
                "WHERE status IN ('running', 'pending')", (stamp,))
            for table in ("images", "pairs", "tiles"):
                self.conn.execute(f"UPDATE {table} SET status = 'interrupted', updated = ? "
                                  "WHERE status IN ('running', 'pending')", (stamp,))
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
        self.conn.executemany("INSERT INTO rejected VALUES (?, ?, ?, ?)",
                              [(run_id, r.line, r.text, r.reason) for r in rejected])

    def set_subject(self, table: str, ident: str, status: str, error: str | None = None,
                    **fields: Any) -> None:
        """Set the status (and other columns) of an image or a pair."""
        key = {"images": "product_id", "pairs": "pair_id"}[table]
        cols = {"status": status, "error": error, "updated": now(), **fields}
        sets = ", ".join(f"{c} = ?" for c in cols)
        self.conn.execute(f"UPDATE {table} SET {sets} WHERE {key} = ?", (*cols.values(), ident))

    # ----------------------------------------------------------------- steps
    def upsert_step(self, key: str, **fields: Any) -> None:
        """Update the row of step ``key`` (only the given columns), creating it if needed.

        Creating a row needs ``scope``, ``subject``, ``step`` and ``status``.
        ``attempts="+1"`` increments the attempt counter.
        """
        unknown = set(fields) - set(STEP_FIELDS)
        if unknown:
            raise TypeError(f"unknown step columns: {sorted(unknown)}")
        bump = fields.pop("attempts", None) == "+1"
        fields["updated"] = now()
        sets = [f"{c} = ?" for c in fields] + (["attempts = attempts + 1"] if bump else [])
        cur = self.conn.execute(f"UPDATE steps SET {', '.join(sets)} WHERE key = ?", (*fields.values(), key))
        if cur.rowcount == 0:
            cols = [*fields, "attempts"]
            self.conn.execute(
                f"INSERT INTO steps (key, {', '.join(cols)}) VALUES (?, {', '.join('?' * len(cols))})",
                (key, *fields.values(), int(bump)),
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
            "exit_code = NULL, log_path = NULL, error = NULL, updated = excluded.updated",
            [(key, scope, subject, step, run_id, stamp) for key, scope, subject, step in steps])

    def record_product(self, path: str, key: str, subject: str, size: int, sha256: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?, ?)",
                          (path, key, subject, size, sha256, now()))

    def set_quality(self, product_id: str, *, grade: str | None, reasons: Iterable[str],
                    metrics: Mapping[str, Any], thumbnail: str | None) -> None:
        """Store an image's grade, reasons, metrics and thumbnail path (relative to the output folder)."""
        self.conn.execute("INSERT OR REPLACE INTO quality VALUES (?, ?, ?, ?, ?, ?)",
                          (product_id, grade, json.dumps(list(reasons)), json.dumps(dict(metrics)), thumbnail,
                           now()))

    def set_pair_quality(self, pair_id: str, *, statistics: Mapping[str, Any], stac: str | None,
                         hillshade: str | None, colour_relief: str | None, ortho_thumbnail: str | None) -> None:
        """Store a pair's DEM statistics and product paths (relative to the output folder)."""
        self.conn.execute("INSERT OR REPLACE INTO pair_quality VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (pair_id, json.dumps(dict(statistics)), stac, hillshade, colour_relief, ortho_thumbnail,
                           now()))

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

    def set_tile(self, pair_id: str, index: int, status: str, **fields: Any) -> None:
        """Set a tile's status and other columns (``outputs``/``sha256`` mappings are stored as JSON)."""
        for name in ("outputs", "sha256"):
            if isinstance(fields.get(name), Mapping):
                fields[name] = json.dumps(dict(fields[name]), sort_keys=True)
        cols = {"status": status, "updated": now(), **fields}
        sets = ", ".join(f"{c} = ?" for c in cols)
        self.conn.execute(f"UPDATE tiles SET {sets} WHERE pair_id = ? AND tile_index = ?",
                          (*cols.values(), pair_id, index))

    def start_tile_attempt(self, pair_id: str, tile, *, run_id: int | None, dask_key: str, worker: str,
                           host: str = "", started: str | None = None) -> int:
        """Record that an attempt at ``tile`` started; returns its row id and counts it on the tile."""
        attempt = 1 + self.conn.execute("SELECT count(*) FROM tile_attempts WHERE pair_id = ? AND tile_index = ?",
                                        (pair_id, tile.index)).fetchone()[0]
        cur = self.conn.execute(
            "INSERT INTO tile_attempts (pair_id, tile_index, attempt, x, y, width, height, run_id, dask_key, "
            "worker, host, started, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
            (pair_id, tile.index, attempt, tile.x, tile.y, tile.width, tile.height, run_id, dask_key, worker,
             host, started or now()))
        self.conn.execute("UPDATE tiles SET status = 'running', attempts = ?, updated = ? "
                          "WHERE pair_id = ? AND tile_index = ?", (attempt, now(), pair_id, tile.index))
        return int(cur.lastrowid)

    def end_tile_attempt(self, row: int, status: str, **fields: Any) -> None:
        """Close an attempt: status, ended, duration, failure_kind, exit_code, log_path, error."""
        fields.setdefault("ended", now())
        sets = ", ".join(f"{c} = ?" for c in ("status", *fields))
        self.conn.execute(f"UPDATE tile_attempts SET {sets} WHERE id = ?", (status, *fields.values(), row))

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

    def tile_progress(self) -> dict[str, dict[str, Any]]:
        """Pair -> {"pair": pair status, "total": tiles, <tile status>: count}, for pairs with tiles.

        Empty for a database made before tiled stereo (opened read-only, it has no ``tiles`` table).
        """
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tiles'").fetchone():
            return {}
        out: dict[str, dict[str, Any]] = {}
        for r in self.conn.execute(
                "SELECT t.pair_id, p.status AS pair_status, t.status, count(*) AS n FROM tiles t "
                "LEFT JOIN pairs p ON p.pair_id = t.pair_id GROUP BY t.pair_id, t.status ORDER BY t.pair_id"):
            entry = out.setdefault(r["pair_id"], {"pair": r["pair_status"], "total": 0})
            entry[r["status"]] = r["n"]
            entry["total"] += r["n"]
        return out

    # --------------------------------------------------------------- queries
    def step_status(self) -> dict[str, str]:
        """Step key -> status, for planning a run."""
        return {r["key"]: r["status"] for r in self.conn.execute("SELECT key, status FROM steps")}

    def rows(self, sql: str, params: Iterable = ()) -> list[dict]:
        """Run a query and return plain dicts."""
        return [dict(r) for r in self.conn.execute(sql, tuple(params))]

    def counts(self, table: str) -> dict[str, int]:
        """Status -> number of rows of ``images``, ``pairs`` or ``steps``."""
        if table not in ("images", "pairs", "steps"):
            raise ValueError(table)
        return {r["status"]: r["n"] for r in
                self.conn.execute(f"SELECT status, count(*) AS n FROM {table} GROUP BY status")}

    def report(self, *, failures: int | None = 50) -> dict[str, Any]:
        """Everything ``ctxdask status`` shows, as plain data."""
        last = self.rows("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
        limit = "" if failures is None else f" LIMIT {int(failures)}"
        return {
            "database": str(self.path),
            "last_run": last[0] if last else None,
            "runs": self.conn.execute("SELECT count(*) FROM runs").fetchone()[0],
            "pairs": self.counts("pairs"),
            "images": self.counts("images"),
            "steps": self._step_counts(),
            "failures": self.rows(
                "SELECT key, step, subject, status, worker, exit_code, log_path, error, ended FROM steps "
                "WHERE status IN ('failed', 'timeout', 'interrupted') ORDER BY ended, key" + limit),
            "failure_count": self.conn.execute(
                "SELECT count(*) FROM steps WHERE status IN ('failed', 'timeout', 'interrupted')").fetchone()[0],
            "rejected": self.rows("SELECT line, text, reason FROM rejected WHERE run_id = "
                                  "(SELECT max(run_id) FROM rejected) ORDER BY line"),
            "tiles": self.tile_progress(),
            "products": dict(self.conn.execute(
                "SELECT count(*) AS files, coalesce(sum(size), 0) AS bytes FROM products").fetchone()),
            **self._manual_grades(),
        }

    def _manual_grades(self) -> dict[str, Any]:
        """Current manual grades: counts by scope and value, and the subjects failed by hand."""
        from ctxdask.batch import grades

        current = grades.current_grades(self.conn)
        counts: dict[str, dict[str, int]] = {}
        for g in current.values():
            counts.setdefault(g["scope"], {}).setdefault(g["value"], 0)
            counts[g["scope"]][g["value"]] += 1
        return {"manual_grades": counts,
                "manually_rejected": dict(sorted(grades.manually_rejected(self.conn).items()))}

    def _step_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.conn.execute("SELECT step, status, count(*) AS n FROM steps GROUP BY step, status"):
            out.setdefault(r["step"], {})[r["status"]] = r["n"]
        return out
