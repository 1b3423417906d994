"""The runner and the step tasks on a real multi-process dask cluster."""

from __future__ import annotations

import logging
import os
import time

import pytest
from distributed import Client, Event, LocalCluster

from ctxdask.exceptions import ToolCancelledError, ToolTimeoutError
from ctxdask.tools.processes import is_alive
from ctxdask.tools.recipe import build_recipe
from ctxdask.tools.runner import run
from ctxdask.tools.tasks import RunOptions, run_step, submit_steps

from .conftest import standin_path, write_edr

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def client():
    # the worker process inherits PATH at spawn time: stand-ins first
    old = os.environ["PATH"]
    os.environ["PATH"] = standin_path()
    try:
        with LocalCluster(processes=True, n_workers=1, threads_per_worker=2, resources={"stereo": 1},
                          dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
            with Client(cluster) as c:
                yield c
    finally:
        os.environ["PATH"] = old


def _pids(pidfile):
    if not pidfile.exists():
        return {}
    return {role: int(pid) for role, pid in (ln.split() for ln in pidfile.read_text().splitlines() if ln)}


def _wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _fault_env(fault, pidfile):
    return {"CTXDASK_STANDIN_FAULT": fault, "CTXDASK_STANDIN_PIDFILE": str(pidfile)}


def test_hung_program_killed_on_a_worker_process(client, edr_pair, tmp_path):
    _, edr, _, _ = edr_pair
    pidfile = tmp_path / "pids"
    timeout, grace = 1.0, 1.0
    worker_pid = list(client.run(os.getpid).values())[0]
    t0 = time.monotonic()
    future = client.submit(
        run, ["mroctx2isis", f"from={edr}", "to=out.cub"], str(tmp_path), timeout,
        env=_fault_env("hang-grandchild", pidfile), log="hang.log", grace=grace,
        poll_interval=0.05, pure=False,
    )
    with pytest.raises(ToolTimeoutError) as info:
        future.result()
    elapsed = time.monotonic() - t0
    err = info.value  # pickled on the worker, rebuilt here with all its fields
    assert timeout <= err.duration < timeout + grace, err.duration
    assert elapsed < timeout + grace + 2.0, elapsed
    pids = _pids(pidfile)
    assert set(pids) == {"main", "child", "grandchild"}
    assert not [p for p in pids.values() if is_alive(p)]
    assert worker_pid not in pids.values() and is_alive(worker_pid)
    assert "hanging with a child and grandchild" in err.log_tail
    assert (tmp_path / "hang.log").exists()


def test_cancelling_the_future_kills_its_program(client, edr_pair, tmp_path):
    _, edr, _, _ = edr_pair
    pidfile = tmp_path / "pids"
    future = client.submit(
        run, ["mroctx2isis", f"from={edr}", "to=out.cub"], str(tmp_path), 120,
        env=_fault_env("hang-grandchild", pidfile), log="cancel.log", grace=1.0,
        poll_interval=0.05, pure=False,
    )
    assert _wait_for(lambda: len(_pids(pidfile)) == 3, 20), "the program never started"
    pids = _pids(pidfile)
    t0 = time.monotonic()
    client.cancel(future)
    assert _wait_for(lambda: not [p for p in pids.values() if is_alive(p)], 10), pids
    stopped_after = time.monotonic() - t0
    assert stopped_after < 3.0, stopped_after  # the worker polls its task state every 0.05 s
    # the runner appends its last lines after the tree is gone (and its watchdog reaped)
    assert _wait_for(lambda: "task cancelled" in (tmp_path / "cancel.log").read_text(), 5)


def test_a_named_event_cancels_a_step(client, tmp_path):
    # an id of its own: the scheduler keeps results (and errors) under deterministic keys
    lid = "E01_000001_0001_XI_00N000W"
    edr = write_edr(tmp_path / f"{lid}.IMG", lid)
    pidfile = tmp_path / "pids"
    recipe = build_recipe(env=_fault_env("hang", pidfile))
    call = recipe.image_calls(lid, str(edr))[0]
    options = RunOptions.from_config(work_dir=str(tmp_path / "w"), grace=0.5, poll_interval=0.05,
                                     cancel_event="ctxdask-test-stop")
    future = client.submit(run_step, call, options=options, key=call.key)
    assert _wait_for(lambda: "main" in _pids(pidfile), 20)
    Event("ctxdask-test-stop", client=client).set()
    with pytest.raises(ToolCancelledError):
        future.result(timeout=30)
    assert not is_alive(_pids(pidfile)["main"])
    future.release()


def test_full_chain_on_the_cluster(client, edr_pair, tmp_path):
    lid, ledr, rid, redr = edr_pair
    recipe = build_recipe(calibration="isis")  # the ISIS programs' chain, through the stand-ins
    left, right = recipe.image_calls(lid, str(ledr)), recipe.image_calls(rid, str(redr))
    image_futures = submit_steps(client, left + right, RunOptions.from_config(work_dir=str(tmp_path / "w")))
    pair = recipe.pair_calls(left[-1], right[-1])
    futures = submit_steps(client, pair, RunOptions.from_config(work_dir=str(tmp_path / "w")),
                           upstream=image_futures)
    assert list(futures) == [c.key for c in pair]
    result = futures[pair[-1].key].result(timeout=120)
    assert result.outputs["dem"].endswith("results/out-DEM.tif") and os.path.isfile(result.outputs["dem"])
    assert result.host and not result.cached


def test_work_root_is_the_workers_folder_also_outside_a_task(client):
    from ctxdask.tools.tasks import work_root

    # Client.run runs outside any task, where distributed's get_worker() fails
    roots = client.run(work_root)
    dirs = client.run(lambda dask_worker: dask_worker.local_directory)
    assert roots == {addr: os.path.join(d, "ctxdask-steps") for addr, d in dirs.items()}
    assert client.submit(work_root, pure=False).result() in roots.values()
