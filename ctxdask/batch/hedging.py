"""Straggler hedging of tiled stereo: which running tile attempts deserve a duplicate, and where it may go.

A tile still running ``batch.hedge-factor`` times the median duration of its
pair's finished tiles (and at least ``batch.hedge-after-seconds``) gets one
duplicate attempt on another worker with a free slot; the first to finish
wins and the other is stopped (:mod:`~ctxdask.batch.tilework`). dask cannot
stop a running task (dask/distributed#391): releasing the loser's future moves
its task to ``cancelled`` on its worker, which the runner's cancel check
(:class:`~ctxdask.tools.cancel.WorkerTaskCancelled`) turns into the kill of the
program's whole process group. Each attempt keeps its own hard deadline.

:class:`Hedger` is the driver's bookkeeping: fed by the attempts' start
events and ends, asked once a second which attempts are due. It does no I/O;
a check costs O(running attempts) (medians are kept sorted as durations
come). :func:`free_workers` asks the scheduler, only when an attempt is due,
which workers have room for the duplicate.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterable, Mapping

__all__ = ["Hedger", "free_workers"]


@dataclasses.dataclass
class _Running:
    pair_id: str
    index: int
    since: float
    worker: str


class Hedger:
    """The running tile attempts of a run and how long their pairs' tiles took (driver thread only).

    Parameters
    ----------
    factor : float or None
        ``batch.hedge-factor``: a multiple of the pair's median tile duration;
        0 or None switches hedging off.
    floor : float
        ``batch.hedge-after-seconds``: never hedge an attempt younger than this.
    """

    def __init__(self, factor: float | None, floor: float):
        self.factor = float(factor or 0.0)
        self.floor = float(floor)
        #: pair -> durations (s) of its tiles done this run, sorted
        self.durations: dict[str, list[float]] = {}
        #: dask key -> the attempt running under it
        self.running: dict[str, _Running] = {}
        #: (pair, tile index) of the tiles that have their one duplicate
        self.hedged: set[tuple[str, int]] = set()

    @property
    def enabled(self) -> bool:
        """Whether hedging is on (a positive ``factor``)."""
        return self.factor > 0

    def started(self, key: str, pair_id: str, index: int, since: float, worker: str) -> None:
        """An attempt started (``since``: monotonic seconds) on ``worker``."""
        self.running[key] = _Running(pair_id, index, since, worker)

    def ended(self, key: str, duration: float | None = None) -> None:
        """An attempt ended (or was stopped); ``duration`` of a good one counts towards its pair's median."""
        run = self.running.pop(key, None)
        if run is not None and duration is not None:
            bisect.insort(self.durations.setdefault(run.pair_id, []), float(duration))

    def done_tile(self, pair_id: str, index: int) -> None:
        """The tile is settled: a later attempt at it may be hedged again (a retry is a new tile run)."""
        self.hedged.discard((pair_id, index))

    def forget_pair(self, pair_id: str) -> None:
        """Drop the tile durations kept for ``pair_id`` (its tiles are all finished)."""
        self.durations.pop(pair_id, None)

    def median(self, pair_id: str) -> float | None:
        """The median duration of the pair's finished tiles (None before the first)."""
        d = self.durations.get(pair_id)
        if not d:
            return None
        mid = len(d) // 2
        return d[mid] if len(d) % 2 else (d[mid - 1] + d[mid]) / 2

    def due(self, now: float) -> list[str]:
        """Dask keys of the attempts to hedge now: past factor x median and the floor, not hedged yet."""
        if not self.enabled:
            return []
        out = []
        for key, run in self.running.items():
            if (run.pair_id, run.index) in self.hedged:
                continue
            median = self.median(run.pair_id)
            if median is not None and now - run.since > max(self.factor * median, self.floor):
                out.append(key)
        return out


def free_workers(client, needs: Mapping[str, float], resources_of: Callable[[str], Mapping[str, float] | None],
                 exclude: Iterable[str] = ()) -> list[str]:
    """Workers (not in ``exclude``) with room now for a task that needs ``needs`` resources, emptiest first.

    The scheduler assigns a task with resources to a worker only while that
    worker has them free, so the keys it is processing say what is taken;
    ``resources_of`` gives the resources of a key of this run (None for
    others: they count as none). Two scheduler queries: call only when a
    duplicate is due.
    """
    from ctxdask.daskcompat import live_workers

    exclude = set(exclude)
    workers = live_workers(client)
    processing = client.processing()
    room = []
    for address, info in workers.items():
        if address in exclude:
            continue
        have = dict(info.get("resources") or {})
        keys = processing.get(address, ())
        for key in keys:
            for name, n in (resources_of(key) or {}).items():
                have[name] = have.get(name, 0) - n
        if all(have.get(name, 0) >= n for name, n in needs.items()) and (needs or len(keys) < info.get("nthreads", 1)):
            room.append((len(keys), address))
    return [address for _, address in sorted(room)]
