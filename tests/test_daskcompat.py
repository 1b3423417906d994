"""Every helper of ctxdask.daskcompat against the installed dask and distributed.

This file needs nothing but dask, distributed, numpy and pytest:
``tests/test_dask_matrix.py`` runs it in fresh environments holding the oldest
and the newest dask that ``pyproject.toml`` allows.
"""

from __future__ import annotations

import asyncio
import operator
import time

import dask
import dask.array as da
import numpy as np
import pytest
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ctxdask import daskcompat
from ctxdask.daskcompat import DataNode, GraphNode, Task, TaskRef


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:
        yield c


def test_task_graph_turns_a_collection_graph_into_task_objects():
    a = da.from_array(np.arange(12).reshape(3, 4), chunks=(2, 2)) + 1
    graph = daskcompat.task_graph(a.__dask_graph__())
    assert set(graph) == set(dict(a.__dask_graph__()))
    assert all(isinstance(node, GraphNode) for node in graph.values())
    (key,) = [k for k in daskcompat.keys_of(a) if k[1:] == (0, 0)]
    assert graph[key].dependencies and graph[key].dependencies <= set(graph)
    # a legacy tuple task is converted too
    legacy = daskcompat.task_graph({"x": 1, "y": (operator.add, "x", 2)})
    assert isinstance(legacy["x"], DataNode) and isinstance(legacy["y"], Task)
    assert legacy["y"].dependencies == {"x"}
    assert dask.get(legacy, "y") == 3


def test_keys_of_flattens_in_block_order():
    a = da.zeros((4, 6), chunks=(2, 3))
    assert daskcompat.keys_of(a) == [(a.name, 0, 0), (a.name, 0, 1), (a.name, 1, 0), (a.name, 1, 1)]
    total = dask.delayed(sum)([1, 2])
    assert daskcompat.keys_of(total) == [total.key]


def test_tasks_refs_data_fuse_and_substitute_as_the_graph_builders_use_them():
    graph = {
        "data": DataNode("data", [1, 2, 3]),
        "total": Task("total", sum, TaskRef("data")),
        "double": Task("double", operator.mul, TaskRef("total"), 2),
    }
    assert graph["double"].dependencies == {"total"}
    # blockstore: private tasks fused with the write into one task under the write's key
    fused = Task.fuse(graph["total"], graph["double"], key="double")
    assert fused.key == "double" and fused.dependencies == {"data"}
    assert dask.get({"data": graph["data"], "double": fused}, "double") == 12
    # calibrate: every node rebuilt under renamed keys, and a task wrapped without a key of its own
    renamed = {k: f"{k}-clone" for k in graph}
    clone = {renamed[k]: node.substitute(renamed, key=renamed[k]) for k, node in graph.items()}
    assert clone["double-clone"].dependencies == {"total-clone"}
    assert dask.get(clone, "double-clone") == 12
    inner = clone["total-clone"].substitute({}, key=None)
    wrapped = Task("total-clone", lambda value, *after: value, inner, TaskRef("data-clone"))
    assert dask.get({**clone, "total-clone": wrapped}, "double-clone") == 12


def test_a_hand_built_layer_computes_as_a_collection():
    layer = {"a": DataNode("a", 20), "b": Task("b", operator.add, TaskRef("a"), 1)}
    delayed = Delayed("b", HighLevelGraph.from_collections("b", layer, dependencies=()))
    assert delayed.compute(scheduler="sync") == 21


def _task_graph_of(array):
    return daskcompat.task_graph(array.__dask_graph__())


def test_clone_after_recomputes_everything_after_the_blocker():
    source = da.from_array(np.arange(12.0).reshape(3, 4), chunks=(1, 4))
    array = (source + 1)[:, 1:]
    blocker = da.from_array(np.ones(1), chunks=1).sum()
    clone = daskcompat.clone_after(array, blocker)
    np.testing.assert_array_equal(clone.compute(scheduler="sync"), array.compute(scheduler="sync"))
    graph = _task_graph_of(clone)
    assert not set(graph) & set(dict(array.__dask_graph__())), "the clone shares a key with the original"
    assert all(node.dependencies <= graph.keys() for node in graph.values())
    # every read waits for the blocker; the same inputs give the same clone
    (wait_for,) = daskcompat.keys_of(blocker)
    reads = [node for node in graph.values() if wait_for in node.dependencies]
    assert len(reads) == source.numblocks[0]
    assert daskcompat.clone_after(array, blocker).name == clone.name


def test_the_dask_bug_clone_after_works_around_is_still_there():
    """The module docstring's reproducer. When this fails, ``bind`` clones properly: use it instead."""
    from dask.graph_manipulation import bind

    y = (da.from_array(np.arange(8), chunks=4) + 1)[1:]
    z = bind(y, da.zeros(1).sum())
    graph = _task_graph_of(z)
    assert not graph[(z.name, 0)].dependencies <= graph.keys()


def test_no_task_key_outside_a_worker_task():
    assert daskcompat.current_task_key() is None


def _inside_a_task():
    from distributed import get_worker

    worker = get_worker()
    key = daskcompat.current_task_key()
    return key, daskcompat.worker_task_state(worker, key), daskcompat.worker_task_state(worker, "no-such-key"), \
        daskcompat.executing_count(worker)


def test_worker_helpers_inside_a_task(client):
    key, state, unknown, executing = client.submit(_inside_a_task, key="compat-probe", pure=False).result(timeout=30)
    assert key == "compat-probe"
    assert state == "executing" and unknown is None
    assert executing == 1
    assert sum(client.run(daskcompat.executing_count).values()) == 0


class _Untokenizable:
    """An argument that refuses to be tokenized (and pickles as usual)."""

    def __dask_tokenize__(self):
        raise AssertionError("the graph was tokenized")


def _second(a, b):
    return b


def test_submit_graph_sends_task_objects_without_tokenizing_them(client):
    graph = {"compat-a": Task("compat-a", _second, _Untokenizable(), 1),
             "compat-b": Task("compat-b", _second, _Untokenizable(), TaskRef("compat-a"))}
    futures = daskcompat.submit_graph(client, graph, ["compat-b", "compat-a"], retries=1)
    assert [f.key for f in futures] == ["compat-b", "compat-a"]
    assert [f.result(timeout=30) for f in futures] == [1, 1]


def _lock_refreshes(plain: bool) -> tuple[bool, bool]:
    """(refresh running while held, refresh running a moment after release) of a lock taken on a worker."""
    from distributed import Lock

    if plain:
        lock = Lock("compat-plain")
        with lock:
            held = lock.refresh_callback.is_running()
        time.sleep(0.5)
        return held, lock.refresh_callback.is_running()
    import distributed

    made = []
    real = distributed.Lock

    def spy(name):
        made.append(real(name))
        return made[-1]

    distributed.Lock = spy
    try:
        with daskcompat.cluster_lock("compat-lock"):
            held = made[0].refresh_callback.is_running()
    finally:
        distributed.Lock = real
    time.sleep(0.5)
    return held, made[0].refresh_callback.is_running()


def test_cluster_lock_stops_refreshing_its_lease_once_released(client):
    assert client.submit(_lock_refreshes, False, pure=False).result(timeout=60) == (True, False)


def test_the_distributed_leak_cluster_lock_works_around_is_still_there(client):
    """A plain Lock keeps refreshing (nothing) after its release: when this fails, cluster_lock can go."""
    assert client.submit(_lock_refreshes, True, pure=False).result(timeout=60) == (True, True)


def test_the_active_client_is_the_one_dask_computes_with(client):
    assert daskcompat.active_client() is client
    with dask.config.set(scheduler="sync"):
        assert daskcompat.active_client() is None


def test_live_workers_are_the_schedulers(client):
    workers = daskcompat.live_workers(client)
    assert set(workers) == set(client.scheduler_info()["workers"]) and len(workers) == 1
    assert all("nthreads" in info for info in workers.values())


def test_result_within_returns_the_result_or_times_out(client):
    assert daskcompat.result_within(client.submit(operator.add, 1, 2), 30) == 3
    slow = client.submit(time.sleep, 5, pure=False)
    with pytest.raises(TimeoutError):
        daskcompat.result_within(slow, 0.1)
    slow.cancel()


class _CutShort:
    """A future whose wait ends as distributed's ``sync`` ends it when the gather is cancelled."""

    def __init__(self, status: str):
        self.status = status

    def result(self, timeout=None):
        raise UnboundLocalError("cannot access local variable 'result' where it is not associated with a value")


def test_a_wait_cut_short_is_a_timeout_and_a_task_error_stays_an_error():
    """Seen in CI: a chunk's worker died while its result was being gathered, and the delivery failed
    with distributed's UnboundLocalError instead of finding the worker gone."""
    with pytest.raises(TimeoutError, match="cut short"):
        daskcompat.result_within(_CutShort("finished"), 2.0)
    with pytest.raises(UnboundLocalError):
        daskcompat.result_within(_CutShort("error"), 2.0)


def test_the_distributed_bug_result_within_works_around_is_still_there():
    """The module docstring's reproducer. When this fails, distributed fixed ``sync``: drop the workaround."""
    from distributed.utils import LoopRunner, sync

    async def cancelled():
        raise asyncio.CancelledError

    runner = LoopRunner()
    runner.start()
    try:
        with pytest.raises(UnboundLocalError):
            sync(runner.loop, cancelled)
    finally:
        runner.stop()


# -- nothing else touches dask's internals ----------------------------------------------------

#: modules of dask and distributed that are not public API (besides any ``_private`` module or name)
_INTERNAL_MODULES = {"dask.core", "distributed.utils", "distributed.utils_comm", "distributed.core",
                     "distributed.worker_state_machine", "distributed.comm", "distributed.protocol"}
#: private names of otherwise public modules
_INTERNAL_NAMES = {("distributed.worker", "thread_state"), ("dask.base", "get_scheduler")}
#: attributes of a worker's state machine and the scheduler's RPC handlers (``.scheduler.address`` is public)
_INTERNAL_ATTRIBUTES = {("state", "tasks"), ("state", "executing"), ("scheduler", "identity")}


def private_dask_uses(path) -> list[str]:
    """``line: what`` for every use of dask's or distributed's private API in the file at ``path``."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            uses = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            uses = [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            if (node.value.attr, node.attr) in _INTERNAL_ATTRIBUTES:
                found.append(f"{node.lineno}: .{node.value.attr}.{node.attr}")
            continue
        else:
            continue
        for module, name in uses:
            parts = module.split(".")
            if parts[0] not in ("dask", "distributed"):
                continue
            private = (any(p.startswith("_") for p in parts) or (name or "").startswith("_")
                       or any(module == m or module.startswith(m + ".") for m in _INTERNAL_MODULES)
                       or (module, name) in _INTERNAL_NAMES)
            if private:
                found.append(f"{node.lineno}: {module}" + (f".{name}" if name else ""))
    return found


def test_the_scan_finds_private_imports_and_attributes(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import dask.array\nfrom dask.base import tokenize\nfrom distributed import Client\n"  # public
        "from dask._task_spec import Task\nimport dask.core\nfrom distributed.utils import sync\n"
        "def f(client, worker):\n    from distributed.worker import thread_state, Worker\n"
        "    return client.scheduler.identity, client.scheduler.address, worker.state.tasks\n"
    )
    assert private_dask_uses(source) == ["4: dask._task_spec.Task", "5: dask.core", "6: distributed.utils.sync",
                                         "8: distributed.worker.thread_state", "9: .scheduler.identity",
                                         "9: .state.tasks"]


def test_only_daskcompat_uses_private_dask_api():
    import pathlib

    package = pathlib.Path(daskcompat.__file__).parent
    found = {str(p.relative_to(package.parent)): uses for p in sorted(package.rglob("*.py"))
             if p.name != "daskcompat.py" and (uses := private_dask_uses(p))}
    assert not found, f"private dask/distributed API outside ctxdask/daskcompat.py: {found}"
    assert private_dask_uses(pathlib.Path(daskcompat.__file__))  # and the compat module is where it is
