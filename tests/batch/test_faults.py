"""Faults of the batch itself: a worker killed mid-batch, the driver killed and run again."""

from __future__ import annotations

import logging
import os
import signal
import threading

from ctxdask.batch import run_batch
from ctxdask.tools.recipe import build_recipe

from ..tools.conftest import standin_path
from .conftest import make_images, query, write_pairs
from .faults import IMAGES, MARKS, PAIRS, done_pairs, driver, started_steps, wait_for

# the other faults are in tests/batch/test_faults_*.py: files of their own, so that pytest-xdist
# --dist loadfile spreads them over its workers
pytestmark = MARKS


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(tmp_path):
    from distributed import Client, LocalCluster

    edr = make_images(tmp_path / "edr", IMAGES)
    pairs = write_pairs(tmp_path / "pairs.txt", PAIRS)
    out, db = tmp_path / "out", tmp_path / "out" / "ctxdask-batch.sqlite"
    # slow, healthy programs, so that the kill lands while steps are running
    recipe = build_recipe(env={"CTXDASK_STANDIN_SLEEP": "0.3"})
    old = os.environ["PATH"]
    os.environ["PATH"] = standin_path()
    try:
        with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, resources={"stereo": 1},
                          dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster, \
                Client(cluster) as client:
            victim = next(iter(client.run(os.getpid).values()))

            def kill_when_busy():
                if wait_for(lambda: query(db, "SELECT count(*) FROM steps WHERE step = 'parallel_stereo' "
                                               "AND status IN ('running', 'done')")[0][0] >= 2, 120):
                    os.kill(victim, signal.SIGKILL)

            killer = threading.Thread(target=kill_when_busy)
            killer.start()
            # default scratch, each worker's own dir: what the dead worker made goes with it, and
            # is pulled from elsewhere or made again where it is needed
            summary = run_batch(pairs, out, source=edr, client=client, recipe=recipe,
                                settings={"batch.progress": False})
            killer.join()
            assert victim not in client.run(os.getpid).values()  # it really died (and was replaced)
    finally:
        os.environ["PATH"] = old
    assert summary.ok, summary
    assert query(db, "SELECT status, count(*) FROM pairs GROUP BY status") == [("done", len(PAIRS))]
    products = query(db, "SELECT path FROM products WHERE subject != ''")  # (not the batch's STAC catalog)
    # the pair's products (five COGs, three thumbnails, QA, provenance, STAC item); two per image
    assert len(products) == len(set(products)) == 11 * len(PAIRS) + 2 * len(IMAGES)
    on_disk = sorted(str(p) for p in out.glob("[pi]*s/**/*") if p.is_file())
    assert on_disk == sorted(p for (p,) in products)  # no strays, no partial files
    assert query(db, "SELECT count(*) FROM steps WHERE status != 'done'") == [(0,)]


def test_driver_killed_then_rerun_does_not_redo_finished_pairs(tmp_path):
    make_images(tmp_path / "edr", IMAGES)
    write_pairs(tmp_path / "pairs.txt", PAIRS)
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    proc = driver(tmp_path)
    try:
        assert wait_for(lambda: done_pairs(db) >= 2, 180), proc.communicate(timeout=5)[0][-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its scheduler and its workers, at once
        proc.wait(30)
    finished = {p for (p,) in query(db, "SELECT pair_id FROM pairs WHERE status = 'done'")}
    assert 2 <= len(finished) < len(PAIRS)
    before = started_steps(db)
    in_flight = query(db, "SELECT count(*) FROM steps WHERE status IN ('running', 'pending')")[0][0]
    assert in_flight > 0  # the dead driver left work in flight

    rerun = driver(tmp_path, sleep="0")
    output = rerun.communicate(timeout=240)[0]
    assert rerun.returncode == 0, output[-3000:]
    assert f"{len(finished)} already done" in output
    after = started_steps(db)
    for key, started in before.items():
        subject = query(db, "SELECT subject FROM steps WHERE key = ?", (key,))[0][0]
        if subject in finished:
            assert after[key] == started, key  # finished pairs were not redone
    assert query(db, "SELECT status, count(*) FROM pairs GROUP BY status") == [("done", len(PAIRS))]
    runs = query(db, "SELECT status FROM runs ORDER BY id")
    assert runs == [("interrupted",), ("done",)]
