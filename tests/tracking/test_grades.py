"""Manual grades: history kept, current grade, rejection reasons, writes beside a busy writer."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from ctxdask.batch.pairlist import read_pairs
from ctxdask.tracking import BatchView, TrackingDB, connect_reader, grades

A, B, C = "B01_009855_2626_XN_82N094W", "B01_010106_2627_XN_82N094W", "B01_009894_1665_XI_13S042W"


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "t.sqlite"
    with TrackingDB(path) as db:
        db.register(read_pairs([(A, B), (A, C)]).pairs, [A, B, C])
    return path


def test_every_change_is_kept_and_the_newest_counts(db_path):
    grades.add_grade(db_path, "image", A, "fail", "stripes across the top", who="ana")
    grades.add_grade(db_path, "image", A, "warn", "stripes are only in the dark margin", who="bo")
    grades.add_grade(db_path, "pair", f"{A}-{C}", "fail", "", who="ana")
    with sqlite3.connect(db_path) as conn:
        hist = grades.history(conn, A)
        current = grades.current_grades(conn)
        rejected = grades.manually_rejected(conn)
    assert [(h["value"], h["who"]) for h in hist] == [("warn", "bo"), ("fail", "ana")]
    assert current[A]["value"] == "warn" and current[f"{A}-{C}"]["value"] == "fail"
    assert list(rejected) == [f"{A}-{C}"]
    assert rejected[f"{A}-{C}"].startswith("manually graded fail by ana at ")


def test_reason_carries_the_note(db_path):
    grades.add_grade(db_path, "image", B, "fail", "  saturated dunes  ", who="ana")
    with sqlite3.connect(db_path) as conn:
        assert grades.manually_rejected(conn)[B].endswith(": saturated dunes")


@pytest.mark.parametrize("scope, subject, value", [
    ("image", A, "excellent"), ("frame", A, "fail"), ("image", "NOT_IN_THE_DB", "fail"), ("pair", A, "fail")])
def test_bad_grades_are_refused_and_nothing_is_stored(db_path, scope, subject, value):
    with pytest.raises(grades.GradeError):
        grades.add_grade(db_path, scope, subject, value)
    with sqlite3.connect(db_path) as conn:
        assert grades.current_grades(conn) == {}


def test_older_database_without_the_table_reads_as_no_grades(tmp_path):
    path = tmp_path / "old.sqlite"
    sqlite3.connect(path).close()
    conn = connect_reader(path)  # migrated on opening: the table is there, empty
    assert grades.current_grades(conn) == {} and grades.manually_rejected(conn) == {} and grades.history(conn, A) == []
    conn.close()


def test_status_report_shows_manual_grades(db_path):
    grades.add_grade(db_path, "image", A, "fail", "bad", who="ana")
    grades.add_grade(db_path, "image", B, "pass", who="ana")
    with BatchView(db_path) as view:
        report = view.status_report()
    assert report["manual_grades"] == {"image": {"fail": 1, "pass": 1}}
    assert report["manually_rejected"][A].endswith(": bad")
    out = subprocess.run([sys.executable, "-m", "ctxdask", "status", str(db_path)], capture_output=True, text=True,
                         check=True).stdout
    assert "manual grades (images): 1 fail, 1 pass" in out and f"manually failed {A}" in out


def test_grades_wait_for_a_writer_holding_the_lock(db_path):
    """Another connection holds the write lock for longer than the busy timeout: grades retry, none lost."""
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    errors: list[BaseException] = []

    def grade(i):
        try:
            grades.add_grade(db_path, "image", C, "warn", f"note {i}", who="t", timeout=0.1)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=grade, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # several busy timeouts pass while the lock is held
    holder.execute("UPDATE images SET error = 'x' WHERE product_id = ?", (A,))
    holder.execute("COMMIT")
    holder.close()
    for t in threads:
        t.join(30)
    assert not errors
    with sqlite3.connect(db_path) as conn:
        assert len(grades.history(conn, C)) == 20


