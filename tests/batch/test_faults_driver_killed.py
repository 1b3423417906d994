"""Faults of the batch itself: the driver killed after some images, run again."""

from __future__ import annotations

import os
import signal

from .conftest import make_images, query, write_pairs
from .faults import IMAGES, MARKS, PAIRS, done_pairs, driver, wait_for

# the other faults are in tests/batch/test_faults_*.py: files of their own, so that pytest-xdist
# --dist loadfile spreads them over its workers
pytestmark = MARKS


def test_driver_killed_after_some_images_reruns_no_step_recorded_done(tmp_path):
    """SIGKILL the driver (and its cluster) mid-batch: the rerun makes nothing again that was done.

    Counted from the database: every step recorded done before the rerun keeps its start
    time, attempt count and run id. Stale partial deliveries and the dead run's half-made
    work dirs are gone afterwards.
    """
    make_images(tmp_path / "edr", IMAGES)
    write_pairs(tmp_path / "pairs.txt", PAIRS)
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    scratch = tmp_path / "scratch"

    def images_done():
        return query(db, "SELECT count(*) FROM images WHERE status = 'done'")[0][0]

    proc = driver(tmp_path, sleep="0.5")
    try:
        assert wait_for(lambda: images_done() >= 3, 180), proc.communicate(timeout=5)[0][-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    done = {key: (started, attempts, run) for key, started, attempts, run in
            query(db, "SELECT key, started, attempts, run_id FROM steps WHERE status = 'done'")}
    image_steps_done = [k for k in done if not any(k.endswith(f"{a}-{b}") for a, b in PAIRS)]
    assert len(image_steps_done) >= 3 * 7, done  # fetch, validate, quality and four calibration steps
    assert done_pairs(db) < len(PAIRS)
    # what a delivery cut short leaves: a hidden temporary beside its destination
    stale = tmp_path / "out" / "images" / IMAGES[0] / f".{IMAGES[0]}.thumb.png.0123abcd.partial"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"")
    half_made = [p.name for p in scratch.iterdir() if ".tmp-" in p.name]

    rerun = driver(tmp_path, sleep="0")
    output = rerun.communicate(timeout=240)[0]
    assert rerun.returncode == 0, output[-3000:]
    after = {key: (started, attempts, run) for key, started, attempts, run in
             query(db, "SELECT key, started, attempts, run_id FROM steps")}
    rerun_again = sorted(key for key, record in done.items() if after[key] != record)
    assert rerun_again == [], rerun_again  # zero steps recorded done were run again
    assert query(db, "SELECT status, count(*) FROM pairs GROUP BY status") == [("done", len(PAIRS))]
    assert query(db, "SELECT count(*) FROM steps WHERE status != 'done'") == [(0,)]
    assert not list((tmp_path / "out").rglob("*.partial")) and not list((tmp_path / "out").rglob(".*.old"))
    left = sorted(p.name for p in scratch.iterdir()) if scratch.exists() else []
    assert not [name for name in left if ".tmp-" in name], (half_made, left)
    # every work dir of the dead run was reused and then cleaned with its pair
    assert not [name for name in left if name not in ("staged",)], left
