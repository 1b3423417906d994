"""Schema versions: a new database, one written by ctxdask 0.1, one from the future.

``data/ctxdask-0.1.sql`` is an SQL dump of a database written by ctxdask 0.1's
own ``TrackingDB`` and ``add_grade`` (commit 8c276bd, the last layout without
``PRAGMA user_version``): images, pairs, steps (one skipped for its own
reason, two because an upstream step failed, said only in the error text),
QA, a delivered product, tiles with a done and a lost attempt, a manual grade,
and no geometry tables (never imported).
"""

from __future__ import annotations

import pathlib
import sqlite3
import subprocess
import sys

import pytest

from ctxdask.commands.batch import skipped_lines
from ctxdask.tracking import SCHEMA_VERSION, BatchView, SchemaError, TrackingDB, connect_reader
from ctxdask.tracking.schema import version

OLD_DUMP = pathlib.Path(__file__).parent / "data" / "ctxdask-0.1.sql"
A, B, C = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W", "B10_013341_1010_XN_79S172W"
TABLES = {"meta", "runs", "images", "pairs", "steps", "products", "rejected", "quality", "pair_quality", "tiles",
          "tile_attempts", "manual_grades", "image_geometry", "pair_geometry", "previews"}


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%'")}


def _user_version(path) -> int:
    with sqlite3.connect(path) as conn:
        return version(conn)


@pytest.fixture
def old_db(tmp_path) -> pathlib.Path:
    path = tmp_path / "ctxdask-batch.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_DUMP.read_text())
    assert _user_version(path) == 0 and "image_geometry" not in _tables(path)
    return path


def test_a_new_database_has_every_table_at_the_current_version(tmp_path):
    path = tmp_path / "new.sqlite"
    TrackingDB(path).close()
    assert _user_version(path) == SCHEMA_VERSION == 6
    assert _tables(path) == TABLES


def test_a_database_of_ctxdask_0_1_is_migrated_by_its_next_writer(old_db):
    with TrackingDB(old_db) as db:
        steps = {r["key"]: r for r in db.rows("SELECT * FROM steps")}
        assert db.step_status()[f"validate-{A}"] == "done"
        assert [(t["tile_index"], t["status"], t["outputs"]) for t in db.tiles(f"{A}-{B}")] == \
            [(0, "done", {"dem": "tiles/0-DEM.tif"}), (1, "failed", {})]
        assert [a["status"] for a in db.tile_attempts(f"{A}-{B}")] == ["done", "lost"]
        # 0.1's tiles ran with the configured stereo options (set 0); a hedged attempt may be superseded
        assert [t["param_set"] for t in db.tiles(f"{A}-{B}")] == [0, 0]
        db.end_tile_attempt(db.tile_attempts(f"{A}-{B}")[1]["id"], "superseded")
        # the writer goes on where 0.1 stopped
        db.upsert_step(f"spiceinit-{C}", status="running", count_attempt=True)
        assert db.rows("SELECT attempts FROM steps WHERE key = ?", (f"spiceinit-{C}",))[0]["attempts"] == 2
    assert _user_version(old_db) == SCHEMA_VERSION and _tables(old_db) == TABLES
    # why a step did not run is a column now, taken from 0.1's error text
    assert steps[f"cam2map-{C}"]["blocked_by"] == f"spiceinit-{C}"
    assert steps[f"point2dem-{A}-{C}"]["blocked_by"] == f"cam2map-{C}"
    assert steps[f"point2dem-{A}-{B}"]["blocked_by"] is None  # skipped for its own reason
    assert steps[f"cam2map-{C}"]["error"] == f"not run: spiceinit-{C} is failed"  # the message is kept


def test_a_database_of_ctxdask_0_1_is_migrated_by_its_first_reader(old_db):
    with BatchView(old_db) as view:
        report = view.status_report()
    assert _user_version(old_db) == SCHEMA_VERSION
    assert report["images"] == {"failed": 1, "pending": 1, "done": 1}
    assert report["manually_rejected"] == {f"{A}-{C}": report["manually_rejected"][f"{A}-{C}"]}
    assert report["manually_rejected"][f"{A}-{C}"].startswith("manually graded fail by ana")
    assert report["tiles"] == {f"{A}-{B}": {"pair": "pending", "total": 2, "done": 1, "failed": 1}}
    assert report["failure_count"] == 1 and report["rejected"][0]["line"] == 3
    assert skipped_lines(str(old_db))[-2].endswith("not run because an earlier step of theirs did not succeed")


def test_status_reads_a_database_of_ctxdask_0_1(old_db):
    out = subprocess.run([sys.executable, "-m", "ctxdask", "status", str(old_db)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "images: 1 done, 1 failed, 1 pending" in out.stdout and f"manually failed {A}-{C}" in out.stdout


def test_migrating_twice_changes_nothing(old_db):
    TrackingDB(old_db).close()
    with sqlite3.connect(old_db) as conn:
        first = list(conn.iterdump())
    TrackingDB(old_db).close()
    connect_reader(old_db).close()
    with sqlite3.connect(old_db) as conn:
        assert list(conn.iterdump()) == first


def test_a_database_from_a_newer_ctxdask_is_refused_not_misread(tmp_path):
    path = tmp_path / "future.sqlite"
    TrackingDB(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for opener in (TrackingDB, BatchView):
        with pytest.raises(SchemaError, match="made by a newer ctxdask|upgrade ctxdask") as caught:
            opener(path)
        assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)
    out = subprocess.run([sys.executable, "-m", "ctxdask", "status", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr and "upgrade ctxdask" in out.stderr
    assert _user_version(path) == SCHEMA_VERSION + 1  # untouched


def test_a_failed_migration_leaves_the_old_database_as_it_was(old_db, monkeypatch):
    from ctxdask.tracking import schema

    with sqlite3.connect(old_db) as conn:
        before = list(conn.iterdump())

    def broken(conn):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "MIGRATIONS", (schema.MIGRATIONS[0], broken))
    with pytest.raises(sqlite3.OperationalError):
        TrackingDB(old_db)
    with sqlite3.connect(old_db) as conn:
        assert list(conn.iterdump()) == before and version(conn) == 0
