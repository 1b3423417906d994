"""``ctxdask batch --dry-run``: the plan and every command line, nothing run or written."""

from __future__ import annotations

import hashlib

from ctxdask.batch import dry_run
from ctxdask.cli import main
from ctxdask.tracking import TrackingDB, grades

from .conftest import IDS, make_images, write_pairs

PAIRS = [(IDS[0], IDS[1]), (IDS[0], IDS[2]), (IDS[1], IDS[3])]


def test_a_dry_run_prints_the_plan_and_the_commands_and_writes_nothing(tmp_path, capsys):
    edr = make_images(tmp_path / "edr", IDS, summing2={IDS[2]})
    pairs = write_pairs(tmp_path / "pairs.txt", PAIRS, extra="not a pair\n")
    out = tmp_path / "out"
    assert main(["batch", str(pairs), "--out", str(out), "--edr-dir", str(edr), "--calibration", "isis",
                 "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()  # no folder, no database
    assert "3 pairs to run, 0 already done" in text and "1 rejected" in text and "not run: line 4" in text
    # each image chain rendered for the summing mode its label says: no ctxevenodd in summing 2
    assert f"ctxevenodd from={IDS[0]}.cal.cub" in text and f"ctxevenodd from={IDS[2]}" not in text
    assert f"{IDS[2]} summing 2" in text and "[parallel_stereo] parallel_stereo " in text


def test_a_dry_run_reads_the_batch_database_without_writing_it(tmp_path):
    edr = make_images(tmp_path / "edr", IDS)
    pairs = write_pairs(tmp_path / "pairs.txt", PAIRS)
    out = tmp_path / "out"
    out.mkdir()
    database = out / "ctxdask-batch.sqlite"
    with TrackingDB(database) as db:
        db.register([], IDS)
    grades.add_grade(database, "image", IDS[3], "fail", "clouds", who="ana")
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    plan = dry_run(pairs, out, source=edr)
    assert [p.pair.pair_id for p in plan.pairs] == [f"{IDS[0]}-{IDS[1]}", f"{IDS[0]}-{IDS[2]}"]
    assert "manually graded fail by ana" in "\n".join(plan.lines())  # held, with the reason
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
