"""The driver's side of tiled stereo: tile attempts recorded, retried, brought home, and the verdict.

A tiled pair's tile plan (:class:`~ctxdask.batch.tiles.TilePlanTask`) and its
tile attempts (:class:`~ctxdask.batch.tiles.TileTask`) are tasks of the run
like any other: sent by the :class:`~ctxdask.batch.submission.Submitter`,
back through the driver's one ``as_completed``, handed here by
:class:`~ctxdask.batch.results.ResultHandler` by their type.

1. The plan registers the pair's tiles (``tiles`` table); tiles an earlier
   run delivered (their files still home) are not run again, failed ones only
   with ``retry_failed`` (:class:`~ctxdask.batch.tiles.PairTiles`).
2. Each attempt is a row in ``tile_attempts``, opened by the worker's start
   event (so a worker that dies mid-tile leaves a ``lost`` row and dask runs
   the tile elsewhere) and closed by its outcome: a good tile's files come
   home through the driver's Deliverer into ``<out>/pairs/<pair>/tiles/<index>/``
   (its work dir is removed then); a transient failure is retried up to
   ``batch.tile-retries`` times away from the workers it failed on; an ASP
   error sends it again with the next parameter set (``tools.asp.tile-fallbacks``,
   :func:`~ctxdask.tools.tiling.with_stereo_options`), and each row records
   the set (``param_set``, ``param_label``).
3. A straggler (running ``batch.hedge-factor`` times its pair's median tile
   duration, and ``batch.hedge-after-seconds``) gets one duplicate on another
   worker with room, in a work dir of its own (``<key>-hedge``); the first of
   the two to finish wins, the other is stopped and recorded ``superseded``
   (:mod:`~ctxdask.batch.hedging`). A twin that fails while the other runs
   leaves the tile to it.
4. Once every tile has ended and is home, :func:`~ctxdask.batch.tiles.decide`:
   enough good tiles -> the mosaic steps are sent with the delivered tiles as
   upstream (pushed to the mosaics' worker, :mod:`~ctxdask.batch.push`);
   otherwise the mosaic steps end ``failed`` listing the failed tiles
   (``skipped`` when a prep step did not succeed), which closes the pair.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import time

from ctxdask import tracking
from ctxdask.batch.delivery import Deliverer
from ctxdask.batch.hedging import Hedger, free_workers
from ctxdask.batch.model import Outcome, StepTask
from ctxdask.batch.push import driver_outcome
from ctxdask.batch.state import RunState, Tracked
from ctxdask.batch.submission import Submitter
from ctxdask.batch.tiles import PairTiles, TilePlan, TilePlanTask, TilePolicy, TileTask
from ctxdask.settings import BatchSection
from ctxdask.tools.recipe import Ref, StepCall
from ctxdask.tools.tasks import RunOptions
from ctxdask.tools.tiling import mosaic_calls, param_sets, tile_call, with_stereo_options

__all__ = ["TileWork"]

logger = logging.getLogger(__name__)

#: suffix of a hedged duplicate's work dir: its own, so the two attempts never share one (a LocalCluster's
#: workers share their scratch)
HEDGE_SUFFIX = "-hedge"

_ATTEMPT_STATUS = {"done": "done", "timeout": "timeout", "interrupted": "interrupted"}


class TileWork:
    """The tiles of a run's pairs on the driver (driver thread only).

    Methods that can end a pair's mosaic steps without running them return
    those Outcomes; the caller records them as it records any step's.

    Parameters
    ----------
    client, state, db, run_id, out
        The run's client, RunState, tracking database, run id and output folder.
    submitter : Submitter
        Sends the tile attempts and, once the tiles are decided, the mosaics.
    deliverer : Deliverer
        The run's one Deliverer.
    deliveries : dict
        The run's deliveries in flight (future -> key): tile deliveries join them.
    settings : BatchSection
    options : RunOptions
    retry_failed : bool
        Run tiles that failed in an earlier run again.
    """

    def __init__(self, client, state: RunState, db: tracking.TrackingDB, run_id: int, *, out: pathlib.Path,
                 submitter: Submitter, deliverer: Deliverer, deliveries: dict, settings: BatchSection,
                 options: RunOptions, retry_failed: bool = False):
        self.client = client
        self.state = state
        self.db = db
        self.run_id = run_id
        self.out = out
        self.submitter = submitter
        self.deliverer = deliverer
        self.deliveries = deliveries
        self.settings = settings
        self.options = options
        self.retry_failed = retry_failed
        tiled = submitter.recipe.tile_step is not None
        #: the stereo options a tile may run with: the recipe's, then its fallbacks
        self.sets = param_sets(submitter.recipe.settings) if tiled else ()
        self.policy = dataclasses.replace(TilePolicy.from_config(), sets=tuple(p.label for p in self.sets)) \
            if tiled else TilePolicy()
        #: pair -> its tiles, until decided
        self.pairs: dict[str, PairTiles] = {}
        #: pair -> tile index -> the rendered stereo_tile call
        self.calls: dict[str, dict[int, StepCall]] = {}
        #: pair -> tile deliveries in flight
        self.home: dict[str, int] = {}
        #: dask key of an attempt -> its open ``tile_attempts`` row, and the worker it runs on
        self.rows: dict[str, tuple[int, str]] = {}
        #: the run is stopping: tiles landing now send no mosaic
        self.stopped = False
        #: straggler hedging (batch.hedge-factor): which attempts are due, and each hedged attempt's twin
        self.hedger = Hedger(settings.hedge_factor, settings.hedge_after_seconds)
        self.twin: dict[str, str] = {}

    # ------------------------------------------------------------------ plan
    def planned(self, task: TilePlanTask, result) -> list[Outcome]:
        """A pair's tile plan arrived (or failed): start its tiles, or end its mosaics."""
        pair_id = task.pair_id
        if not isinstance(result, TilePlan):
            return self._no_mosaic(pair_id, "failed", f"planning the tiles failed: {result}")
        if result.blocked_by:
            return self._no_mosaic(pair_id, "skipped", f"not run: {result.blocked_by} is {result.blocked_status}",
                                   result.blocked_by)
        pair = self.state.pair_open[pair_id]
        self.db.register_tiles(pair_id, result.tiles, result.footprints)
        previous = {r["tile_index"]: r for r in self.db.tiles(pair_id)}
        # a tile counts as done only with its delivered outputs still there, checksums recorded
        for row in previous.values():
            if row["status"] == "done" and not all((self.out / p).is_file() for p in row["outputs"].values()):
                row["status"] = "pending"
        tiles = self.pairs[pair_id] = PairTiles(pair_id, result.tiles, self.policy, previous=previous,
                                                retry_failed=self.retry_failed)
        self.state.note_copies(pair_id, result.worker, result.made_here)
        recipe, (left, right) = self.submitter.recipe, (self._cube(pair.left), self._cube(pair.right))
        lowres_dem = recipe.settings.tools.asp.lowres_dem
        self.calls[pair_id] = {
            t.index: tile_call(recipe, t, left=pair.left, right=pair.right, left_cube=left, right_cube=right,
                               lowres_dem=lowres_dem, t_srs=result.t_srs, spacing=result.spacing)
            for t in result.tiles}
        for tile in tiles.to_run():
            self._submit(pair_id, tile.index)
        return self._maybe_decide(pair_id)

    def _cube(self, pid: str) -> str | Ref:
        calls = self.state.image_calls.get(pid)
        return Ref(calls[-1].key, "cube") if calls else "-"

    def _submit(self, pair_id: str, index: int) -> None:
        tiles = self.pairs[pair_id]
        attempt = tiles.start(index)
        chosen = self.sets[tiles.param[index]]
        call = with_stereo_options(self.calls[pair_id][index], chosen.options)
        step = StepTask(key=call.key, step=call.step, kind="recipe", scope="pair", subject=pair_id,
                        timeout=float(self.options.timeouts.get(call.step, call.timeout)), call=call,
                        needs=tuple(call.upstream))
        self.submitter.submit_tile(TileTask(pair_id, tiles.tiles[index], attempt, step, self.submitter.run_tag,
                                            param_set=chosen.index), avoid=tiles.avoid(index))

    # -------------------------------------------------------------- attempts
    def started(self, msg: dict) -> None:
        """A worker announced a tile attempt: open its row (a second start: dask moved it off a dead worker)."""
        key = msg["dask_key"]
        t = self.state.tiles.get(key)
        if t is None or t.outcome is not None:
            return  # the result came first; its row is written
        if key in self.rows:
            row, worker = self.rows.pop(key)
            self.db.end_tile_attempt(row, "lost", failure_kind="signal",
                                     error=f"worker {worker} left while the tile ran")
        task: TileTask = t.task
        row = self.db.start_tile_attempt(task.pair_id, task.tile, run_id=self.run_id, dask_key=key,
                                         worker=msg["worker"], host=msg.get("host", ""), started=msg.get("started"),
                                         **self._param_fields(task))
        self.rows[key] = (row, msg["worker"])
        self.hedger.started(key, task.pair_id, task.tile.index, time.monotonic(), msg["worker"])

    def attempt_done(self, t: Tracked, result) -> list[Outcome]:
        """Record how a tile attempt ended; deliver, retry, or settle the tile."""
        task: TileTask = t.task
        pair_id, index = task.pair_id, task.tile.index
        outcome = result if isinstance(result, Outcome) else Outcome(
            key=task.step.key, step="stereo_tile", subject=pair_id, status="failed",
            error=f"{type(result).__name__}: {result}",
            info={"index": index, "failure_kind": "signal", "transient": True})
        t.outcome = outcome
        row, _ = self.rows.pop(task.dask_key, (None, None))
        if row is None:  # no start event arrived (the worker died at once): record the attempt anyway
            row = self.db.start_tile_attempt(pair_id, task.tile, run_id=self.run_id, dask_key=task.dask_key,
                                             worker=outcome.worker, host=outcome.host, started=outcome.started,
                                             **self._param_fields(task))
        self.db.end_tile_attempt(row, _ATTEMPT_STATUS.get(outcome.status, "failed"),
                                 ended=outcome.ended or tracking.now(), duration=outcome.duration,
                                 exit_code=outcome.exit_code, log_path=outcome.log_path, error=outcome.error,
                                 failure_kind=outcome.info.get("failure_kind"))
        self._note_scratch(pair_id, outcome)
        self.hedger.ended(task.dask_key, outcome.duration if outcome.ok else None)
        twin = self.twin.pop(task.dask_key, None)
        if twin is not None:
            self.twin.pop(twin, None)
            other = self.state.tiles.get(twin)
            if other is not None and other.future is not None and other.outcome is None:
                if not outcome.ok:  # the tile's fate is its twin's, still running
                    del self.state.tiles[task.dask_key]
                    return []
                self._supersede(twin, task.dask_key)
        tiles = self.pairs[pair_id]
        verdict = tiles.record(outcome)
        self.hedger.done_tile(pair_id, index)
        if verdict == "done":
            dest = self.out / "pairs" / pair_id / "tiles" / f"{index:03d}"
            self.deliveries[self.deliverer.submit(outcome, dest)] = task.dask_key
            self.home[pair_id] = self.home.get(pair_id, 0) + 1
            return []
        del self.state.tiles[task.dask_key]
        kind = outcome.info.get("failure_kind")
        if verdict == "retry":
            self.db.set_tile(pair_id, index, "pending", failure_kind=kind, error=tiles.reason[index],
                             **self._param_fields(task))
            self._submit(pair_id, index)
        else:
            self.db.set_tile(pair_id, index, tiles.state[index], failure_kind=kind, error=tiles.reason[index],
                             **self._param_fields(task))
        return self._maybe_decide(pair_id)

    # ---------------------------------------------------------------- hedging
    def hedge(self) -> None:
        """Send a duplicate of each straggling tile attempt to another worker with room (:mod:`~ctxdask.batch.hedging`).

        Called once a second; the scheduler is asked about free slots only
        when an attempt is due, and each worker takes one duplicate per call.
        """
        if self.stopped:
            return
        due = [k for k in self.hedger.due(time.monotonic())
               if k in self.state.tiles and self.state.tiles[k].task.pair_id in self.pairs]
        if not due:
            return
        state = self.state

        def resources_of(key: str):
            entry = state.groups.get(key) or state.tracked.get(key) or state.tiles.get(key)
            return entry.resources if entry is not None else None

        taken: set[str] = set()
        for key in due:
            t, run = state.tiles[key], self.hedger.running[key]
            try:
                room = free_workers(self.client, t.resources, resources_of, exclude={run.worker, *taken})
            except Exception as exc:  # noqa: BLE001 - hedging is an optimisation: the tile runs on regardless
                logger.warning("could not ask the scheduler for free workers to hedge %s: %s", key, exc)
                return
            if room:
                taken.add(room[0])
                self._duplicate(t.task, room[0])

    def _duplicate(self, task: TileTask, worker: str) -> None:
        """A second attempt at ``task``'s tile on ``worker``, in a work dir of its own."""
        tiles = self.pairs[task.pair_id]
        call = dataclasses.replace(task.step.call, key=task.step.call.key + HEDGE_SUFFIX)
        dup = dataclasses.replace(task, attempt=tiles.hedge(task.tile.index),
                                  step=dataclasses.replace(task.step, key=call.key, call=call))
        self.submitter.submit_tile(dup, workers=[worker])
        self.twin[task.dask_key], self.twin[dup.dask_key] = dup.dask_key, task.dask_key
        self.hedger.hedged.add((task.pair_id, task.tile.index))
        logger.info("tile %d of %s: a duplicate attempt on %s", task.tile.index, task.pair_id, worker)

    def _supersede(self, key: str, winner: str) -> None:
        """Stop the losing twin ``key``: its future released (its worker kills the program), its row superseded."""
        t = self.state.tiles.pop(key)
        future, t.future = t.future, None
        future.cancel()  # the task turns cancelled on its worker: the runner's cancel check kills its process group
        run = self.hedger.running.get(key)
        self.hedger.ended(key)
        row, worker = self.rows.pop(key, (None, None))
        if row is not None:
            self.db.end_tile_attempt(row, "superseded", error=f"its duplicate {winner} finished first; stopped",
                                     duration=time.monotonic() - run.since if run else None)
            # what it left on its worker (its work dir, or its .failed) goes with the pair
            self.state.note_copies(t.task.pair_id, worker, [t.task.step.key])

    def delivered(self, t: Tracked, cf) -> list[Outcome]:
        """A good tile's delivery ended: the tile is done (home, checksummed), or it is a hole."""
        task: TileTask = t.task
        outcome, pair_id, index = t.outcome, task.pair_id, task.tile.index
        self.state.tiles.pop(task.dask_key, None)
        self.home[pair_id] -= 1
        exc = "the run stopped" if cf.cancelled() else cf.exception()
        if exc is not None:  # a lost delivery: the tile is made again next run
            self.pairs[pair_id].lost(index, f"delivery failed: {exc}")
            self._note_scratch(pair_id, outcome, failed=True)
            self.db.set_tile(pair_id, index, "interrupted", error=f"delivery failed: {exc}")
            return self._maybe_decide(pair_id)
        delivered = cf.result()
        for d in delivered:
            self.db.record_product(os.path.relpath(d.path, self.out), outcome.key, pair_id, d.size, d.sha256)
        dest = self.out / "pairs" / pair_id / "tiles" / f"{index:03d}"
        roles = {role: os.path.relpath(dest / os.path.relpath(p, outcome.result.workdir), self.out)
                 for role, p in outcome.result.outputs.items()}
        sha = {os.path.relpath(d.path, self.out): d.sha256 for d in delivered}
        self.db.set_tile(pair_id, index, "done", outputs=roles, sha256=sha, error=None, failure_kind=None,
                         **self._param_fields(task))
        # its outputs are home: the mosaics get them from there (pushed), so its work dir goes now
        if self.settings.cleanup_scratch and outcome.worker:
            self.state.to_clean.setdefault(outcome.worker, []).append(outcome.result.workdir)
        return self._maybe_decide(pair_id)

    def _param_fields(self, task: TileTask) -> dict:
        """The parameter set of an attempt, as its rows record it (index and label)."""
        chosen = self.sets[task.param_set] if task.param_set < len(self.sets) else None
        return {"param_set": task.param_set, "param_label": chosen.label if chosen else None}

    def _note_scratch(self, pair_id: str, outcome: Outcome, failed: bool = False) -> None:
        """What an attempt left on its worker besides a work dir that goes home: removed with the pair."""
        if failed or not outcome.ok:  # a failed attempt's work dir (<key>.failed, removed with the key)
            self.state.note_copies(pair_id, outcome.worker, [outcome.key])
        self.state.note_copies(pair_id, outcome.worker, outcome.made_here)

    def interrupt(self) -> None:
        """The run stops: the attempts still open end ``interrupted``, and nothing more is sent."""
        self.stopped = True
        for row, _ in self.rows.values():
            self.db.end_tile_attempt(row, "interrupted", error="the run was interrupted")
        self.rows.clear()

    # -------------------------------------------------------------- verdict
    def _maybe_decide(self, pair_id: str) -> list[Outcome]:
        tiles = self.pairs.get(pair_id)
        if tiles is None or not tiles.finished or self.home.get(pair_id) or self.stopped:
            return []
        del self.pairs[pair_id]
        self.hedger.forget_pair(pair_id)
        decision = tiles.decision()
        if not decision.ok:
            return self._no_mosaic(pair_id, "failed", decision.message)
        pair = self.state.pair_open[pair_id]
        calls = self.calls.pop(pair_id)
        # every good tile is home by now (the decision waits for the deliveries): read from there
        upstream = [self._home_outcome(pair_id, i, calls[i].key) for i in decision.done]
        mosaics = mosaic_calls(self.submitter.recipe, left=pair.left, right=pair.right,
                               tiles=[(tiles.tiles[i], calls[i].key) for i in decision.done])
        self.submitter.submit_mosaics(pair, [c for c in mosaics if c.key in self.state.tracked], upstream)
        return []

    def _home_outcome(self, pair_id: str, index: int, key: str) -> Outcome:
        """A delivered tile (this run's or an earlier one's), as an Outcome whose files are the delivered ones.

        Only the driver holds them (the tile's work dir goes once it is
        home), so the mosaic's worker has them pushed (``at_driver``).
        """
        row = next(r for r in self.db.tiles(pair_id) if r["tile_index"] == index)
        outputs = {role: str(self.out / rel) for role, rel in row["outputs"].items()}
        checksums = {str(self.out / rel): sha for rel, sha in row["sha256"].items()}
        fingerprint = hashlib.sha256(repr(sorted(row["sha256"].items())).encode()).hexdigest()
        workdir = self.out / "pairs" / pair_id / "tiles" / f"{index:03d}"
        return driver_outcome(key, "stereo_tile", pair_id, workdir, outputs, checksums, fingerprint)

    def _no_mosaic(self, pair_id: str, status: str, message: str, blocked_by: str | None = None) -> list[Outcome]:
        """The pair gets no mosaic: its mosaic steps end with the tiles' verdict."""
        self.calls.pop(pair_id, None)
        self.submitter.later.pop(pair_id, None)
        stamp = tracking.now()
        out = []
        for key in sorted(self.state.subject_keys.get(pair_id, ())):
            t = self.state.tracked[key]
            if t.future is None and t.outcome is None and t.task.step in self._mosaic_names:
                out.append(Outcome(key=key, step=t.task.step, subject=pair_id, status=status, ended=stamp,
                                   error=message, blocked_by=blocked_by))
        return out

    @property
    def _mosaic_names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.submitter.recipe.mosaic_steps)
