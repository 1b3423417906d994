"""Bringing results home: a step's files land together or not at all, and are all recorded."""

from __future__ import annotations

import hashlib
import os
import pathlib
import threading

import pytest

from ctxdask.batch import delivery, run_batch
from ctxdask.batch.delivery import Deliverer, DeliveryError, DeliveryStopped
from ctxdask.batch.model import FileInfo, Outcome

from .conftest import IDS, make_images, query, write_pairs

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

#: the tracking database's own files: the only files in an output folder it does not list
DATABASE_FILES = ("ctxdask-batch.sqlite", "ctxdask-batch.sqlite-wal", "ctxdask-batch.sqlite-shm",
                  "ctxdask-batch.sqlite.lock")


def unlisted(out: pathlib.Path) -> list[str]:
    """Files in the output folder that its tracking database does not list (paths relative to ``out``)."""
    listed = {os.path.relpath(os.path.join(out, p), out)
              for (p,) in query(out / "ctxdask-batch.sqlite", "SELECT path FROM products")}
    on_disk = {os.path.relpath(p, out) for p in out.rglob("*") if p.is_file() or p.is_symlink()}
    return sorted(on_disk - listed - set(DATABASE_FILES))


def _files(folder: pathlib.Path, sizes: dict[str, int]) -> list[FileInfo]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, size in sizes.items():
        data = os.urandom(size)
        (folder / name).write_bytes(data)
        out.append(FileInfo(str(folder / name), name, size, hashlib.sha256(data).hexdigest()))
    return out


def test_a_step_whose_last_file_fails_its_check_lands_nothing(tmp_path, cluster_client):
    files = _files(tmp_path / "work", {"a.tif": 5000, "b.json": 300, "c.png": 4000})
    files[-1] = FileInfo(files[-1].path, files[-1].relpath, files[-1].size, "0" * 64)  # changed after hashing
    worker = sorted(cluster_client.scheduler_info()["workers"])[0]
    outcome = Outcome(key="pair_quality-x", step="pair_quality", subject="x", status="done", worker=worker,
                      files=tuple(files))
    deliverer = Deliverer(cluster_client, chunk_size=1000)
    try:
        with pytest.raises(DeliveryError, match="sha256 mismatch"):
            deliverer.submit(outcome, tmp_path / "out" / "x").result(120)
    finally:
        deliverer.shutdown()
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_stop_abandons_a_transfer_and_lands_nothing_of_it(tmp_path, cluster_client, monkeypatch):
    files = _files(tmp_path / "work", {"a.tif": 50_000, "b.tif": 50_000})
    worker = sorted(cluster_client.scheduler_info()["workers"])[0]
    outcome = Outcome(key="k", step="s", subject="x", status="done", worker=worker, files=tuple(files))
    chunks, stopping = [], threading.Event()
    deliverer = Deliverer(cluster_client, chunk_size=1000, window=1)

    def wait_and_count(future, outcome, pinned=(), *, abandon=False):
        chunks.append(1)
        if len(chunks) == 20:
            stopping.set()
            threading.Thread(target=deliverer.stop).start()
            while not deliverer._stop.is_set():
                pass
        return Deliverer._wait(deliverer, future, outcome, pinned, abandon=abandon)

    monkeypatch.setattr(deliverer, "_wait", wait_and_count)
    future = deliverer.submit(outcome, tmp_path / "out" / "x")
    with pytest.raises(DeliveryStopped):
        future.result(120)
    assert stopping.is_set() and 20 <= len(chunks) < 100
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_a_failed_delivery_leaves_nothing_and_a_plain_rerun_redoes_only_that_step(tmp_path, cluster_client,
                                                                                   monkeypatch):
    """Break 11: a product that fails its check after transfer; the rerun makes that step alone again."""
    pair = (IDS[0], IDS[1])
    pair_id = f"{pair[0]}-{pair[1]}"
    edr = make_images(tmp_path / "edr", pair)
    pairs = write_pairs(tmp_path / "pairs.txt", [pair])
    out = tmp_path / "out"
    real, failed = delivery.receive, []

    def corrupt_once(read, wait, *, where, **kw):
        real(read, wait, where=where, **kw)
        if where.endswith("-colour-relief.tif") and not failed:
            failed.append(where)
            raise DeliveryError(where, "sha256 mismatch after transfer (injected)")

    monkeypatch.setattr(delivery, "receive", corrupt_once)
    # one scratch folder for both workers: whichever of them runs a step again finds what is done
    # (reuse across workers with their own scratch is tested with the multi-host harness)
    scratch = tmp_path / "scratch"
    first = run_batch(pairs, out, source=edr, client=cluster_client,
                      settings={"batch.progress": False, "batch.scratch": str(scratch)})
    db = out / "ctxdask-batch.sqlite"
    assert failed and first.pairs == {"interrupted": 1}, first
    (status, error), = query(db, "SELECT status, error FROM steps WHERE key = ?", (f"pair_quality-{pair_id}",))
    assert status == "interrupted" and "sha256 mismatch" in error and "runs again next time" in error
    assert not (out / "pairs" / pair_id).exists() or not any((out / "pairs" / pair_id).iterdir())
    assert unlisted(out) == []
    before = {k: (s, a) for k, s, a in query(db, "SELECT key, started, attempts FROM steps WHERE status = 'done'")}

    again = run_batch(pairs, out, source=edr, client=cluster_client,
                      settings={"batch.progress": False, "batch.scratch": str(scratch)})
    assert again.ok and again.planned == 1, again
    after = {k: (s, a) for k, s, a in query(db, "SELECT key, started, attempts FROM steps")}
    assert {k: (before[k], after[k]) for k in before if after[k] != before[k]} == {}  # nothing done was made again
    assert after[f"pair_quality-{pair_id}"][1] == 2
    assert (out / "pairs" / pair_id / f"{pair_id}-colour-relief.tif").is_file()
    assert unlisted(out) == []


class _UngatherableFuture:
    """A finished read whose worker died before its result was gathered: ``result()`` without a
    timeout never returns (the scheduler waits for the one worker the read is pinned to)."""

    def __init__(self):
        self.waited_forever = False

    def done(self) -> bool:
        return True

    def result(self, timeout=None):
        if timeout is None:
            self.waited_forever = True
            raise AssertionError("the result was awaited without a timeout: a real one would never come")
        raise TimeoutError

    def cancel(self) -> None:
        pass


def test_a_read_whose_worker_died_after_it_finished_is_given_up(cluster_client):
    """The CI hang of test_worker_killed_mid_batch: a chunk read done on a worker that was killed
    before the driver gathered it; the delivery gives up (lost: the step is made again) instead of
    waiting for that worker forever."""
    gone = "tcp://127.0.0.1:1"  # the dead worker: on this host, where live workers remain
    outcome = Outcome(key="pair_quality-x", step="pair_quality", subject="x", status="done", worker=gone)
    future = _UngatherableFuture()
    deliverer = Deliverer(cluster_client, chunk_size=1000)
    try:
        with pytest.raises(delivery.DeliveryLost, match="left during delivery"):
            deliverer._wait(future, outcome, [gone])
    finally:
        deliverer.shutdown()
    assert not future.waited_forever
