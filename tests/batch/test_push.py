"""Files only the driver holds reach the workers over the dask connection; tile scratch goes early.

Issue 19, break 4 (tile work dirs and staged copies never removed) and break 5
(a restarted driver handed the mosaic its own paths of tiles an earlier run
delivered). "No shared filesystem" is emulated honestly: two workers on two
loopback addresses with their own scratch, and an audit hook in every worker
process that records any file it opens or links under the driver's output folder.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pathlib
import sys

import dask
import pytest

from ctxdask.batch import run_batch
from ctxdask.batch.model import BatchContext
from ctxdask.batch.push import Pusher, PushError, driver_outcome
from ctxdask.batch.staging import localize
from ctxdask.exceptions import ToolNotFoundError
from ctxdask.tools.tasks import RunOptions, run_step

from .conftest import IDS, make_images, query, two_host_client, write_pairs
from .tiled import ROOT, tiled_path, tiled_recipe, write_inputs

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

PAIR = (IDS[0], IDS[1])
PID = f"{PAIR[0]}-{PAIR[1]}"


# ------------------------------------------------------------------ helpers (run on the workers)
def _watch_driver_folder(out: str, log: str, dask_worker=None) -> None:
    """Record in ``log`` every open or symlink of a path under ``out`` made by this worker process."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def hook(event, args):
        if event in ("open", "os.symlink") and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if os.path.abspath(path).startswith(out + os.sep):
                os.write(fd, f"{event} {path}\n".encode())

    sys.addaudithook(hook)


def _without(call, *upstream, options, missing=()):
    """run_step, except that the programs of the steps in ``missing`` are not installed."""
    if call.step in missing:
        raise ToolNotFoundError(call.program, "program not found on PATH (test)", command=[call.program])
    return run_step(call, *upstream, options=options)


def _consume(outcome, ctx):
    from distributed import get_worker

    made: list[str] = []
    result = localize(outcome, ctx, get_worker().address, made)
    return {role: pathlib.Path(p).read_bytes() for role, p in result.outputs.items()}, result.outputs, made


# ------------------------------------------------------------------ the mechanism
@pytest.fixture(scope="module")
def one_thread_client():
    """One worker with one thread: a waiting task that did not secede would starve the driver's writes."""
    from distributed import Client, LocalCluster

    sys.path.insert(0, ROOT)
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            yield client
    finally:
        sys.path.remove(ROOT)


def _delivered(out: pathlib.Path, data: bytes):
    tile = out / "pairs" / PID / "tiles" / "000"
    path = tile / "results" / "out-0_0_16_16" / "out-DEM.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return tile, path


def test_a_delivered_file_is_pushed_in_chunks_checksummed_and_only_once(tmp_path, one_thread_client):
    out = tmp_path / "out"
    data = os.urandom(100_001)
    tile, path = _delivered(out, data)
    log = tmp_path / "opens.log"
    one_thread_client.run(_watch_driver_folder, str(out.resolve()), str(log))
    pusher = Pusher(one_thread_client, out, chunk_size=16_384, window=2)
    pusher.start()
    try:
        ctx = BatchContext(recipe=None, source=None, options=RunOptions(work_dir=str(tmp_path / "scratch")),
                           push_topic=pusher.topic)
        held = driver_outcome("stereo_tile-x-000", "stereo_tile", PID, tile, {"dem": str(path)},
                              {str(path): hashlib.sha256(data).hexdigest()}, "fp")
        got, outputs, made = one_thread_client.submit(_consume, held, ctx, pure=False).result(timeout=120)
        assert got == {"dem": data} and made == ["stereo_tile-x-000"]
        assert outputs["dem"] == str(tmp_path / "scratch" / "staged" / "stereo_tile-x-000" / "results" /
                                     "out-0_0_16_16" / "out-DEM.tif")
        assert pusher.sent == len(data)
        one_thread_client.submit(_consume, held, ctx, pure=False).result(timeout=120)
        assert pusher.sent == len(data)  # the stamped copy is reused
        # a checksum that does not match what arrives: refused, nothing left under the final name
        bad = driver_outcome("stereo_tile-x-001", "stereo_tile", PID, tile, {"dem": str(path)},
                             {str(path): "0" * 64}, "fp")
        with pytest.raises(PushError, match="sha256"):
            one_thread_client.submit(_consume, bad, ctx, pure=False).result(timeout=120)
        assert not (tmp_path / "scratch" / "staged" / "stereo_tile-x-001" / "results" / "out-0_0_16_16" /
                    "out-DEM.tif").exists()
        # the driver sends only delivered files of its output folder
        secret = tmp_path / "secret.txt"
        secret.write_text("not a product")
        other = driver_outcome("x-002", "stereo_tile", PID, tmp_path, {"dem": str(secret)},
                               {str(secret): hashlib.sha256(b"not a product").hexdigest()}, "fp")
        with pytest.raises(PushError, match="not a delivered file"):
            one_thread_client.submit(_consume, other, ctx, pure=False).result(timeout=120)
    finally:
        pusher.stop()
    assert not log.exists() or log.read_text() == ""  # the worker never touched the driver's files


# ------------------------------------------------------------------ a tiled batch on two "hosts"
def _scratch_entries(root: pathlib.Path) -> list[str]:
    """Everything in the workers' step scratch (``ctxdask-steps`` under their local directories)."""
    found = []
    for steps in root.rglob("ctxdask-steps"):
        found += [str(p.relative_to(steps)) for p in steps.rglob("*") if p.name != ".ctxdask-owner.json"]
    return sorted(found)


def test_tiles_of_an_earlier_run_reach_the_mosaic_pushed_and_tile_scratch_goes(tmp_path):
    edr = make_images(tmp_path / "edr", PAIR)
    pairs = write_pairs(tmp_path / "pairs.txt", [PAIR])
    dem = write_inputs(tmp_path / "in")["dem"]
    out = (tmp_path / "out").resolve()
    log = tmp_path / "driver-paths.log"
    recipe = tiled_recipe(env={"CTXDASK_STANDIN_MAP_SIZE": "32x32"}, lowres_dem=dem)
    with two_host_client(tmp_path, tiled_path()) as client, dask.config.set({"ctxdask.batch.chunk-size": 4096}):
        client.run(_watch_driver_folder, str(out), str(log))
        # run 1: dem_mosaic is not installed: the tiles come home, the pair is skipped
        first = run_batch(pairs, out, source=edr, client=client, recipe=recipe,
                          runner=functools.partial(_without, missing=("dem_mosaic", "dem_mosaic_ortho",
                                                                       "dem_mosaic_error")),
                          settings={"batch.progress": False})
        tiles = query(out / "ctxdask-batch.sqlite", "SELECT status FROM tiles WHERE pair_id = ?", (PID,))
        left_after_first = _scratch_entries(tmp_path)
        # run 2 (a new driver, the same command): the mosaics need the tiles only the driver holds
        second = run_batch(pairs, out, source=edr, client=client, recipe=recipe, settings={"batch.progress": False})
        left_after_second = _scratch_entries(tmp_path)
    db = out / "ctxdask-batch.sqlite"
    assert first.pairs == {"skipped": 1} and tiles and set(tiles) == {("done",)}, first.failures
    # break 4: every tile work dir went as soon as its outputs were home (the skipped pair keeps the rest of
    # its work, and the copies its mosaics were given, for the rerun: results.check_pair)
    assert not [p for p in left_after_first if p.startswith("stereo_tile-")], left_after_first
    assert second.ok, second
    steps = dict(query(db, "SELECT step, status FROM steps WHERE subject = ?", (PID,)))
    assert steps["dem_mosaic"] == "done" and steps["pair_quality"] == "done"
    # break 5: no tile was made again, and no worker ever opened or linked a path of the driver's folder
    assert query(db, "SELECT count(*) FROM tile_attempts")[0][0] == len(tiles)
    assert not log.exists() or log.read_text() == "", log.read_text()
    # after the clean run, nothing is left in any worker's scratch: no tile work dir, no staged copy
    assert left_after_second == [], left_after_second
