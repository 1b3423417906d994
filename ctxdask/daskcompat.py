"""The one place that uses dask's and distributed's private API.

ctxdask builds some graphs node by node and works around a dask bug and a
distributed bug; both rely on things dask does not promise to keep. They are all here, so that a
new dask release breaks this module and ``tests/test_daskcompat.py``, not code
scattered over the package. ``pyproject.toml`` bounds dask and distributed to
the releases that test was run against (``tests/test_dask_matrix.py`` runs it
on the oldest and the newest of them; both bugs below are there in both,
2025.1.0 and 2026.8.0, and a test fails once a release fixes one).

What is used, and why:

- ``dask._task_spec`` (:class:`Task`, :class:`TaskRef`, :class:`DataNode`,
  :class:`GraphNode`, ``convert_legacy_graph``): graphs built from task
  objects, which :mod:`ctxdask.io.blockstore` fuses per line block,
  :func:`clone_after` clones (for :mod:`ctxdask.radiometry.calibrate`), and
  :mod:`ctxdask.batch.submission` sends as one ``update-graph`` message.
- :func:`clone_after` works around a bug of
  ``dask.graph_manipulation.bind``: the clone of a
  materialized layer keeps the references inside its ``Task`` values, so it
  still depends on the original keys, which are not even in its graph::

      import numpy as np
      import dask.array as da
      from dask._task_spec import convert_legacy_graph
      from dask.graph_manipulation import bind

      y = (da.from_array(np.arange(8), chunks=4) + 1)[1:]
      z = bind(y, da.zeros(1).sum())
      graph = convert_legacy_graph(dict(z.__dask_graph__()))
      graph[(z.name, 0)].dependencies <= graph.keys()
      # False: it needs ('add-<token of y's graph>', 0), not the clone's 'add-...'

  It also reads ``Array._meta`` to build the clone.
- ``dask.core.flatten``: the keys of a collection's nested key lists
  (:func:`keys_of`).
- ``dask.base.get_scheduler`` (not in ``dask.base.__all__``): the distributed
  client dask computes with, if any (:func:`active_client`).
- ``distributed.worker.thread_state`` and ``Worker.state``: the key of the
  task the calling thread runs, whether the worker still wants its result and
  how many tasks it is running (:func:`current_task_key`,
  :func:`worker_task_state`, :func:`executing_count`).
- ``dask._expr.LLGExpr`` and its ``_determ_token`` (in the dask releases that have them):
  :func:`submit_graph` names the expression a graph is sent in itself.
  ``Client.get`` wraps a dict in one, whose name is the token of the whole
  graph: every task's arguments normalized, dataclasses field by field and
  other objects pickled, which was most of the batch driver's time.
- :func:`cluster_lock` works around a leak of ``distributed.Lock`` (every
  ``distributed.Semaphore``; distributed 2026.8.0, ``distributed/semaphore.py``):
  each one starts a ``PeriodicCallback`` on its worker's event loop that
  refreshes its leases every lease timeout / 5. The callback holds the lock,
  so neither is ever collected, and only ``close()`` stops it, which also
  removes the semaphore on the scheduler under anyone waiting for it. After
  the thousands of locks of a batch (one per step made), each worker's event
  loop spent its time waking callbacks with nothing to refresh::

      from distributed import Client, Lock

      client = Client()

      def take():
          lock = Lock("x")
          with lock:
              pass
          return lock.refresh_callback.is_running()

      client.submit(take, pure=False).result()  # True, and for as long as the worker lives

  It reads the lock's ``refresh_callback`` and ``loop``.
- the scheduler's ``identity`` handler, called over the client's RPC
  (:func:`live_workers`): ``Client.scheduler_info()`` returns a cache that
  the client's periodic refresh may replace, at any moment, with a copy that
  lists no workers.
- :func:`result_within` works around a bug of ``distributed.utils.sync``
  (distributed 2026.8.0, ``distributed/utils.py``): the awaited value is kept in
  a local, ``result``, bound only when the awaited call returns, and the
  coroutine catches only ``Exception``. An awaitable that ends in
  ``asyncio.CancelledError`` (a ``BaseException``; a gather whose key was lost
  with its worker does) leaves ``result`` unbound, ``error`` None, and
  ``sync`` ends in ``return result``::

      import asyncio
      from distributed.utils import LoopRunner, sync

      runner = LoopRunner()
      runner.start()

      async def cancelled():
          raise asyncio.CancelledError

      sync(runner.loop, cancelled)
      # UnboundLocalError: cannot access local variable 'result' where it is
      # not associated with a value

Only dask itself is imported at module level: the distributed helpers import
it when called, so the core of ctxdask installs and imports without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

from dask._task_spec import DataNode, GraphNode, Task, TaskRef, convert_legacy_graph
from dask.core import flatten

__all__ = ["DataNode", "GraphNode", "Task", "TaskRef", "active_client", "clone_after", "cluster_lock",
           "current_task_key", "executing_count", "keys_of", "live_workers", "result_within", "submit_graph",
           "task_graph", "worker_task_state"]


def clone_after(array, blocker):
    """A copy of ``array``'s whole graph under new keys, whose source tasks wait for ``blocker``.

    What ``dask.graph_manipulation.bind(array, blocker)`` is meant to do (see
    the module docstring for why it is not used): with ``bind`` the "clone" of
    a slice still points at the original read tasks, so dask reads once and
    keeps every raw block in memory until ``blocker`` is known. Here every node
    is rebuilt with ``substitute``, so nothing is shared with the original.
    Keys are deterministic: the same ``array`` and ``blocker`` give the same clone.

    Parameters
    ----------
    array : dask.array.Array
        What to compute again.
    blocker : dask.array.Array
        A single-chunk array the clone's sources wait for.

    Returns
    -------
    dask.array.Array
        Equal to ``array``, computed from scratch once ``blocker`` is.
    """
    import dask.array as da
    from dask.base import clone_key, tokenize
    from dask.highlevelgraph import HighLevelGraph

    graph = task_graph(array.__dask_graph__())
    seed = tokenize(array.name, blocker.name)
    renamed = {key: clone_key(key, seed) for key in graph}
    (wait_for,) = keys_of(blocker)
    data = {key for key, node in graph.items() if isinstance(node, DataNode)}
    layer = {}
    for key, node in graph.items():
        new_key = renamed[key]
        cloned = node.substitute(renamed, key=new_key)
        if not isinstance(node, DataNode) and node.dependencies <= data:
            # a source (a file read): starts only once the blocker exists. Each read waits
            # on its own; binding the shared data nodes instead makes all reads siblings of
            # one task, and dask then runs them all before the work that consumes them
            cloned = Task(new_key, _first, cloned.substitute({}, key=None), TaskRef(wait_for))
        layer[new_key] = cloned
    name = clone_key(array.name, seed)  # tuple keys (name, i, j) were renamed the same way
    hlg = HighLevelGraph.from_collections(name, layer, dependencies=[blocker])
    return da.Array(hlg, name, chunks=array.chunks, dtype=array.dtype, meta=array._meta)


def _first(value, *after):
    """``value``; the other arguments only order the task after theirs."""
    return value


def task_graph(graph: Mapping) -> dict[Hashable, GraphNode]:
    """``graph`` (a HighLevelGraph or a plain mapping, legacy tuples allowed) as task objects by key.

    Parameters
    ----------
    graph : mapping
        A dask graph, such as ``array.__dask_graph__()``.

    Returns
    -------
    dict
        Key -> :class:`GraphNode` (a :class:`Task`, :class:`DataNode`, ...).
    """
    return convert_legacy_graph(dict(graph))


def keys_of(collection) -> list[Hashable]:
    """Every output key of a dask collection, flattened in block order.

    Parameters
    ----------
    collection : dask collection
        A dask array, Delayed, ...

    Returns
    -------
    list
        The keys of ``collection.__dask_keys__()``, nesting removed.
    """
    return list(flatten(collection.__dask_keys__()))


def active_client():
    """The ``distributed.Client`` dask computes with now; None for a local scheduler or without distributed."""
    from dask.base import get_scheduler

    try:
        from distributed import Client
    except ImportError:
        return None
    client = getattr(get_scheduler(), "__self__", None)  # a distributed scheduler is ``Client.get``
    return client if isinstance(client, Client) else None


def current_task_key() -> Hashable | None:
    """The key of the task the calling thread runs on a distributed worker, or None elsewhere."""
    try:
        from distributed.worker import thread_state
    except ImportError:
        return None
    return getattr(thread_state, "key", None)


def worker_task_state(worker, key: Hashable) -> str | None:
    """The state (``"executing"``, ``"cancelled"``, ...) of ``key`` on ``worker``; None when it forgot it.

    Parameters
    ----------
    worker : distributed.Worker
        The worker running the task.
    key : hashable
        The task's key.
    """
    ts = worker.state.tasks.get(key)
    return None if ts is None else ts.state


def executing_count(dask_worker) -> int:
    """How many tasks ``dask_worker`` is executing now (for ``Client.run``).

    Parameters
    ----------
    dask_worker : distributed.Worker
        The worker (``Client.run`` passes it by this name).
    """
    return len(dask_worker.state.executing)


def live_workers(client) -> dict[str, dict]:
    """Address -> info of the workers the scheduler knows now, asked of the scheduler itself.

    Parameters
    ----------
    client : distributed.Client
        A connected client.
    """
    # no n_workers argument: before distributed 2025.4 the handler takes none and lists every
    # worker; since then its default, -1, lists every worker too
    return client.sync(client.scheduler.identity)["workers"]


@contextlib.contextmanager
def cluster_lock(name: str) -> Iterator[None]:
    """``distributed.Lock(name)`` held for the block; its lease refresh stopped once released (module docstring).

    Parameters
    ----------
    name : str
        The lock's name on the scheduler.
    """
    from distributed import Lock

    lock = Lock(name)
    try:
        with lock:
            yield
    finally:
        # stopped on the loop that started it (the start was queued there first)
        callback, loop = getattr(lock, "refresh_callback", None), lock.loop
        if callback is not None and loop is not None:
            loop.add_callback(callback.stop)


def submit_graph(client, graph: Mapping, keys: list, **kwargs) -> list:
    """Futures of ``keys``, from a graph of task objects sent as one ``update-graph``, never tokenized.

    ``Client.get(graph, keys, sync=False, **kwargs)``, but the graph's
    expression gets a random name instead of the token of its contents (see
    the module docstring): the keys are given, the name only labels the
    expression. A dask without ``LLGExpr`` sends a dict as a layer, not tokenized either.

    Parameters
    ----------
    client : distributed.Client
    graph : mapping
        Key -> :class:`Task` (or other graph node).
    keys : list
        The keys to return futures of, in this order.
    **kwargs
        ``Client.get``'s (``resources``, ``retries``, ``fifo_timeout``...).
    """
    import uuid

    try:
        from dask._expr import LLGExpr

        expr = LLGExpr(dict(graph), _determ_token=uuid.uuid4().hex)
    except (ImportError, TypeError):
        expr = dict(graph)
    return client.get(expr, keys, sync=False, **kwargs)


def result_within(future, seconds: float) -> Any:
    """``future.result(timeout=seconds)``, where a wait cut short is a timeout too.

    A gather that ends in ``asyncio.CancelledError`` surfaces from
    ``distributed.utils.sync`` as ``UnboundLocalError`` (module docstring). No
    result came, as with a timeout; a task that itself raised
    ``UnboundLocalError`` (status ``error``) still raises it.

    Parameters
    ----------
    future : distributed.Future
        The future to wait for.
    seconds : float
        How long to wait.

    Raises
    ------
    TimeoutError
        No result within ``seconds``.
    """
    try:
        return future.result(timeout=seconds)
    except UnboundLocalError:
        if future.status == "error":
            raise
        raise TimeoutError(f"no result within {seconds:g} s (the wait was cut short)") from None
