"""How a running step learns that its dask task was cancelled.

dask cannot interrupt a running task: when a client cancels a future (or
releases its last reference), the scheduler tells the worker to release the
key, and the worker moves the still-executing task to the ``cancelled`` state
(``WorkerState._transition_executing_released``) and waits for the function to
return. If the key is requested again before it returns, the state becomes
``resumed`` and the result is still wanted. :class:`WorkerTaskCancelled` polls
that state from the task's own thread, which is cheap (a dict lookup) and needs
no cooperation from the client.

A driver that wants to stop work whose futures it still holds (a whole pair, a
batch on Ctrl-C) can instead set a named :class:`distributed.Event`;
:class:`EventCancelled` polls it at a modest rate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ctxdask.daskcompat import current_task_key, worker_task_state

__all__ = ["EventCancelled", "WorkerTaskCancelled", "any_of", "task_cancel_check"]

logger = logging.getLogger(__name__)

#: worker task states in which the result is still wanted
_WANTED = {"executing", "long-running", "resumed"}


class WorkerTaskCancelled:
    """Callable: true once the worker no longer wants the current task's result.

    Must be created inside a running dask task (it captures the worker and the
    task key of the calling thread).
    """

    def __init__(self):
        from distributed import get_worker

        self.worker = get_worker()
        self.key = current_task_key()

    def __call__(self) -> bool:
        return worker_task_state(self.worker, self.key) not in _WANTED


class EventCancelled:
    """Callable: true once the :class:`distributed.Event` ``name`` is set.

    Parameters
    ----------
    name : str
        Event name, shared with the client that may set it.
    interval : float
        Minimum seconds between two queries of the scheduler.
    """

    def __init__(self, name: str, interval: float = 2.0):
        from distributed import Event

        self.name = name
        self.interval = interval
        self._event = Event(name)
        self._next = 0.0
        self._set = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._set and now >= self._next:
            self._next = now + self.interval
            try:
                self._set = bool(self._event.is_set())
            except Exception as exc:  # noqa: BLE001 - a lost scheduler must not kill the program
                logger.warning("cannot query cancel event %r: %s", self.name, exc)
        return self._set


def any_of(*checks: Callable[[], bool] | None) -> Callable[[], bool] | None:
    """Combine cancel checks (``None`` entries are ignored)."""
    active = [c for c in checks if c is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]
    return lambda: any(c() for c in active)


def task_cancel_check(event: str | None = None, interval: float = 2.0) -> Callable[[], bool] | None:
    """The cancel check for the calling thread: worker task state, plus ``event`` if named.

    Returns ``None`` outside a dask worker task (and no event).
    """
    try:
        worker_check = WorkerTaskCancelled() if current_task_key() is not None else None
    except ValueError:  # a task key, but not on a worker (dask's local schedulers)
        worker_check = None
    return any_of(worker_check, EventCancelled(event, interval) if event else None)
