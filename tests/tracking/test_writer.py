"""The tracking database: schema, WAL, upserts, stale runs, locking, paths."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from ctxdask.batch.pairlist import read_pairs
from ctxdask.tracking import DEFAULT_NAME, BatchView, TrackingDB, database_path, lock_database

A, B, C = "B01_009855_2626_XN_82N094W", "B01_010106_2627_XN_82N094W", "B01_009894_1665_XI_13S042W"


def test_wal_schema_and_status_constraint(tmp_path):
    with TrackingDB(tmp_path / "t.sqlite") as db:
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.upsert_step("validate-x", scope="image", subject="x", step="validate", status="pending")
        with pytest.raises(sqlite3.IntegrityError):
            db.upsert_step("validate-x", status="finished")
        with pytest.raises(TypeError):
            db.upsert_step("validate-x", colour="red")


def test_upsert_changes_only_given_columns_and_counts_attempts(tmp_path):
    with TrackingDB(tmp_path / "t.sqlite") as db:
        db.upsert_step("k", scope="pair", subject="s", step="point2dem", status="pending")
        db.upsert_step("k", status="running", worker="tcp://w:1", count_attempt=True)
        db.upsert_step("k", status="failed", exit_code=3, error="boom", count_attempt=True)
        row = db.rows("SELECT * FROM steps")[0]
    assert (row["status"], row["worker"], row["exit_code"], row["attempts"], row["step"]) == \
        ("failed", "tcp://w:1", 3, 2, "point2dem")


def test_register_keeps_existing_rows_and_report(tmp_path):
    pl = read_pairs([(A, B), (A, C), ("M", "x")])
    with TrackingDB(tmp_path / "t.sqlite") as db:
        db.register(pl.pairs, pl.images)
        db.set_subject("pairs", f"{A}-{B}", "done")
        db.register(pl.pairs, pl.images)  # a rerun does not reset anything
        run = db.start_run(pairs_file="p.txt", out=str(tmp_path))
        db.record_rejected(run, pl.rejected)
        db.upsert_step("validate-" + A, scope="image", subject=A, step="validate", status="failed", error="bad")
    with BatchView(tmp_path / "t.sqlite") as view:
        report = view.status_report()
    assert report["pairs"] == {"done": 1, "pending": 1} and report["images"] == {"pending": 3}
    assert report["rejected"][0]["line"] == 3 and report["failure_count"] == 1
    assert report["steps"] == {"validate": {"failed": 1}}


def test_interrupt_stale_marks_in_flight_work(tmp_path):
    with TrackingDB(tmp_path / "t.sqlite") as db:
        run = db.start_run(pairs_file="p", out="o")
        for key, status in [("a", "running"), ("b", "pending"), ("c", "done"), ("d", "failed")]:
            db.upsert_step(key, scope="image", subject="s", step=key, status=status, run_id=run)
        assert db.interrupt_stale() == 2
        assert {r["key"]: r["status"] for r in db.rows("SELECT key, status FROM steps")} == \
            {"a": "interrupted", "b": "interrupted", "c": "done", "d": "failed"}
        assert db.rows("SELECT status FROM runs")[0]["status"] == "interrupted"


def _try_lock(path) -> str:
    code = ("import sys\nfrom ctxdask.tracking import lock_database\n"
            "try:\n    with lock_database(sys.argv[1]): print('locked')\n"
            "except RuntimeError as exc: print(exc)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=60).stdout


def test_one_driver_per_database(tmp_path):
    path = tmp_path / DEFAULT_NAME
    with lock_database(path):
        assert f"another ctxdask batch (pid {os.getpid()})" in _try_lock(path)
    assert _try_lock(path).strip() == "locked"


def test_database_path_forms(tmp_path):
    assert database_path(None, tmp_path) == tmp_path / DEFAULT_NAME
    assert database_path(tmp_path, "elsewhere") == tmp_path / DEFAULT_NAME
    assert str(database_path("sqlite:////abs/x.sqlite", tmp_path)) == "/abs/x.sqlite"
    assert str(database_path("sqlite:///rel/x.sqlite", tmp_path)) == "rel/x.sqlite"
    with pytest.raises(ValueError, match="only SQLite"):
        database_path("postgresql://host/db", tmp_path)


def test_readonly_needs_an_existing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        TrackingDB(tmp_path / "none.sqlite", readonly=True)
    TrackingDB(tmp_path / "t.sqlite").close()
    with TrackingDB(tmp_path / "t.sqlite", readonly=True) as db, pytest.raises(sqlite3.OperationalError):
        db.upsert_step("k", scope="image", subject="s", step="x", status="done")


def test_quality_tables_are_added_to_an_older_database_and_replaced_per_subject(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # a database from before the quality tables
        conn.execute("CREATE TABLE images (product_id TEXT PRIMARY KEY, status TEXT NOT NULL DEFAULT 'pending', "
                     "summing INTEGER, lines INTEGER, validation TEXT, error TEXT, updated TEXT)")
        conn.execute("INSERT INTO images (product_id, status) VALUES (?, 'done')", (A,))
    with TrackingDB(path) as db:
        db.set_quality(A, grade="warn", reasons=["lost lines"], metrics={"snr": 40.0}, thumbnail=None)
        db.set_quality(A, grade="pass", reasons=[], metrics={"snr": 50.0}, thumbnail=f"images/{A}/{A}.thumb.png")
        db.set_pair_quality(f"{A}-{B}", statistics={"mean": -2000.0}, stac="pairs/x.stac.json", hillshade="h.png",
                            colour_relief="r.png", ortho_thumbnail=None)
        assert db.rows("SELECT product_id, status FROM images") == [{"product_id": A, "status": "done"}]
        (row,) = db.rows("SELECT * FROM quality")
        assert (row["grade"], row["reasons"], row["metrics"]) == ("pass", "[]", '{"snr": 50.0}')
        assert row["thumbnail"].endswith(".thumb.png") and row["updated"]
        (pair,) = db.rows("SELECT * FROM pair_quality")
        assert pair["ortho_thumbnail"] is None and pair["statistics"] == '{"mean": -2000.0}'
        assert pair["qa"] is None  # no QA record given
