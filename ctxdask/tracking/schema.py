"""Every table of the tracking database, and the migrations that bring any database up to date.

The schema's version is SQLite's ``PRAGMA user_version``: the number of
migrations applied. A new database and an old one take the same path: every
migration after the file's version runs, in order, in one transaction. A
database from before versioning (``user_version`` 0: the layout of ctxdask
0.1, with a ``meta`` row ``schema = 1``) gets migration 1, which is idempotent
on it; a database from a newer ctxdask is refused rather than misread.

Tables (version 6)
------------------
``runs``
    One row per driver run: start/end, status, host, pid, pair list, settings.
``images``, ``pairs``
    One row per product / stereo pair ever listed, with its current status,
    error and (images) what validation found.
``steps``
    One row per step key (``validate-<id>``, ``point2dem-<L>-<R>``...): status,
    attempts, worker, start/end, duration, exit code, log path, error text, and
    ``blocked_by``: the upstream step whose failure kept this one from running.
``products``
    Every file delivered to the output folder: path, size, sha256, time.
``rejected``
    The pair-list lines each run skipped, with line numbers and reasons.
``quality``
    Per image: grade, reasons (JSON list), metrics (JSON) and thumbnail path
    relative to the output folder.
``pair_quality``
    Per pair: DEM statistics (JSON), the paths of the STAC item, hillshade,
    colour relief and orthoimage thumbnail, and ``qa``: the pair's
    ``qa_metrics.json`` (JSON: grade, CTX-MOLA differences, intersection error,
    bundle adjustment residuals), for selection rules.
``tiles``, ``tile_attempts``
    Tiled stereo: one row per tile of a pair (bbox in left map-image pixels,
    footprint in the map projection, status, delivered outputs), and one row
    per attempt at a tile (also ``lost``: its worker died; ``superseded``: a
    hedged duplicate finished first and it was stopped). Both record the
    parameter set (``param_set``: 0 the configured stereo options, n the n-th
    of ``tools.asp.tile-fallbacks``; ``param_label`` its name): of the attempt,
    and on a tile of its last attempt (the one that made it, when done).
``manual_grades``
    Every manual pass/warn/fail with its note, who and when; never updated or
    deleted, so the history is the table.
``previews``
    Per pair: the verdict of its preview pass (``pass``/``held``), the measured
    reasons (JSON list), the preview's QA metrics (JSON) and when.
``image_geometry``, ``pair_geometry``
    The pair finder's scores (incidence, emission, footprint...; overlap,
    convergence...), imported from its CSV for the live pages' filters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ctxdask.exceptions import CTXError
from ctxdask.tracking.status import AttemptStatus, Grade, Scope, Status, sql_list

__all__ = ["SCHEMA_VERSION", "SchemaError", "migrate", "version"]

_STATUS = f"CHECK (status IN ({sql_list(Status)}))"
_SCOPE = f"CHECK (scope IN ({sql_list(Scope)}))"

#: the layout of ctxdask 0.1 (the last without ``user_version``): frozen, as migration 1 creates it
_LAYOUT_1 = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL, ended TEXT,
    status TEXT NOT NULL {_STATUS},
    host TEXT, pid INTEGER, pairs_file TEXT, out TEXT, scheduler TEXT, dashboard TEXT,
    settings TEXT, error TEXT
);
CREATE TABLE IF NOT EXISTS images (
    product_id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'pending' {_STATUS},
    summing INTEGER, lines INTEGER, validation TEXT, error TEXT, updated TEXT
);
CREATE TABLE IF NOT EXISTS pairs (
    pair_id TEXT PRIMARY KEY,
    left_id TEXT NOT NULL, right_id TEXT NOT NULL, line INTEGER,
    status TEXT NOT NULL DEFAULT 'pending' {_STATUS},
    error TEXT, output_dir TEXT, updated TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    key TEXT PRIMARY KEY,
    scope TEXT NOT NULL {_SCOPE},
    subject TEXT NOT NULL, step TEXT NOT NULL,
    status TEXT NOT NULL {_STATUS},
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
    status TEXT NOT NULL DEFAULT 'pending' {_STATUS},
    attempts INTEGER NOT NULL DEFAULT 0, failure_kind TEXT, error TEXT, outputs TEXT, sha256 TEXT,
    footprint TEXT, updated TEXT, PRIMARY KEY (pair_id, tile_index)
);
CREATE TABLE IF NOT EXISTS tile_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL, tile_index INTEGER NOT NULL, attempt INTEGER NOT NULL,
    x INTEGER, y INTEGER, width INTEGER, height INTEGER,
    run_id INTEGER, dask_key TEXT, worker TEXT, host TEXT, started TEXT, ended TEXT, duration REAL,
    status TEXT NOT NULL CHECK (status IN ({sql_list(AttemptStatus)})),
    failure_kind TEXT, exit_code INTEGER, log_path TEXT, error TEXT
);
CREATE INDEX IF NOT EXISTS tile_attempts_tile ON tile_attempts (pair_id, tile_index);
CREATE TABLE IF NOT EXISTS pair_quality (
    pair_id TEXT PRIMARY KEY, statistics TEXT, stac TEXT, hillshade TEXT, colour_relief TEXT,
    ortho_thumbnail TEXT, updated TEXT
);
CREATE TABLE IF NOT EXISTS manual_grades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL {_SCOPE},
    subject TEXT NOT NULL,
    value TEXT NOT NULL CHECK (value IN ({sql_list(Grade)})),
    note TEXT NOT NULL DEFAULT '',
    who TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS manual_grades_subject ON manual_grades (subject, id);
CREATE TABLE IF NOT EXISTS image_geometry (
    product_id TEXT PRIMARY KEY, time TEXT, orbit INTEGER, incidence REAL, emission REAL, phase REAL, gsd REAL,
    center_lat REAL, center_lon REAL, footprint TEXT
);
CREATE TABLE IF NOT EXISTS pair_geometry (
    pair_id TEXT PRIMARY KEY, score REAL, iou REAL, overlap_km2 REAL, convergence REAL, parallax_height REAL,
    shadow_tip_distance REAL, gsd_ratio REAL
);
"""


class SchemaError(CTXError):
    """A database this ctxdask cannot read or bring up to date."""


def _layout_1(conn: sqlite3.Connection) -> None:
    """Create the tables of ctxdask 0.1 that are missing, and the columns older files lack.

    Before versioning, each release created its new tables on the next run
    (``CREATE TABLE IF NOT EXISTS``) and grades or geometry only when first
    written, so a file may lack tables or columns; this fills both in.
    """
    for statement in _statements(_LAYOUT_1):
        conn.execute(statement)
    reference = sqlite3.connect(":memory:")
    try:
        reference.executescript(_LAYOUT_1)
        for (table,) in reference.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                          "AND name NOT LIKE 'sqlite_%'"):
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            for _, name, kind, notnull, default, _pk in reference.execute(f"PRAGMA table_info({table})"):
                if name not in have and not (notnull and default is None):
                    tail = f" NOT NULL DEFAULT {default}" if notnull else ""
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}{tail}")
    finally:
        reference.close()
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', '1')")


def _blocked_by(conn: sqlite3.Connection) -> None:
    """``steps.blocked_by``: the upstream step that kept a skipped step from running.

    Version 1 said so only in the error text (``not run: <key> is failed``,
    ``not run: <key> did not succeed``); those rows get the key from it.
    """
    if "blocked_by" not in {r[1] for r in conn.execute("PRAGMA table_info(steps)")}:
        conn.execute("ALTER TABLE steps ADD COLUMN blocked_by TEXT")
    rows = conn.execute("SELECT key, error FROM steps WHERE status = 'skipped' AND error LIKE 'not run: %'")
    for key, error in rows.fetchall():
        words = error[len("not run: "):].split()
        if len(words) >= 2 and (words[1] == "is" or words[1:3] == ["did", "not"]):
            conn.execute("UPDATE steps SET blocked_by = ? WHERE key = ?", (words[0], key))
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")


def _param_sets(conn: sqlite3.Connection) -> None:
    """``param_set`` and ``param_label`` on ``tiles`` and ``tile_attempts``: which stereo options made a tile.

    Rows from before fallbacks ran with the configured options (set 0, its label unknown).
    """
    for table in ("tiles", "tile_attempts"):
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if "param_set" not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN param_set INTEGER NOT NULL DEFAULT 0")
        if "param_label" not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN param_label TEXT")


def _superseded(conn: sqlite3.Connection) -> None:
    """``tile_attempts.status`` may be ``superseded`` (a hedged duplicate won): the CHECK is rebuilt.

    SQLite cannot alter a CHECK constraint, so the table is copied into one
    made with the current list of attempt statuses.
    """
    columns = [r[1] for r in conn.execute("PRAGMA table_info(tile_attempts)")]
    conn.execute("ALTER TABLE tile_attempts RENAME TO tile_attempts_old")
    conn.execute("DROP INDEX IF EXISTS tile_attempts_tile")
    conn.execute(f"""CREATE TABLE tile_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL, tile_index INTEGER NOT NULL, attempt INTEGER NOT NULL,
    x INTEGER, y INTEGER, width INTEGER, height INTEGER,
    run_id INTEGER, dask_key TEXT, worker TEXT, host TEXT, started TEXT, ended TEXT, duration REAL,
    status TEXT NOT NULL CHECK (status IN ({sql_list(AttemptStatus)})),
    failure_kind TEXT, exit_code INTEGER, log_path TEXT, error TEXT,
    param_set INTEGER NOT NULL DEFAULT 0, param_label TEXT)""")
    names = ", ".join(columns)
    conn.execute(f"INSERT INTO tile_attempts ({names}) SELECT {names} FROM tile_attempts_old")
    conn.execute("DROP TABLE tile_attempts_old")
    conn.execute("CREATE INDEX tile_attempts_tile ON tile_attempts (pair_id, tile_index)")


def _pair_qa(conn: sqlite3.Connection) -> None:
    """``pair_quality.qa``: the pair's QA record; pairs delivered before have none (NULL: matches no rule)."""
    if "qa" not in {r[1] for r in conn.execute("PRAGMA table_info(pair_quality)")}:
        conn.execute("ALTER TABLE pair_quality ADD COLUMN qa TEXT")


def _previews(conn: sqlite3.Connection) -> None:
    """``previews``: each pair's preview verdict (the preview pass, ctxdask.quality.preview)."""
    conn.execute(f"""CREATE TABLE IF NOT EXISTS previews (
    pair_id TEXT PRIMARY KEY, verdict TEXT NOT NULL CHECK (verdict IN ({sql_list(("pass", "held"))})),
    reasons TEXT, metrics TEXT, at TEXT NOT NULL)""")


#: migration n (1-based) brings a database from version n - 1 to n
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_layout_1, _blocked_by, _param_sets, _superseded,
                                                                _pair_qa, _previews)
SCHEMA_VERSION = len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """The statements of a DDL script (``executescript`` would commit the open transaction)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def version(conn: sqlite3.Connection) -> int:
    """The schema version of an open database (0: made before versioning, or empty)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: object = "the tracking database") -> int:
    """Apply the migrations ``conn``'s database lacks, all in one transaction; return how many.

    ``conn`` must be writable and in autocommit mode (``isolation_level=None``).
    The lock is taken before the version is read (``BEGIN IMMEDIATE``), so two
    processes opening an old file at once migrate it once.

    Raises
    ------
    SchemaError
        The database was made by a newer ctxdask.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        start = version(conn)
        if start > SCHEMA_VERSION:
            raise SchemaError(path, f"made by a newer ctxdask (schema version {start}; this one knows up to "
                                    f"{SCHEMA_VERSION}): upgrade ctxdask to read it")
        for step in MIGRATIONS[start:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION - start
