"""The driver's bookkeeping of one run: every task in flight, and where each image and pair stands.

:class:`RunState` is shared by submission (:mod:`~ctxdask.batch.submission`,
which adds tasks) and result handling (:mod:`~ctxdask.batch.results`, which
records how they ended). Only the driver's thread touches it.

An image's steps run as one dask task (:class:`Group`); each step is still a
:class:`Tracked` of its own, with the key of its database row. A pair's steps
are one task each. Tiled stereo adds a pair's tile plan and its tile attempts
(:class:`~ctxdask.batch.tiles.TilePlanTask`, :class:`~ctxdask.batch.tiles.TileTask`),
tracked under their dask keys in :attr:`RunState.tiles`: they are rows of the
``tiles``/``tile_attempts`` tables, not of ``steps``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ctxdask.batch.model import ImageTask, Outcome, StepTask
from ctxdask.batch.pairlist import Pair
from ctxdask.tools.recipe import StepCall
from ctxdask.tracking.status import Status

__all__ = ["Group", "RunState", "Tracked"]

@dataclasses.dataclass
class Tracked:
    """One task of the run: its task, its future and, once known, its Outcome.

    ``task`` is a :class:`StepTask`, or in :attr:`RunState.tiles` a tile plan or tile attempt.
    """

    task: StepTask | Any
    upstream: tuple[str, ...]
    future: Any = None
    resources: Mapping[str, float] = dataclasses.field(default_factory=dict)
    since: float | None = None  # monotonic time of the running event
    outcome: Outcome | None = None
    delivering: bool = False
    group: str | None = None  # key of the image task the step runs in


@dataclasses.dataclass
class Group:
    """One image task: its steps (in chain order, as far as known) and its future."""

    task: ImageTask
    members: list[str]
    resources: Mapping[str, float]
    future: Any = None


@dataclasses.dataclass
class RunState:
    """Everything the driver knows about the run in progress.

    Attributes
    ----------
    tracked : dict
        Step key -> :class:`Tracked`.
    groups : dict
        Image task key (``image-<id>``) -> :class:`Group`.
    subject_keys : dict
        Product or pair id -> its step keys.
    pair_open : dict
        Pair id -> Pair, for the planned pairs not finished yet.
    pairs_of : dict
        Product id -> the planned pairs it is in.
    image_refs : dict
        Product id -> open pairs using it (its scratch is released at zero).
    image_status, image_error : dict
        Product id -> aggregate status and first error, once known.
    image_calls, image_last : dict
        Product id -> the calibration calls its task ran, and the key of its last step.
    summing, start_time : dict
        Product id -> summing mode and START_TIME validation found.
    chained : set
        Images whose chain is through (their pairs may start).
    running : set
        Step keys announced as running and not finished.
    copies : dict
        Step key -> workers other than its producer holding copies of its outputs.
    queued : list
        Task keys waiting for the next flush to the scheduler.
    loose_copies : dict
        Pair id -> keys of results that are not steps of the run (tiles)
        copied to workers for its steps; removed with the pair.
    tiles : dict
        Dask key -> :class:`Tracked` tile plan or tile attempt, until handled
        (a good tile's until its files are home).
    to_clean : dict
        Worker -> work dirs to remove, sent as one task per worker per pass of
        the result loop.
    cleaned : set
        Keys whose scratch was released for removal.
    held : dict
        Pair id -> why its preview held it before full resolution in this run
        (:mod:`~ctxdask.batch.triage`).
    """

    tracked: dict[str, Tracked] = dataclasses.field(default_factory=dict)
    held: dict[str, str] = dataclasses.field(default_factory=dict)
    groups: dict[str, Group] = dataclasses.field(default_factory=dict)
    subject_keys: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    pair_open: dict[str, Pair] = dataclasses.field(default_factory=dict)
    pairs_of: dict[str, list[Pair]] = dataclasses.field(default_factory=dict)
    image_refs: dict[str, int] = dataclasses.field(default_factory=dict)
    image_status: dict[str, str] = dataclasses.field(default_factory=dict)
    image_error: dict[str, str | None] = dataclasses.field(default_factory=dict)
    image_calls: dict[str, list[StepCall]] = dataclasses.field(default_factory=dict)
    image_last: dict[str, str] = dataclasses.field(default_factory=dict)
    summing: dict[str, int | None] = dataclasses.field(default_factory=dict)
    start_time: dict[str, str | None] = dataclasses.field(default_factory=dict)
    chained: set[str] = dataclasses.field(default_factory=set)
    running: set[str] = dataclasses.field(default_factory=set)
    copies: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    queued: list[str] = dataclasses.field(default_factory=list)
    loose_copies: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    tiles: dict[str, Tracked] = dataclasses.field(default_factory=dict)
    to_clean: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    cleaned: set[str] = dataclasses.field(default_factory=set)

    def open_pairs(self, pairs: Iterable[Pair]) -> None:
        """Take the planned pairs in: open, and counted against their images."""
        for pair in pairs:
            self.pair_open[pair.pair_id] = pair
            for pid in pair.images:
                self.pairs_of.setdefault(pid, []).append(pair)
                self.image_refs[pid] = self.image_refs.get(pid, 0) + 1

    def future_of(self, key: str):
        """The future of a task key (an image task's or a step's)."""
        return self.groups[key].future if key in self.groups else self.tracked[key].future

    def task_of(self, key: str):
        """The task a live future of ``key`` runs (None once released or unknown)."""
        for table in (self.groups, self.tracked, self.tiles):
            entry = table.get(key)
            if entry is not None and entry.future is not None:
                return entry.task
        return None

    def note_copies(self, subject: str, worker: str, keys: Iterable[str]) -> None:
        """``worker`` holds copies of ``keys``' outputs (pulled or made again for ``subject``'s task).

        Removed with their step; those of results the run does not track as
        steps (tiles) with ``subject``.
        """
        if not worker:
            return
        for key in keys:
            self.copies.setdefault(key, set()).add(worker)
            if key not in self.tracked:
                self.loose_copies.setdefault(subject, set()).add(key)

    def keys_final(self, subject: str) -> bool:
        """Whether every step of an image or pair has ended (and its files are home)."""
        return all(self.tracked[k].outcome is not None and not self.tracked[k].delivering
                   for k in self.subject_keys.get(subject, ()))

    def subject_status(self, subject: str) -> tuple[str, str | None]:
        """Aggregate status of an image or pair, and the first error of that status."""
        outcomes = [self.tracked[k].outcome for k in self.subject_keys.get(subject, ())]
        status = Status.aggregate(o.status for o in outcomes)
        error = next((o.error for o in outcomes if o.status == status and o.error), None)
        return status, error

    def release(self, keys: Iterable[str], *, clean: bool) -> None:
        """Drop the futures of finished steps; with ``clean``, queue their scratch for removal.

        Their work dirs go, and the copies other workers pulled or made again
        of them, as of any result ``keys`` names that is not a step (tiles).
        """
        by_worker: dict[str, list[str]] = {}
        keys = list(keys)
        for key in keys:
            t = self.tracked.get(key)
            if t is not None:
                o = t.outcome
                if o is not None and o.worker:
                    # a step reused without a result (an in-process one): its key, relative to the work root
                    by_worker.setdefault(o.worker, []).append(o.result.workdir if o.result is not None else key)
                t.future = None
                if t.group is not None and t.group in self.groups:
                    self.groups.pop(t.group).future = None
            for worker in self.copies.pop(key, ()):
                # copies pulled or remade on other workers: paths relative to their own work root
                by_worker.setdefault(worker, []).extend([key, os.path.join("staged", key)])
        if clean:
            self.cleaned.update(keys)
            for worker, paths in by_worker.items():
                self.to_clean.setdefault(worker, []).extend(paths)

    def in_flight(self) -> list:
        """Futures of the tasks that have not ended."""
        return list({t.future.key: t.future for t in (*self.tracked.values(), *self.tiles.values())
                     if t.future is not None and t.outcome is None}.values())
