"""Faults of the batch itself: Ctrl-C, and the next run."""

from __future__ import annotations

import signal

from .conftest import make_images, query, write_pairs
from .faults import IMAGES, MARKS, PAIRS, assert_interrupted, driver, interrupt

# the other faults are in tests/batch/test_faults_*.py: files of their own, so that pytest-xdist
# --dist loadfile spreads them over its workers
pytestmark = MARKS


def test_ctrl_c_twice_cancels_cleanly_and_the_next_run_resumes(tmp_path):
    """The second Ctrl-C hurries the stop (no wait for cancelled programs): still recorded, no error lines."""
    make_images(tmp_path / "edr", IMAGES)
    write_pairs(tmp_path / "pairs.txt", PAIRS)
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    proc = driver(tmp_path, sleep="1.0")
    output = interrupt(proc, lambda: query(db, "SELECT count(*) FROM steps WHERE status = 'running' "
                                               "AND step = 'mroctx2isis'")[0][0] >= 1, signal.SIGINT,
                       again=0.3)
    assert_interrupted(db, proc, output)
    assert query(db, "SELECT count(*) FROM steps WHERE status = 'interrupted'")[0][0] >= 1
    assert query(db, "SELECT count(*) FROM pairs WHERE status = 'interrupted'")[0][0] >= 1
    rerun = driver(tmp_path, sleep="0")
    output = rerun.communicate(timeout=240)[0]
    assert rerun.returncode == 0, output[-3000:]
    assert query(db, "SELECT status, count(*) FROM pairs GROUP BY status") == [("done", len(PAIRS))]


def test_ctrl_c_twice_while_the_local_cluster_starts_is_recorded_without_a_traceback(tmp_path):
    """Interrupted (twice) before anything ran: one line, exit 130, and the run in the database as interrupted."""
    make_images(tmp_path / "edr", IMAGES[:2])
    write_pairs(tmp_path / "pairs.txt", PAIRS[:1])
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    proc = driver(tmp_path)
    # the database's tables are made just before the local cluster starts (a second or more of worker processes)
    output = interrupt(proc, lambda: query(db, "SELECT count(*) FROM sqlite_master WHERE name = 'runs'")[0][0],
                       signal.SIGINT, again=0.2)
    assert_interrupted(db, proc, output)
    assert "Traceback" not in output and "AssertionError" not in output, output[-3000:]
    assert query(db, "SELECT count(*) FROM steps") == [(0,)]  # nothing was sent
