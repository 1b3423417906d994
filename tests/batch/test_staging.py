"""No shared filesystem: workers on two "hosts" with their own scratch; image and pair steps apart."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib

import dask
import pytest

from ctxdask.batch import run_batch
from ctxdask.tools.recipe import build_recipe

from ..tools.conftest import standin_path
from .conftest import IDS, make_images, query, write_pairs

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

PAIRS = [(IDS[0], IDS[1]), (IDS[0], IDS[2]), (IDS[1], IDS[3])]


def test_pair_steps_pull_image_cubes_from_another_host_once_and_verified(tmp_path):
    from distributed import Client, Nanny, Scheduler, SpecCluster

    edr = make_images(tmp_path / "edr", IDS, summing2={IDS[2]})
    pairs = write_pairs(tmp_path / "pairs.txt", PAIRS)
    calls = tmp_path / "calls.jsonl"
    # two loopback addresses stand for two machines: the batch sees two hosts, and each
    # worker has only its own local directory (no tools.work-dir, no batch.scratch)
    spec = {name: {"cls": Nanny, "options": {"host": host, "nthreads": 2, "resources": resources,
                                             "local_directory": str(tmp_path / name)}}
            for name, host, resources in [("a", "127.0.0.1", {"image": 1}), ("b", "127.0.0.2", {"stereo": 1})]}
    recipe = build_recipe(env={"CTXDASK_STANDIN_CALLS": str(calls)},
                          resources={**{s: {"image": 1} for s in ("mroctx2isis", "spiceinit", "ctxcal", "ctxevenodd")},
                                     **{s: {"stereo": 1} for s in ("cam2map4stereo", "parallel_stereo", "point2dem")}})
    old = os.environ["PATH"]
    os.environ["PATH"] = standin_path()
    try:
        with SpecCluster(workers=spec, scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1",
                                                                               "dashboard_address": ":0"}},
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client, \
                dask.config.set({"ctxdask.batch.cleanup-scratch": False, "ctxdask.batch.chunk-size": 4096}):
            client.wait_for_workers(2)
            summary = run_batch(pairs, tmp_path / "out", source=edr, client=client, recipe=recipe,
                                settings={"batch.progress": False})
            # worker dirs go when the cluster closes: look at the scratch now
            staged = sorted((tmp_path / "b").rglob("staged/*/*.cub"))
            copies = {p.parent.name: (p.read_bytes(), json.loads(p.with_name(p.name + ".staged.json").read_text()),
                                      next((tmp_path / "a").rglob(f"ctxdask-steps/{p.parent.name}/{p.name}")).read_bytes())
                      for p in staged}
    finally:
        os.environ["PATH"] = old
    assert summary.ok, summary
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    workers = dict(query(db, "SELECT step, group_concat(DISTINCT substr(worker, 7, 9)) FROM steps "
                             "WHERE step IN ('ctxcal', 'point2dem') GROUP BY step"))
    assert workers == {"ctxcal": "127.0.0.1", "point2dem": "127.0.0.2"}
    ran = [json.loads(line) for line in calls.read_text().splitlines()]
    # made once each on their host, never again on the other
    assert [c["program"] for c in ran].count("ctxcal") == 4
    assert all(c["cwd"].startswith(str(tmp_path / ("a" if c["program"] == "ctxcal" else "b"))) for c in ran
               if c["program"] in ("ctxcal", "point2dem"))
    # b pulled each image's final cube once (IDS[0] and IDS[1] serve two pairs each), checksummed
    last = {pid: "ctxcal" if pid == IDS[2] else "ctxevenodd" for pid in IDS}
    assert sorted(copies) == sorted(f"{last[pid]}-{pid}" for pid in IDS)
    for data, stamp, original in copies.values():
        assert data == original and stamp["sha256"] == hashlib.sha256(original).hexdigest()
    # the DEM products went home from b; quality of the EDRs (made wherever) too
    assert query(db, "SELECT count(*) FROM pair_quality") == [(3,)]
    assert query(db, "SELECT count(*) FROM quality WHERE thumbnail IS NOT NULL") == [(4,)]


def test_a_result_whose_worker_has_gone_is_made_again_where_it_is_needed(tmp_path, cluster_client):
    """The producer left with its scratch: the consumer runs the image chain itself, same keys."""
    from ctxdask.batch.sources import LocalEDRSource
    from ctxdask.batch.staging import localize
    from ctxdask.batch.work import BatchContext, Outcome, image_chain
    from ctxdask.tools.tasks import RunOptions, StepResult

    pid = IDS[2]  # summing 2: no ctxevenodd
    edr = make_images(tmp_path / "edr", [pid], summing2={pid})
    recipe = build_recipe()
    steps = tuple(s.name for s in recipe.image_steps)
    last = image_chain(recipe, pid, 2, steps)[-1]
    gone = str(tmp_path / "gone" / last.key)
    lost = Outcome(last.key, last.step, pid, "done", worker="tcp://127.0.0.9:1", info={"summing": 2},
                   result=StepResult(last.key, last.step, "ctxcal", gone, {"cube": f"{gone}/{pid}.cal.cub"}, "", 0,
                                     0.0, "", "elsewhere", False, "0"))
    ctx = BatchContext(recipe=recipe, source=LocalEDRSource(str(edr)), image_steps=steps,
                       options=RunOptions.from_config(work_dir=str(tmp_path / "scratch")))

    def consume(outcome, ctx):
        from distributed import get_worker

        made = []
        return localize(outcome, ctx, get_worker().address, made), made

    result, made = cluster_client.submit(consume, lost, ctx, pure=False).result(timeout=120)
    assert result.key == last.key and result.workdir == str(tmp_path / "scratch" / last.key)
    assert os.path.getsize(result.outputs["cube"]) > 0
    assert made == [f"fetch-{pid}", f"mroctx2isis-{pid}", f"spiceinit-{pid}", last.key]


def test_only_inputs_read_where_they_were_can_vanish(tmp_path):
    """A step that failed is run again on copies only when an input it read in place (another
    worker's scratch on this host) has gone; another host's inputs were copied, never read in place."""
    from ctxdask.batch.model import Outcome
    from ctxdask.batch.staging import vanished
    from ctxdask.tools.tasks import StepResult

    def made_on(worker, path):
        result = StepResult(key="ctxcal-X", step="ctxcal", program="ctxcal", workdir=str(tmp_path),
                            outputs={"cube": str(path)}, log_path="", returncode=0, duration=0.0, started="",
                            host="", cached=False, fingerprint="f")
        return Outcome(key="ctxcal-X", step="ctxcal", subject="X", status="done", worker=worker, result=result)

    me = "tcp://127.0.0.2:4000"
    present = tmp_path / "there.cub"
    present.write_bytes(b"x")
    gone = tmp_path / "gone.cub"
    assert vanished([made_on("tcp://127.0.0.2:5000", gone)], me)  # this host, read in place, gone
    assert not vanished([made_on("tcp://127.0.0.2:5000", present)], me)
    assert not vanished([made_on("tcp://127.0.0.3:5000", gone)], me)  # another host: its paths are not ours
    assert not vanished([made_on(me, gone)], me)


def _rebuild_there(outcome, ctx):
    from distributed import get_worker

    from ctxdask.batch.staging import localize

    made: list[str] = []
    return localize(outcome, ctx, get_worker().address, made), made


def test_a_step_rebuilt_on_one_worker_is_not_made_again_by_a_rerun_of_its_image_on_another(tmp_path,
                                                                                            cluster_client):
    """The race of a lost image task: its worker died; the scheduler reruns the image task on worker B
    while a pair step on worker A, missing the image's cube, rebuilds the chain. B reaches ctxcal while
    A makes it: B waits for A (the same lock), then copies what A made. Each program runs once."""
    import time

    from ctxdask.batch.model import ImageTask, StepTask
    from ctxdask.batch.sources import LocalEDRSource
    from ctxdask.batch.work import BatchContext, Outcome, image_chain, run_image
    from ctxdask.tools.tasks import RunOptions, StepResult

    pid = IDS[2]  # summing 2: mroctx2isis, spiceinit, ctxcal
    edr = make_images(tmp_path / "edr", [pid], summing2={pid})
    calls = tmp_path / "calls.jsonl"
    recipe = build_recipe(env={"CTXDASK_STANDIN_CALLS": str(calls), "CTXDASK_STANDIN_SLEEP": "3"})
    steps = tuple(s.name for s in recipe.image_steps)
    last = image_chain(recipe, pid, 2, steps)[-1]
    source = LocalEDRSource(str(edr))
    # no tools.work-dir: each worker has its own scratch, as on two machines
    ctx = BatchContext(recipe=recipe, source=source, image_steps=steps, topic="ctxdask-test-race",
                       options=RunOptions.from_config(work_dir=None))
    gone = str(tmp_path / "gone" / last.key)
    lost = Outcome(last.key, last.step, pid, "done", worker="tcp://127.0.0.9:1", info={"summing": 2},
                   result=StepResult(last.key, last.step, "ctxcal", gone, {"cube": f"{gone}/{pid}.cal.cub"}, "", 0,
                                     0.0, "", "elsewhere", False, "0"))
    a, b = sorted(cluster_client.scheduler_info()["workers"])
    rebuilding = cluster_client.submit(_rebuild_there, lost, ctx, workers=[a], pure=False)

    def programs():
        return [json.loads(line)["program"] for line in calls.read_text().splitlines()] if calls.exists() else []

    deadline = time.monotonic() + 60
    while "ctxcal" not in programs():  # A is making ctxcal (it sleeps 3 s)
        assert time.monotonic() < deadline and not rebuilding.done(), programs()
        time.sleep(0.05)
    head = (StepTask(f"fetch-{pid}", "fetch", "fetch", "image", pid, 60.0, source=ctx.source_for(pid)),
            StepTask(f"validate-{pid}", "validate", "validate", "image", pid, 60.0))
    rerun = cluster_client.submit(run_image, ImageTask(f"image-{pid}", pid, head, frozenset(), {}), ctx,
                                  workers=[b], pure=False)
    outcomes = rerun.result(timeout=120)
    (rebuilt, made_on_a) = rebuilding.result(timeout=120)
    assert all(o.ok for o in outcomes), [(o.key, o.status, o.error) for o in outcomes]
    assert programs() == ["mroctx2isis", "spiceinit", "ctxcal"]  # once each, all on A
    assert made_on_a[-1] == last.key and rebuilt.key == last.key
    # B copied A's ctxcal: the same bytes
    cube = next(o for o in outcomes if o.key == last.key).result.outputs["cube"]
    assert pathlib.Path(cube).read_bytes() == pathlib.Path(rebuilt.outputs["cube"]).read_bytes()
