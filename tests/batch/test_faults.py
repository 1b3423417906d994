"""Faults of the batch itself: a worker killed mid-batch, the driver killed or interrupted."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ctxdask.batch import run_batch
from ctxdask.tools.recipe import build_recipe

from ..tools.conftest import standin_path
from .conftest import make_images, query, write_pairs

# (each pair makes COGs, QA and a STAC item: a few seconds per pair on a loaded 2-core machine)
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

IMAGES = [f"B{10 + i:02d}_0{13341 + i:05d}_1010_XN_79S172W" for i in range(8)]
PAIRS = [(IMAGES[i], IMAGES[j]) for i, j in [(0, 1), (0, 2), (1, 3), (2, 3), (4, 5), (5, 6), (6, 7), (4, 7)]]


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - the database may not exist yet
            pass
        time.sleep(0.1)
    return False


def _done_pairs(db) -> int:
    return query(db, "SELECT count(*) FROM pairs WHERE status = 'done'")[0][0]


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
                if _wait_for(lambda: query(db, "SELECT count(*) FROM steps WHERE step = 'parallel_stereo' "
                                               "AND status IN ('running', 'done')")[0][0] >= 2, 120):
                    os.kill(victim, signal.SIGKILL)

            killer = threading.Thread(target=kill_when_busy)
            killer.start()
            # default scratch, each worker's own dir: what the dead worker made goes with it, and
            # is pulled from elsewhere or made again where it is needed
            summary = run_batch(pairs, out, edr_dir=edr, client=client, recipe=recipe, progress=False)
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


def _driver(tmp_path, *extra, sleep="0.4"):
    env = dict(os.environ, PATH=standin_path(), CTXDASK_STANDIN_SLEEP=sleep,
               DASK_DISTRIBUTED__LOGGING__DISTRIBUTED="error",
               DASK_CTXDASK__BATCH__SCRATCH=str(tmp_path / "scratch"))  # not left in the system temp dir
    return subprocess.Popen(
        [sys.executable, "-m", "ctxdask", "batch", str(tmp_path / "pairs.txt"), "--out", str(tmp_path / "out"),
         "--edr-dir", str(tmp_path / "edr"), "--local", "2", "--no-progress", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def _started(db) -> dict:
    return dict(query(db, "SELECT key, started FROM steps WHERE status = 'done'"))


def test_driver_killed_then_rerun_does_not_redo_finished_pairs(tmp_path):
    make_images(tmp_path / "edr", IMAGES)
    write_pairs(tmp_path / "pairs.txt", PAIRS)
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    proc = _driver(tmp_path)
    try:
        assert _wait_for(lambda: _done_pairs(db) >= 2, 180), proc.communicate(timeout=5)[0][-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its scheduler and its workers, at once
        proc.wait(30)
    finished = {p for (p,) in query(db, "SELECT pair_id FROM pairs WHERE status = 'done'")}
    assert 2 <= len(finished) < len(PAIRS)
    before = _started(db)
    in_flight = query(db, "SELECT count(*) FROM steps WHERE status IN ('running', 'pending')")[0][0]
    assert in_flight > 0  # the dead driver left work in flight

    rerun = _driver(tmp_path, sleep="0")
    output = rerun.communicate(timeout=240)[0]
    assert rerun.returncode == 0, output[-3000:]
    assert f"{len(finished)} already done" in output
    after = _started(db)
    for key, started in before.items():
        subject = query(db, "SELECT subject FROM steps WHERE key = ?", (key,))[0][0]
        if subject in finished:
            assert after[key] == started, key  # finished pairs were not redone
    assert query(db, "SELECT status, count(*) FROM pairs GROUP BY status") == [("done", len(PAIRS))]
    runs = query(db, "SELECT status FROM runs ORDER BY id")
    assert runs == [("interrupted",), ("done",)]


def test_ctrl_c_cancels_cleanly_and_the_next_run_resumes(tmp_path):
    make_images(tmp_path / "edr", IMAGES)
    write_pairs(tmp_path / "pairs.txt", PAIRS)
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    proc = _driver(tmp_path, sleep="1.0")
    try:
        assert _wait_for(lambda: query(db, "SELECT count(*) FROM steps WHERE status = 'running' "
                                           "AND step = 'mroctx2isis'")[0][0] >= 1, 120)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output[-3000:]
    assert query(db, "SELECT status FROM runs") == [("interrupted",)]
    assert query(db, "SELECT count(*) FROM steps WHERE status IN ('running', 'pending')") == [(0,)]
    assert query(db, "SELECT count(*) FROM steps WHERE status = 'interrupted'")[0][0] >= 1
    assert query(db, "SELECT count(*) FROM pairs WHERE status = 'interrupted'")[0][0] >= 1
    rerun = _driver(tmp_path, sleep="0")
    output = rerun.communicate(timeout=240)[0]
    assert rerun.returncode == 0, output[-3000:]
    assert query(db, "SELECT status, count(*) FROM pairs GROUP BY status") == [("done", len(PAIRS))]


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

    proc = _driver(tmp_path, sleep="0.5")
    try:
        assert _wait_for(lambda: images_done() >= 3, 180), proc.communicate(timeout=5)[0][-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    done = {key: (started, attempts, run) for key, started, attempts, run in
            query(db, "SELECT key, started, attempts, run_id FROM steps WHERE status = 'done'")}
    image_steps_done = [k for k in done if not any(k.endswith(f"{a}-{b}") for a, b in PAIRS)]
    assert len(image_steps_done) >= 3 * 7, done  # fetch, validate, quality and four calibration steps
    assert _done_pairs(db) < len(PAIRS)
    # what a delivery cut short leaves: a hidden temporary beside its destination
    stale = tmp_path / "out" / "images" / IMAGES[0] / f".{IMAGES[0]}.thumb.png.0123abcd.partial"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"")
    half_made = [p.name for p in scratch.iterdir() if ".tmp-" in p.name]

    rerun = _driver(tmp_path, sleep="0")
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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_delivery_leaves_every_file_of_the_output_folder_listed(tmp_path, sig, monkeypatch):
    """Break 12: stopped while products cross the dask connection, the run ends with the database
    listing every file in the output folder (completed deliveries recorded, abandoned ones left out)."""
    import hashlib

    from .test_delivery import unlisted

    make_images(tmp_path / "edr", IMAGES)
    write_pairs(tmp_path / "pairs.txt", PAIRS)
    out, db = tmp_path / "out", tmp_path / "out" / "ctxdask-batch.sqlite"
    # 2 kB chunks: every delivery takes many round trips, so the signal lands while some are in flight
    monkeypatch.setenv("DASK_CTXDASK__BATCH__CHUNK_SIZE", "2000")
    proc = _driver(tmp_path, sleep="0.2")
    try:
        assert _wait_for(lambda: query(db, "SELECT count(*) FROM steps WHERE status = 'running' AND "
                                           "error = 'delivering results' AND step = 'pair_quality'")[0][0] >= 1,
                         240), proc.communicate(timeout=5)[0][-3000:]
        proc.send_signal(sig)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output[-3000:]
    assert query(db, "SELECT status FROM runs") == [("interrupted",)]
    assert query(db, "SELECT count(*) FROM steps WHERE status IN ('running', 'pending')") == [(0,)]
    assert _done_pairs(db) < len(PAIRS)
    assert unlisted(out) == []
    for path, size, sha in query(db, "SELECT path, size, sha256 FROM products"):
        data = (out / path).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, path
    # a step recorded interrupted delivered nothing; every listed file belongs to a step recorded done
    assert query(db, "SELECT count(*) FROM products p JOIN steps s ON s.key = p.key "
                     "WHERE s.status != 'done'") == [(0,)]
