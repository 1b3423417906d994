"""Manual grades: a person's pass / warn / fail, with a note, on an image or a pair.

They live in the tracking database in their own table, ``manual_grades``, one
row per change (nothing is ever updated or deleted, so the history is the
table)::

    manual_grades (id, scope 'image'|'pair', subject, value 'pass'|'warn'|'fail',
                   note, who, at)

The current grade of a subject is its newest row. The batch driver obeys it: an
image or pair whose current manual grade is ``fail`` is skipped by the next run
(:func:`manually_rejected`) unless the run includes rejected work.

Grades are written by ``ctxdask serve`` while a batch driver may be writing
the same file. SQLite allows one writer at a time: the connection here uses
WAL, a busy timeout, ``BEGIN IMMEDIATE`` (so the lock is taken before reading,
never upgraded) and a few retries with back-off, so a grade waits for the
driver's transaction instead of failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import os
import random
import sqlite3
import time
from collections.abc import Iterator

__all__ = ["GRADES", "SCOPES", "GradeError", "add_grade", "current_grades", "ensure_schema", "history",
           "manually_rejected"]

#: values a manual grade can take
GRADES = ("pass", "warn", "fail")
SCOPES = ("image", "pair")
#: note length kept (a grade note is a sentence or a paragraph, not a file)
NOTE_LIMIT = 4000

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS manual_grades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL CHECK (scope IN ('image', 'pair')),
    subject TEXT NOT NULL,
    value TEXT NOT NULL CHECK (value IN ({", ".join(f"'{g}'" for g in GRADES)})),
    note TEXT NOT NULL DEFAULT '',
    who TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS manual_grades_subject ON manual_grades (subject, id);
"""

#: the newest row of each subject, as a sub-query usable in joins
CURRENT = ("SELECT g.* FROM manual_grades g JOIN (SELECT subject, max(id) AS id FROM manual_grades "
           "GROUP BY subject) last ON g.id = last.id")


def now() -> str:
    """The current UTC time, ISO 8601 (as :func:`ctxdask.batch.db.now`; this module is imported by it)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


class GradeError(ValueError):
    """A grade that cannot be stored: unknown value, scope or subject."""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the ``manual_grades`` table and index if missing (needs a writable connection)."""
    conn.executescript(SCHEMA)


def has_table(conn: sqlite3.Connection) -> bool:
    """Whether the database has manual grades at all (older databases do not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'manual_grades'"
                        ).fetchone() is not None


@contextlib.contextmanager
def _writer(path: str | os.PathLike, timeout: float) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(os.fspath(path), isolation_level=None, timeout=timeout)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        yield conn
    finally:
        conn.close()


def add_grade(path: str | os.PathLike, scope: str, subject: str, value: str, note: str = "", *,
              who: str | None = None, timeout: float = 10.0, attempts: int = 8) -> dict:
    """Store one manual grade and return the stored row.

    Parameters
    ----------
    path : path
        The tracking database file.
    scope : {"image", "pair"}
    subject : str
        A product id or pair id the database knows.
    value : {"pass", "warn", "fail"}
    note : str
        Why (free text, kept as text; at most :data:`NOTE_LIMIT` characters).
    who : str, optional
        Who graded (default: the login name of this process).
    timeout : float
        SQLite busy timeout per attempt, seconds.
    attempts : int
        Tries when the database stays locked beyond the timeout.

    Raises
    ------
    GradeError
        Unknown value, scope or subject.
    sqlite3.OperationalError
        The database stayed locked through every attempt.
    """
    if scope not in SCOPES:
        raise GradeError(f"scope must be one of {SCOPES}, not {scope!r}")
    if value not in GRADES:
        raise GradeError(f"a grade is one of {', '.join(GRADES)}, not {value!r}")
    note = (note or "").strip()[:NOTE_LIMIT]
    who = (who or _login())[:200]
    table, key = ("images", "product_id") if scope == "image" else ("pairs", "pair_id")
    delay = 0.05
    for attempt in range(attempts):
        try:
            with _writer(path, timeout) as conn:
                ensure_schema(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if conn.execute(f"SELECT 1 FROM {table} WHERE {key} = ?", (subject,)).fetchone() is None:
                        raise GradeError(f"no {scope} {subject!r} in {path}")
                    stamp = now()
                    cur = conn.execute("INSERT INTO manual_grades (scope, subject, value, note, who, at) "
                                       "VALUES (?, ?, ?, ?, ?, ?)", (scope, subject, value, note, who, stamp))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return {"id": cur.lastrowid, "scope": scope, "subject": subject, "value": value, "note": note,
                        "who": who, "at": stamp}
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or attempt == attempts - 1:
                raise
            # the driver held the lock past the busy timeout: wait a little (jittered) and go again
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")  # pragma: no cover


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid {os.getuid()}"


def current_grades(conn: sqlite3.Connection, scope: str | None = None) -> dict[str, dict]:
    """Subject -> its newest manual grade row (``value``, ``note``, ``who``, ``at``)."""
    if not has_table(conn):
        return {}
    sql, params = CURRENT, ()
    if scope is not None:
        sql, params = f"SELECT * FROM ({CURRENT}) WHERE scope = ?", (scope,)
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return {row[names.index("subject")]: dict(zip(names, row)) for row in cur}


def history(conn: sqlite3.Connection, subject: str) -> list[dict]:
    """Every manual grade of ``subject``, newest first."""
    if not has_table(conn):
        return []
    cur = conn.execute("SELECT * FROM manual_grades WHERE subject = ? ORDER BY id DESC", (subject,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur]


def manually_rejected(conn: sqlite3.Connection) -> dict[str, str]:
    """Images and pairs whose current manual grade is ``fail``: subject id -> reason.

    The reason names who failed it, when, and their note, e.g.
    ``"manually graded fail by ana at 2026-11-27T14:00:00Z: stripes"``.
    """
    out = {}
    for subject, g in current_grades(conn).items():
        if g["value"] == "fail":
            reason = f"manually graded fail by {g['who'] or 'unknown'} at {g['at'][:19]}"
            out[subject] = f"{reason}: {g['note']}" if g["note"] else reason
    return out


def stac_properties(conn: sqlite3.Connection, pair_id: str, left: str, right: str) -> dict:
    """Grades to add to a pair's STAC item where it is shown (the live pages, the report's copy).

    The delivered item file is left as written (its checksum is in the
    database); a copy carries ``ctxdask:manual_grade`` (the pair's current
    manual grade, or null) and ``ctxdask:image_grades`` (each image's automatic
    and manual grade).
    """
    current = current_grades(conn)
    auto = {}
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'quality'").fetchone():
        auto = dict(conn.execute("SELECT product_id, grade FROM quality WHERE product_id IN (?, ?)", (left, right))
                    .fetchall())

    def manual(subject: str) -> dict | None:
        g = current.get(subject)
        return {k: g[k] for k in ("value", "note", "who", "at")} if g else None

    return {"ctxdask:manual_grade": manual(pair_id),
            "ctxdask:image_grades": {pid: {"grade": auto.get(pid), "manual_grade": manual(pid)}
                                     for pid in (left, right)}}


def manual_hold(conn: sqlite3.Connection, then=None):
    """A planning hook (:data:`ctxdask.batch.planning.Hold`) holding back what people failed by hand.

    A pair is held when its current manual grade is ``fail`` or either image's
    is; the reason names which and carries the grader's note. ``then`` is
    another hook asked for the pairs this one lets through.
    """
    rejected = manually_rejected(conn)

    def hold(pair):
        for subject, what in ((pair.pair_id, "the pair"), (pair.left, f"image {pair.left}"),
                              (pair.right, f"image {pair.right}")):
            if subject in rejected:
                return f"{what} {rejected[subject]} (run with --include-rejected to process it anyway)"
        return then(pair) if then is not None else None

    return hold


def stac_grades(db: str | os.PathLike):
    """``item_id -> properties`` for :func:`ctxdask.quality.stac.rebuild_catalog`: the grades of each pair.

    Items whose id is not a pair of the database get no extra properties.
    """
    conn = sqlite3.connect(f"file:{os.fspath(db)}?mode=ro", uri=True)
    try:
        pairs = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT pair_id, left_id, right_id FROM pairs")}
        found = {pid: stac_properties(conn, pid, *lr) for pid, lr in pairs.items()}
    finally:
        conn.close()
    return lambda item_id: found.get(item_id, {})
