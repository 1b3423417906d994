"""The real pair list (1,540 pairs, 2,524 images) through the batch on a LocalCluster."""

from __future__ import annotations

import shutil

import pytest

from ctxdask.batch import read_pairs, run_batch

from .conftest import make_images, query

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(400)]


def test_real_pair_list_completes_with_a_correct_database(tmp_path, cluster_client, reference_dir):
    source = reference_dir / "pairs" / "CTX_stereo_pair.txt"
    pairs = read_pairs(source)
    edr = make_images(tmp_path / "edr", pairs.images)
    # Step set chosen for the CI budget: the image-level steps (fetch and validate,
    # in-process, once per image) for all 2,524 images and the bookkeeping of all 1,540
    # pairs. A stand-in program per pair step would mean thousands of Python
    # subprocesses (minutes on 2 cores); the whole chain with every stand-in runs in
    # test_driver.py on a few pairs.
    summary = run_batch(source, tmp_path / "out", source=edr, client=cluster_client,
                        settings={"batch.steps": ["validate"], "batch.progress": False})
    assert summary.ok, summary
    assert [(r.line, r.text) for r in summary.rejected] == [(1209, "M"), (1210, "M")]
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    assert query(db, "SELECT status, count(*) FROM pairs GROUP BY status") == [("done", 1540)]
    assert query(db, "SELECT status, count(*) FROM images GROUP BY status") == [("done", 2524)]
    # each image fetched and validated exactly once, however many pairs share it
    assert query(db, "SELECT step, count(*), min(attempts), max(attempts) FROM steps GROUP BY step") == \
        [("fetch", 2524, 1, 1), ("validate", 2524, 1, 1)]
    assert query(db, "SELECT count(*) FROM steps WHERE worker IS NULL OR started IS NULL OR ended < started") \
        == [(0,)]
    assert query(db, "SELECT line, text FROM rejected") == [(1209, "M"), (1210, "M")]
    assert set(query(db, "SELECT summing FROM images")) == {(1,)}
    # order and line numbers kept as written
    assert query(db, "SELECT pair_id, line FROM pairs ORDER BY line LIMIT 1") == \
        [("B01_009855_2626_XN_82N094W-B01_010106_2627_XN_82N094W", 1)]
    shutil.rmtree(edr)  # 2,524 files: do not keep them in the pytest temp dir
