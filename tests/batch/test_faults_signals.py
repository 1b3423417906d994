"""Faults of the batch itself: a signal while products are delivered."""

from __future__ import annotations

import signal

import pytest

from .conftest import make_images, query, write_pairs
from .faults import IMAGES, MARKS, PAIRS, assert_interrupted, done_pairs, driver, interrupt

# the other faults are in tests/batch/test_faults_*.py: files of their own, so that pytest-xdist
# --dist loadfile spreads them over its workers
pytestmark = MARKS


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
    proc = driver(tmp_path, sleep="0.2")
    output = interrupt(proc, lambda: query(db, "SELECT count(*) FROM steps WHERE status = 'running' AND "
                                               "error = 'delivering results' AND step = 'pair_quality'")[0][0] >= 1,
                       sig, 240)
    assert_interrupted(db, proc, output)
    assert done_pairs(db) < len(PAIRS)
    assert unlisted(out) == []
    for path, size, sha in query(db, "SELECT path, size, sha256 FROM products"):
        data = (out / path).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, path
    # a step recorded interrupted delivered nothing; every listed file belongs to a step recorded done
    assert query(db, "SELECT count(*) FROM products p JOIN steps s ON s.key = p.key "
                     "WHERE s.status != 'done'") == [(0,)]
