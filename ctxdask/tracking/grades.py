"""Manual grades: a person's pass / warn / fail, with a note, on an image or a pair.

One row per change in ``manual_grades`` (nothing is updated or deleted, so the
history is the table); the current grade of a subject is its newest row. The
batch driver obeys it: an image or pair whose current manual grade is ``fail``
is held back by the next run (:func:`manually_rejected`) unless the run
includes rejected work.

Grades are written by ``ctxdask serve`` while a batch driver may be writing
the same file. SQLite allows one writer at a time: :func:`add_grade` takes
the lock before reading (``BEGIN IMMEDIATE``, never an upgrade), waits out a
busy timeout, and tries a few more times with back-off, so a grade waits for
the driver's transaction instead of failing with "database is locked".
"""

from __future__ import annotations

import getpass
import os
import random
import sqlite3
import time

from ctxdask.tracking.connection import connect_reader, connect_writer, now
from ctxdask.tracking.status import Grade, Scope

__all__ = ["GRADES", "NOTE_LIMIT", "SCOPES", "GradeError", "UnknownSubjectError", "add_grade", "current_grades",
           "history", "manually_rejected", "stac_grades", "stac_properties"]

#: values a manual grade can take
GRADES = tuple(Grade)
SCOPES = tuple(Scope)
#: note length kept (a grade note is a sentence or a paragraph, not a file)
NOTE_LIMIT = 4000

#: the newest row of each subject, as a sub-query usable in joins
CURRENT = ("SELECT g.* FROM manual_grades g JOIN (SELECT subject, max(id) AS id FROM manual_grades "
           "GROUP BY subject) last ON g.id = last.id")


class GradeError(ValueError):
    """A grade that cannot be stored: unknown value or scope."""


class UnknownSubjectError(GradeError):
    """A grade for an image or pair the database does not list."""


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
        Unknown value or scope.
    UnknownSubjectError
        The database does not list ``subject``.
    sqlite3.OperationalError
        The database stayed locked through every attempt.
    """
    if scope not in SCOPES:
        raise GradeError(f"scope must be one of {tuple(str(s) for s in SCOPES)}, not {scope!r}")
    if value not in GRADES:
        raise GradeError(f"a grade is one of {', '.join(GRADES)}, not {value!r}")
    note = (note or "").strip()[:NOTE_LIMIT]
    who = (who or _login())[:200]
    table, key = ("images", "product_id") if scope == Scope.IMAGE else ("pairs", "pair_id")
    delay = 0.05
    for attempt in range(attempts):
        try:
            conn = connect_writer(path, timeout=timeout)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if conn.execute(f"SELECT 1 FROM {table} WHERE {key} = ?", (subject,)).fetchone() is None:
                        raise UnknownSubjectError(f"no {scope} {subject!r} in {path}")
                    stamp = now()
                    cur = conn.execute("INSERT INTO manual_grades (scope, subject, value, note, who, at) "
                                       "VALUES (?, ?, ?, ?, ?, ?)", (str(scope), subject, str(value), note, who,
                                                                     stamp))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            finally:
                conn.close()
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
    sql, params = CURRENT, ()
    if scope is not None:
        sql, params = f"SELECT * FROM ({CURRENT}) WHERE scope = ?", (str(scope),)
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return {row[names.index("subject")]: dict(zip(names, row)) for row in cur}


def grade_counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """``{scope: {value: n}}`` of the current manual grades, scopes sorted, fail first."""
    counts: dict[str, dict[str, int]] = {}
    for g in current_grades(conn).values():
        by_value = counts.setdefault(g["scope"], {})
        by_value[g["value"]] = by_value.get(g["value"], 0) + 1
    return {s: dict(sorted(c.items(), key=lambda g: Grade.rank_of(g[0]))) for s, c in sorted(counts.items())}


def history(conn: sqlite3.Connection, subject: str) -> list[dict]:
    """Every manual grade of ``subject``, newest first."""
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
        if g["value"] == Grade.FAIL:
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
    auto = dict(conn.execute("SELECT product_id, grade FROM quality WHERE product_id IN (?, ?)", (left, right))
                .fetchall())

    def manual(subject: str) -> dict | None:
        g = current.get(subject)
        return {k: g[k] for k in ("value", "note", "who", "at")} if g else None

    return {"ctxdask:manual_grade": manual(pair_id),
            "ctxdask:image_grades": {pid: {"grade": auto.get(pid), "manual_grade": manual(pid)}
                                     for pid in (left, right)}}


def stac_grades(db: str | os.PathLike):
    """``item_id -> properties`` for :func:`ctxdask.quality.stac.rebuild_catalog`: the grades of each pair.

    Items whose id is not a pair of the database get no extra properties.
    """
    conn = connect_reader(db)
    try:
        pairs = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT pair_id, left_id, right_id FROM pairs")}
        found = {pid: stac_properties(conn, pid, *lr) for pid, lr in pairs.items()}
    finally:
        conn.close()
    return lambda item_id: found.get(item_id, {})
