"""Running tiled stereo pairs on a dask cluster: prep, one task per tile attempt, mosaics.

:class:`TiledPairs` drives any number of pairs at once on a
:class:`distributed.Client`, all interleaved on the cluster:

1. the prep steps of each pair (``mapproject`` x 2, ``stereo_parse``,
   ``stereo_stats``; :func:`ctxdask.tools.recipe.tiled.tiled_stage`), one
   task each with the step's deterministic key, through
   :func:`ctxdask.batch.work.execute`;
2. the tile plan (:func:`~ctxdask.batch.tiles.plan_tiles`), then one task per
   tile attempt (:func:`~ctxdask.batch.tiles.run_tile`, key
   ``stereo_tile-<L>-<R>-<index>-<run token>-try<n>``) with the tile step's worker
   resources (``stereo=1`` and any memory figure), so every worker with room
   takes tiles of any pair. A retry asks for the workers the tile has not
   failed on (a loose restriction: any worker when there is no other);
3. tile attempts are rows in ``tile_attempts`` (started from the worker's
   event, so a worker that dies mid-tile leaves a ``lost`` row and dask runs
   that tile elsewhere); a good tile's DEM, orthoimage, error image and log
   come home into ``<out>/pairs/<pair>/tiles/<index>/`` (checksummed) before
   the tile counts as done, so a rerun skips it;
4. when a pair's tiles are through, :meth:`PairTiles.decision
   <ctxdask.batch.tiles.PairTiles.decision>`: enough tiles -> ``dem_mosaic``
   of DEM, orthoimage and error image (tile outputs staged onto the mosaic's
   worker; those of earlier runs read from the output folder), delivered to
   ``<out>/pairs/<pair>/results/``; otherwise the pair fails listing its
   failed tiles.

The batch driver runs tiled pairs with the same pieces;
:func:`run_tiled_pairs` is the stand-alone form (tests, benchmarks, notebooks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import queue
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ctxdask import tracking
from ctxdask.batch.delivery import Deliverer
from ctxdask.batch.model import BatchContext, Outcome, StepTask
from ctxdask.batch.pairlist import Pair
from ctxdask.batch.push import Pusher, driver_outcome
from ctxdask.batch.tiles import PairTiles, TileDecision, TilePlan, TilePolicy, TileTask, plan_tiles, run_tile
from ctxdask.batch.work import execute
from ctxdask.settings import current as current_settings
from ctxdask.tools.recipe import TILED_PREP_STEPS, Recipe, Ref, StepCall
from ctxdask.tools.tasks import RunOptions
from ctxdask.tools.tiling import Tile, mosaic_calls, tile_call

__all__ = ["DriverHooks", "TiledPair", "TiledPairs", "run_tiled_pairs"]

_PREP = TILED_PREP_STEPS


@dataclasses.dataclass
class TiledPair:
    """One pair's inputs and, after the run, its end.

    Attributes
    ----------
    left, right : str
        Product ids.
    left_cube, right_cube : str or StepCall
        Level-1, spiceinit-ed cubes: paths the workers can read, or (in a
        batch) the last image step of each image, whose ``cube`` output it is.
    status : str
        ``done`` (a DEM, maybe with holes), ``failed`` or ``interrupted``.
    decision : TileDecision or None
    error : str or None
    """

    left: str
    right: str
    left_cube: str | StepCall
    right_cube: str | StepCall
    status: str = "pending"
    decision: TileDecision | None = None
    error: str | None = None
    products: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def pair_id(self) -> str:
        return f"{self.left}-{self.right}"


def _utc() -> str:
    return tracking.now()


def _cube(value: str | StepCall) -> str | Ref:
    return Ref(value.key, "cube") if isinstance(value, StepCall) else value


@dataclasses.dataclass(frozen=True)
class DriverHooks:
    """How a batch driver takes a tiled pair over once its tiles are through.

    ``mosaics(pair_id, {key: (task, upstream, call)})`` gets the mosaic
    steps to submit (``execute(task, context, *upstream)``; upstream are the
    good tiles' futures or Outcomes), which the driver then tracks, records
    and delivers like its own steps; ``failed(pair_id, status, message)``
    says the pair gets no mosaic: ``failed`` (too few good tiles) or
    ``skipped`` (its prep did not succeed), and why.
    """

    mosaics: Callable[[str, dict[str, tuple[StepTask, list, StepCall]]], None]
    failed: Callable[[str, str, str], None]
    #: ``copies(worker, keys)``: the tiles copied these steps of other subjects (the image cubes) into
    #: that worker's scratch; the driver removes them when their subject is released
    copies: Callable[[str, Iterable[str]], None] | None = None


class TiledPairs:
    """Prep, tiles and mosaics of many pairs on one client, recorded in a tracking database.

    Parameters
    ----------
    client : distributed.Client
    recipe : Recipe
        In tiled mode.
    out : path
        Output folder (tile outputs and mosaics are delivered under
        ``pairs/<pair>/``).
    db : TrackingDB
        Written by this object only, from the calling thread.
    run_id : int, optional
    policy : TilePolicy, optional
    options : RunOptions, optional
    lowres_dem : str, optional
        Default ``tools.asp.lowres-dem``.
    retry_failed : bool
        Run tiles that failed in an earlier run again.
    """

    def __init__(self, client, recipe: Recipe, out: str | os.PathLike, db: tracking.TrackingDB, *,
                 run_id: int | None = None, policy: TilePolicy | None = None, options: RunOptions | None = None,
                 lowres_dem: str | None = None, retry_failed: bool = False, chunk_size: int = 8 * 1024 * 1024,
                 context: BatchContext | None = None, hooks: DriverHooks | None = None):
        if recipe.tile_step is None:
            raise ValueError("the recipe is not in tiled stereo mode (tools.asp.stereo-mode: tiled)")
        self.client = client
        self.recipe = recipe
        self.out = pathlib.Path(out)
        self.db = db
        self.run_id = run_id
        self.policy = policy or TilePolicy.from_config()
        self.options = options or RunOptions.from_config()
        self.lowres_dem = lowres_dem or recipe.settings.lowres_dem
        self.retry_failed = retry_failed
        self.topic = f"ctxdask-tiles-{uuid.uuid4().hex[:12]}"
        # dask keys name the run: a client keeps finished results under their keys for a while,
        # and an earlier run's result (or failure) must never stand in for this run's task
        self.run_tag = self.topic.rsplit("-", 1)[1]
        # mosaics hash their outputs (and log) on their worker for delivery
        self.mosaic_names = mosaics = frozenset(m.name for m in recipe.mosaic_steps)
        #: sends delivered tiles to the mosaics' workers; a batch driver has its own for the whole run
        self.pusher = None
        if context is not None:  # a batch's: its EDR source, runner, pull settings and push topic
            self.ctx = dataclasses.replace(context, topic=self.topic, deliver=context.deliver | mosaics)
        else:
            self.pusher = Pusher(client, self.out, chunk_size=chunk_size)
            self.ctx = BatchContext(recipe=recipe, source=None, options=self.options, topic=self.topic,
                                    chunk_size=chunk_size, deliver=mosaics, push_topic=self.pusher.topic)
        self.hooks = hooks
        #: pair -> futures of upstream tasks its tiles need besides the prep (a batch's image tasks)
        self.upstream: dict[str, list[Any]] = {}
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.deliverer = Deliverer(client, chunk_size=chunk_size)
        self.pairs: dict[str, TiledPair] = {}
        self.prep: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, Any] = {}
        self.state: dict[str, PairTiles] = {}
        self.calls: dict[str, dict[int, StepCall]] = {}
        self.rows: dict[str, int] = {}  # dask key -> open tile_attempts row
        self.row_worker: dict[str, str] = {}
        self.deliveries: dict[Any, tuple[str, int | None, Outcome]] = {}
        self.mosaics: dict[str, int] = {}  # pair -> mosaic steps not yet delivered
        self.finished_keys: set[str] = set()
        #: pair -> worker -> paths (relative to its work root) to remove once the pair is through:
        #: failed attempts' work dirs and the copies its tiles and mosaics pulled
        self.scratch: dict[str, dict[str, set[str]]] = {}
        self.cleanups: list = []
        self.cleanup = current_settings().batch.cleanup_scratch
        self.waiting: dict[Any, tuple[str, str, Any]] = {}  # future -> (kind, pair, extra)

    # ------------------------------------------------------------ submission
    def add(self, pair: TiledPair) -> None:
        """Submit a pair's prep steps and its tile plan."""
        self.pairs[pair.pair_id] = pair
        calls = self.recipe.pair_calls(pair.left_cube, pair.right_cube, left_id=pair.left, right_id=pair.right,
                                       lowres_dem=self.lowres_dem)
        futures: dict[str, Any] = {}
        for call in calls:
            if call.step not in _PREP:
                continue  # alignment and areoid steps after the mosaic belong to the batch driver
            task = StepTask(key=call.key, step=call.step, kind="recipe", scope="pair", subject=pair.pair_id,
                            timeout=float(self.options.timeouts.get(call.step, call.timeout)), call=call,
                            needs=tuple(call.upstream))
            futures[call.step] = self.client.submit(
                execute, task, self.ctx, *(futures[k.split("-")[0]] for k in call.upstream),
                key=f"{call.key}-{self.run_tag}", pure=False, resources=dict(call.resources) or None)
            self.waiting[futures[call.step]] = ("prep", pair.pair_id, call.step)
        self.prep[pair.pair_id] = futures
        s = self.recipe.settings
        plan = self.client.submit(plan_tiles, futures["stereo_parse"], futures["mapproject_left"], self.ctx,
                                  t_srs=s.t_srs, spacing=s.dem_spacing, key=f"tile_plan-{pair.pair_id}-{self.run_tag}",
                                  pure=False)
        self.waiting[plan] = ("plan", pair.pair_id, None)

    def attach(self, pair: TiledPair, prep: Mapping[str, Any], upstream: Iterable[Any] = ()) -> None:
        """Take a pair whose prep steps a batch driver submitted: plan its tiles, run them, mosaic.

        ``prep`` maps the prep step names to their futures; ``upstream`` are
        futures of other tasks the tiles read (the image tasks of the cubes).
        """
        self.pairs[pair.pair_id] = pair
        self.prep[pair.pair_id] = dict(prep)
        self.upstream[pair.pair_id] = list(upstream)
        s = self.recipe.settings
        plan = self.client.submit(plan_tiles, prep["stereo_parse"], prep["mapproject_left"], self.ctx,
                                  t_srs=s.t_srs, spacing=s.dem_spacing, key=f"tile_plan-{pair.pair_id}-{self.run_tag}",
                                  pure=False)
        self.waiting[plan] = ("plan", pair.pair_id, None)

    def _submit_tile(self, pair_id: str, tile: Tile) -> None:
        state = self.state[pair_id]
        attempt = state.start(tile.index)
        call = self.calls[pair_id][tile.index]
        step = StepTask(key=call.key, step=call.step, kind="recipe", scope="pair", subject=pair_id,
                        timeout=float(self.options.timeouts.get(call.step, call.timeout)), call=call,
                        needs=tuple(call.upstream))
        task = TileTask(pair_id, tile, attempt, step, self.run_tag)
        prep = self.prep[pair_id]
        extra: dict[str, Any] = {}
        avoid = state.avoid(tile.index)
        if avoid:
            others = [w for w, info in self._workers().items()
                      if w not in avoid and all(info.get("resources", {}).get(r, 0) >= n
                                                for r, n in call.resources.items())]
            if others:
                extra = dict(workers=others, allow_other_workers=True)
        future = self.client.submit(run_tile, task, self.ctx, *(prep[s] for s in _PREP),
                                    *self.upstream.get(pair_id, ()), key=task.dask_key,
                                    pure=False, resources=dict(call.resources) or None, retries=0, **extra)
        # held only until its outcome is handled: a tile whose outputs went home must not be made again
        # when the worker holding its (now cleaned) result dies
        self.waiting[future] = ("tile", pair_id, task)

    def _workers(self) -> dict[str, dict]:
        from ctxdask.daskcompat import live_workers

        return live_workers(self.client)

    # --------------------------------------------------------------- results
    def _on_event(self, event) -> None:
        self.events.put(event[1] if isinstance(event, tuple) else event)

    def _drain_events(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if not event.get("tile"):
                continue
            pair_id, key = event["pair"], event["dask_key"]
            if key in self.finished_keys:
                continue  # the result came first; its row is written
            tile = self.state[pair_id].tiles[event["index"]]
            if key in self.rows:
                # the same attempt started again: dask moved it off a worker that died
                self.db.end_tile_attempt(self.rows.pop(key), "lost", failure_kind="signal",
                                         error=f"worker {self.row_worker.get(key)} left while the tile ran")
            self.rows[key] = self.db.start_tile_attempt(pair_id, tile, run_id=self.run_id, dask_key=key,
                                                        worker=event["worker"], host=event.get("host", ""),
                                                        started=event.get("started"))
            self.row_worker[key] = event["worker"]

    def _tile_done(self, pair_id: str, task: TileTask, outcome: Outcome) -> None:
        self.finished_keys.add(task.dask_key)
        row = self.rows.pop(task.dask_key, None)
        fields = dict(ended=outcome.ended or _utc(), duration=outcome.duration, exit_code=outcome.exit_code,
                      log_path=outcome.log_path, error=outcome.error,
                      failure_kind=outcome.info.get("failure_kind"))
        if row is None:  # no start event arrived (the worker died at once): record the attempt anyway
            row = self.db.start_tile_attempt(pair_id, task.tile, run_id=self.run_id, dask_key=task.dask_key,
                                             worker=outcome.worker, host=outcome.host, started=outcome.started)
        status = "done" if outcome.ok else ("timeout" if outcome.status == "timeout" else
                                            "interrupted" if outcome.status == "interrupted" else "failed")
        self.db.end_tile_attempt(row, status, **fields)
        self._note_scratch(pair_id, outcome)
        verdict = self.state[pair_id].record(outcome)
        if verdict == "done":
            dest = self.out / "pairs" / pair_id / "tiles" / f"{task.tile.index:03d}"
            self.deliveries[self.deliverer.submit(outcome, dest)] = (pair_id, task.tile.index, outcome)
        elif verdict == "retry":
            self.db.set_tile(pair_id, task.tile.index, "pending", failure_kind=outcome.info.get("failure_kind"),
                             error=self.state[pair_id].reason[task.tile.index])
            self._submit_tile(pair_id, task.tile)
        else:
            self.db.set_tile(pair_id, task.tile.index, self.state[pair_id].state[task.tile.index],
                             failure_kind=outcome.info.get("failure_kind"),
                             error=self.state[pair_id].reason[task.tile.index])

    def _delivered(self, cf) -> None:
        pair_id, index, outcome = self.deliveries.pop(cf)
        try:
            delivered = cf.result()
        except Exception as exc:  # noqa: BLE001 - a lost delivery: the tile is made again next run
            if index is None:
                self._finish(pair_id, "failed", f"delivering the mosaic failed: {exc}")
            else:
                self.state[pair_id].lost(index, f"delivery failed: {exc}")
                self.scratch.setdefault(pair_id, {}).setdefault(outcome.worker, set()).add(outcome.key)
                self.db.set_tile(pair_id, index, "interrupted", error=f"delivery failed: {exc}")
            return
        dest = self.out / "pairs" / pair_id
        rel = {os.path.relpath(d.path, self.out): d.sha256 for d in delivered}
        for d in delivered:
            self.db.record_product(os.path.relpath(d.path, self.out), outcome.key, pair_id, d.size, d.sha256)
        if index is None:
            self.pairs[pair_id].products.update({os.path.basename(d.path): d.path for d in delivered})
            self.mosaics[pair_id] -= 1
            if self.mosaics[pair_id] == 0:
                self._finish(pair_id, "done", self.pairs[pair_id].decision.message)
            return
        roles = {role: os.path.relpath(dest / "tiles" / f"{index:03d}" / os.path.relpath(p, outcome.result.workdir),
                                       self.out) for role, p in outcome.result.outputs.items()}
        self.db.set_tile(pair_id, index, "done", outputs=roles, sha256=rel, error=None, failure_kind=None)
        # its outputs are home: the mosaics get them from there (pushed), so its work dir goes now
        self._clean(outcome.worker, [outcome.result.workdir])

    def _finish(self, pair_id: str, status: str, message: str | None) -> None:
        pair = self.pairs[pair_id]
        if pair.status in ("done", "failed", "skipped"):
            return
        pair.status, pair.error = status, message if status != "done" else None
        self._release(pair_id)
        for worker, paths in self.scratch.pop(pair_id, {}).items():
            self._clean(worker, paths)
        if self.hooks is None:
            self.db.set_subject("pairs", pair_id, "failed" if status == "skipped" else status, message)
        elif status != "done":
            self.hooks.failed(pair_id, status, message or status)

    def _release(self, pair_id: str) -> None:
        """Drop a finished pair's futures: a client keeps results while anyone holds their futures, and
        a later run submitting the same deterministic key must not get this run's (now cleaned) result."""
        self.prep.pop(pair_id, None)
        self.upstream.pop(pair_id, None)

    def _note_scratch(self, pair_id: str, outcome: Outcome) -> None:
        """Remember what a tile or mosaic left on its worker besides its delivered work dir."""
        if outcome.worker and not outcome.ok:  # a failed attempt's work dir (<key>.failed, removed with the key)
            self.scratch.setdefault(pair_id, {}).setdefault(outcome.worker, set()).add(outcome.key)
        self._note_copies(pair_id, outcome.worker, outcome.made_here)

    def _note_copies(self, pair_id: str, worker: str, made_here: Iterable[str]) -> None:
        """Remember the inputs a task of the pair copied to (or made again on) ``worker``."""
        if not worker:
            return
        mine = self.scratch.setdefault(pair_id, {}).setdefault(worker, set())
        others = []
        for key in made_here:
            if pair_id in key:  # the pair's prep outputs and tiles: no other pair reads them
                mine.update((key, os.path.join("staged", key)))
            else:
                others.append(key)
        if others and self.hooks is not None and self.hooks.copies is not None:
            self.hooks.copies(worker, others)
        elif others:
            mine.update(p for key in others for p in (key, os.path.join("staged", key)))

    def _clean(self, worker: str, paths: Iterable[str]) -> None:
        """Remove work dirs or copies on ``worker`` (only there: another worker may hold its own)."""
        from ctxdask.batch.scratch import remove_workdirs

        paths = sorted(paths)
        if not worker or not paths or not self.cleanup:
            return
        self.cleanups.append(self.client.submit(remove_workdirs, paths, self.options.work_dir, workers=[worker],
                                                allow_other_workers=False, pure=False, priority=-10))
        self.cleanups = [f for f in self.cleanups if not f.done()]

    def _plan_ready(self, pair_id: str, plan: TilePlan) -> None:
        pair = self.pairs[pair_id]
        self.db.register_tiles(pair_id, plan.tiles, plan.footprints)
        previous = {r["tile_index"]: r for r in self.db.tiles(pair_id)}
        # a tile counts as done only with its delivered outputs still there, checksums recorded
        for row in previous.values():
            if row["status"] == "done" and not all((self.out / p).is_file() for p in row["outputs"].values()):
                row["status"] = "pending"
        state = PairTiles(pair_id, plan.tiles, self.policy, previous=previous, retry_failed=self.retry_failed)
        self.state[pair_id] = state
        self.plans[pair_id] = plan
        self._note_copies(pair_id, plan.worker, plan.made_here)
        self.calls[pair_id] = {
            t.index: tile_call(self.recipe, t, left=pair.left, right=pair.right, left_cube=_cube(pair.left_cube),
                               right_cube=_cube(pair.right_cube), lowres_dem=self.lowres_dem, t_srs=plan.t_srs,
                               spacing=plan.spacing)
            for t in plan.tiles}
        for tile in state.to_run():
            self._submit_tile(pair_id, tile)
        self._maybe_decide(pair_id)

    def _maybe_decide(self, pair_id: str) -> None:
        state = self.state[pair_id]
        if not state.finished or any(p == pair_id for p, _, _ in self.deliveries.values()) \
                or pair_id in self.mosaics:
            return
        decision = state.decision()
        self.pairs[pair_id].decision = decision
        if not decision.ok:
            self._finish(pair_id, "failed", decision.message)
            return
        self._submit_mosaics(pair_id, decision)

    def _earlier_outcome(self, pair_id: str, index: int) -> Outcome:
        """A delivered tile (this run's or an earlier one's), as an Outcome whose files are the delivered ones.

        Only the driver holds them (the tile's work dir goes once it is
        home), so the mosaic's worker has them pushed (``at_driver``).
        """
        row = next(r for r in self.db.tiles(pair_id) if r["tile_index"] == index)
        key = self.calls[pair_id][index].key
        outputs = {role: str(self.out / rel) for role, rel in row["outputs"].items()}
        checksums = {str(self.out / rel): sha for rel, sha in row["sha256"].items()}
        fingerprint = hashlib.sha256(repr(sorted(row["sha256"].items())).encode()).hexdigest()
        workdir = self.out / "pairs" / pair_id / "tiles" / f"{index:03d}"
        return driver_outcome(key, "stereo_tile", pair_id, workdir, outputs, checksums, fingerprint)

    def _submit_mosaics(self, pair_id: str, decision: TileDecision) -> None:
        pair, state = self.pairs[pair_id], self.state[pair_id]
        tiles = [(state.tiles[i], self.calls[pair_id][i].key) for i in decision.done]
        # every good tile is home by now (the decision waits for the deliveries): read from there
        upstream = [self._earlier_outcome(pair_id, i) for i in decision.done]
        calls = mosaic_calls(self.recipe, left=pair.left, right=pair.right, tiles=tiles)
        self.mosaics[pair_id] = len(calls)
        handed: dict[str, tuple[StepTask, list, StepCall]] = {}
        for call in calls:
            task = StepTask(key=call.key, step=call.step, kind="recipe", scope="pair", subject=pair_id,
                            timeout=float(self.options.timeouts.get(call.step, call.timeout)), call=call,
                            needs=tuple(k for _, k in tiles))
            if self.hooks is not None:  # the driver's own key and context: it tracks the step from here
                handed[call.key] = (task, upstream, call)
                continue
            future = self.client.submit(execute, task, self.ctx, *upstream, key=f"{call.key}-{self.run_tag}",
                                        pure=False, resources=dict(call.resources) or None)
            self.waiting[future] = ("mosaic", pair_id, call.step)
        if self.hooks is not None:
            self.hooks.mosaics(pair_id, handed)
            self._finish(pair_id, "done", self.pairs[pair_id].decision.message)

    def _handle(self, kind: str, pair_id: str, extra, future) -> None:
        try:
            value = future.result()
        except Exception as exc:  # noqa: BLE001 - a task that raised (or a worker lost too often)
            value = exc
        if kind == "prep":
            if isinstance(value, Outcome):
                self.db.upsert_step(value.key, scope="pair", subject=pair_id, step=extra, status=value.status,
                                    run_id=self.run_id, worker=value.worker, host=value.host,
                                    started=value.started, ended=value.ended, duration=value.duration,
                                    exit_code=value.exit_code, log_path=value.log_path, error=value.error,
                                    blocked_by=value.blocked_by)
        elif kind == "plan":
            if isinstance(value, TilePlan):
                self._plan_ready(pair_id, value)
            else:
                prep = [f.result() for f in self.prep[pair_id].values() if f.status == "finished"]
                bad = next((o for o in prep if isinstance(o, Outcome) and not o.ok), None)
                self._finish(pair_id, "skipped" if bad else "failed",
                             f"not run: {bad.key} is {bad.status}" if bad else f"planning the tiles failed: {value}")
        elif kind == "tile":
            if not isinstance(value, Outcome):
                value = Outcome(key=extra.step.key, step="stereo_tile", subject=pair_id, status="failed",
                                error=f"{type(value).__name__}: {value}",
                                info={"index": extra.tile.index, "failure_kind": "signal", "transient": True})
            self._tile_done(pair_id, extra, value)
            self._maybe_decide(pair_id)
        elif kind == "mosaic":
            if isinstance(value, Outcome):
                self._note_scratch(pair_id, dataclasses.replace(value, status="done"))
            if isinstance(value, Outcome) and value.ok:
                cf = self.deliverer.submit(value, self.out / "pairs" / pair_id)
                self.deliveries[cf] = (pair_id, None, value)
            else:
                why = value.error if isinstance(value, Outcome) else str(value)
                self._finish(pair_id, "failed", f"{extra} failed: {why}")

    # ------------------------------------------------------------------ loop
    @property
    def open_pairs(self) -> list[str]:
        return [p for p, pair in self.pairs.items() if pair.status not in ("done", "failed", "skipped")]

    def start(self, pairs: Iterable[TiledPair] = ()) -> None:
        """Listen for the tiles' start events and submit ``pairs`` (more can be :meth:`add`-ed later)."""
        self.client.subscribe_topic(self.topic, self._on_event)
        if self.pusher is not None:
            self.pusher.start()
        with self.db.transaction():
            for pair in pairs:
                self.db.register([Pair(pair.left, pair.right)], [pair.left, pair.right])
                self.db.set_subject("pairs", pair.pair_id, "running")
                self.add(pair)

    def poll(self, wait_seconds: float = 0.1) -> list[TiledPair]:
        """Handle what finished (waiting at most ``wait_seconds``); return the pairs that ended now.

        One pass of the loop, so that an outer loop (the batch driver's) can
        interleave it with its own work.
        """
        from distributed import wait

        before = set(self.open_pairs)
        if self.waiting and wait_seconds > 0:
            with contextlib.suppress(TimeoutError):
                wait(list(self.waiting), timeout=wait_seconds, return_when="FIRST_COMPLETED")
        elif wait_seconds > 0:
            time.sleep(min(wait_seconds, 0.05))
        done = [f for f in self.waiting if f.done()]
        ready = [cf for cf in self.deliveries if cf.done()]
        with self.db.transaction():
            self._drain_events()
            for future in done:
                kind, pair_id, extra = self.waiting.pop(future)
                self._handle(kind, pair_id, extra, future)
                if kind != "prep":  # (a pair's prep futures stay until the pair ends: retries read them)
                    # handled: let the scheduler forget it now, not when the garbage collector finds the
                    # Future, or a worker dying meanwhile has it made again (a tile run twice)
                    future.release()
            for cf in ready:
                pair_id = self.deliveries[cf][0]
                self._delivered(cf)
                if pair_id in self.state:
                    self._maybe_decide(pair_id)
            if not self.waiting and not self.deliveries:
                for pair_id in self.open_pairs:
                    self._finish(pair_id, "failed", "internal error: no work left in flight")
        return [self.pairs[p] for p in before - set(self.open_pairs)]

    def stop(self, *, cancel: bool = False) -> None:
        """Stop listening; with ``cancel``, cancel everything in flight (running programs are stopped).

        Deliveries end first (:meth:`Deliverer.stop`) and those that completed
        are recorded: their files are in the output folder.
        """
        self.deliverer.stop()
        with self.db.transaction():
            for cf in list(self.deliveries):
                self._delivered(cf)
        if cancel:
            with contextlib.suppress(Exception):
                self.client.cancel(list(self.waiting))
            with self.db.transaction():
                for row in self.rows.values():
                    self.db.end_tile_attempt(row, "interrupted", error="the run was interrupted")
                for pair_id in self.open_pairs:
                    self.db.set_subject("pairs", pair_id, "interrupted", "the run was interrupted")
            self.rows.clear()
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self.topic)
        self.deliverer.shutdown(cancel=True)
        if self.pusher is not None:
            self.pusher.stop()
        if not cancel:  # let the last clean-ups finish before a LocalCluster goes away
            from distributed import wait

            with contextlib.suppress(Exception):
                wait(self.cleanups, timeout=30)
        for held in (self.prep, self.upstream, self.waiting):
            held.clear()

    def run(self, pairs: Iterable[TiledPair], *, timeout: float | None = None) -> list[TiledPair]:
        """Run ``pairs`` to their end; return them with status, decision and products."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.start(pairs)
        try:
            while self.open_pairs:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"tiled pairs still open after {timeout:g} s: {self.open_pairs}")
                self.poll()
            with self.db.transaction():
                self._drain_events()
        except BaseException:
            self.stop(cancel=True)
            raise
        self.stop()
        return list(self.pairs.values())


def run_tiled_pairs(client, recipe: Recipe, pairs: Iterable[TiledPair | tuple[str, str, str, str]],
                    out: str | os.PathLike, *, db: str | os.PathLike | None = None,
                    policy: TilePolicy | None = None, options: RunOptions | None = None,
                    lowres_dem: str | None = None, retry_failed: bool = False,
                    timeout: float | None = None) -> list[TiledPair]:
    """Run tiled stereo for ``pairs`` (``TiledPair`` or ``(left, right, left_cube, right_cube)``).

    Holds the database lock for the run; work a dead run left in flight is
    marked interrupted first, so a rerun redoes only tiles that are not done.
    """
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    db_path = tracking.database_path(db, out)
    pairs = [p if isinstance(p, TiledPair) else TiledPair(*p) for p in pairs]
    with tracking.lock_database(db_path), tracking.TrackingDB(db_path) as tdb:
        tdb.interrupt_stale()
        run_id = tdb.start_run(pairs_file="(tiled pairs)", out=str(out), settings={"mode": "tiled"})
        runner = TiledPairs(client, recipe, out, tdb, run_id=run_id, policy=policy, options=options,
                            lowres_dem=lowres_dem, retry_failed=retry_failed)
        try:
            result = runner.run(pairs, timeout=timeout)
        except BaseException as exc:
            tdb.end_run(run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", str(exc))
            raise
        tdb.end_run(run_id, "done")
        return result


def tile_rows(db: tracking.TrackingDB, pair_id: str) -> list[dict]:
    """The tiles of a pair with their attempts (for status, the report and the tile map)."""
    attempts: dict[int, list[dict]] = {}
    for row in db.tile_attempts(pair_id):
        attempts.setdefault(row["tile_index"], []).append(row)
    return [{**row, "attempt_rows": attempts.get(row["tile_index"], [])} for row in db.tiles(pair_id)]
