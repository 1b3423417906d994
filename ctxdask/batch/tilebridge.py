"""Tiled stereo inside a batch run: between a pair's prep steps and its mosaics.

The driver submits a tiled pair's prep steps (``mapproject`` x 2,
``stereo_parse``, ``stereo_stats``) like any step, and tracks its mosaic
steps from the start, so the pair stays open. :class:`TileBridge` then hands
the pair to a :class:`~ctxdask.batch.tilerun.TiledPairs` (tile plan, one task
per tile attempt, retries, the ``tiles``/``tile_attempts`` tables, tile
deliveries) and takes it back when the tiles are through: the mosaics (and
the steps that read them, ``pc_align``... and ``pair_quality``) go to the
driver's submitter, or, when too few tiles succeeded, the mosaic steps end as
``failed`` with the list of failed tiles (``skipped`` when the prep failed),
which closes the pair.
"""

from __future__ import annotations

import pathlib

from ctxdask import tracking
from ctxdask.batch.model import BatchContext, Outcome
from ctxdask.batch.results import ResultHandler
from ctxdask.batch.settings import BatchSettings
from ctxdask.batch.state import RunState
from ctxdask.batch.submission import Submitter
from ctxdask.batch.tilerun import DriverHooks, TiledPair, TiledPairs
from ctxdask.tools.tasks import RunOptions

__all__ = ["NoTiles", "TileBridge", "tile_bridge"]


class TileBridge:
    """The driver's side of tiled stereo (one per run, driver thread only)."""

    def __init__(self, client, out: pathlib.Path, db: tracking.TrackingDB, run_id: int, *, state: RunState,
                 submitter: Submitter, results: ResultHandler, context: BatchContext, options: RunOptions,
                 settings: BatchSettings, retry_failed: bool):
        self.state = state
        self.submitter = submitter
        self.results = results
        self.later: dict[str, list] = {}
        self.runner = TiledPairs(client, submitter.recipe, out, db, run_id=run_id, options=options,
                                 retry_failed=retry_failed, chunk_size=settings.chunk_size, context=context,
                                 hooks=DriverHooks(mosaics=self._mosaics_ready, failed=self._failed,
                                                   copies=self._copies))

    @property
    def busy(self) -> bool:
        """Whether tile work (plans, attempts, deliveries) is in flight."""
        return bool(self.runner.waiting or self.runner.deliveries)

    def start(self) -> None:
        self.runner.start()

    def poll(self) -> None:
        """Handle finished tile work without waiting (one pass of the driver's loop)."""
        self.runner.poll(0)

    def stop(self, *, cancel: bool = False) -> None:
        self.runner.stop(cancel=cancel)

    def attach_ready(self) -> None:
        """Hand the tiled pairs whose prep steps were just sent to the tile runner."""
        state, ready = self.state, self.submitter.tiled_ready
        while ready:
            pair, prep, later, heads = ready.pop(0)
            left, right = state.image_calls[pair.left], state.image_calls[pair.right]
            self.later[pair.pair_id] = later
            self.runner.attach(
                TiledPair(pair.left, pair.right, left[-1] if left else "-", right[-1] if right else "-"),
                {c.step: state.future_of(c.key) for c in prep},
                list({id(f): f for f in (state.future_of(h) for h in heads)}.values()))

    def _mosaics_ready(self, pair_id: str, handed: dict) -> None:
        pair = self.state.pair_open.get(pair_id)
        if pair is not None:
            self.submitter.mosaics_ready(pair, handed, self.later.pop(pair_id, []))

    def _copies(self, worker: str, keys) -> None:
        """Image results the tiles copied to ``worker``: removed there when their image is released."""
        for key in keys:
            self.state.copies.setdefault(key, set()).add(worker)

    def _failed(self, pair_id: str, status: str, message: str) -> None:
        """No mosaic for the pair: its mosaic steps end with the tiles' verdict."""
        stamp = tracking.now()
        for key in sorted(self.state.subject_keys.get(pair_id, set())):
            t = self.state.tracked[key]
            if t.future is None and t.outcome is None and t.task.step in self.runner.mosaic_names:
                self.results.handle(key, Outcome(key=key, step=t.task.step, subject=pair_id, status=status,
                                                 ended=stamp, error=message))


class NoTiles:
    """The bridge of a run in monolithic stereo mode: nothing to do."""

    busy = False

    def start(self) -> None:
        pass

    def poll(self) -> None:
        pass

    def attach_ready(self) -> None:
        pass

    def stop(self, *, cancel: bool = False) -> None:
        pass


def tile_bridge(client, out: pathlib.Path, db: tracking.TrackingDB, run_id: int, *, submitter: Submitter,
                **kwargs) -> TileBridge | NoTiles:
    """A :class:`TileBridge` when the run's recipe is in tiled stereo mode, else :class:`NoTiles`."""
    if submitter.recipe.tile_step is None:
        return NoTiles()
    return TileBridge(client, out, db, run_id, submitter=submitter, **kwargs)
