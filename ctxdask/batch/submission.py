"""Submission: the run's tasks, built from the plan and sent to the scheduler in batches.

An image is ONE dask task (``image-<id>``, :func:`~ctxdask.batch.work.run_image`):
``fetch``, ``validate`` (and ``quality``), then the recipe's image steps
rendered on the worker for the summing mode validation found. The chain is
strictly sequential, and a task per step cost ~4 ms of scheduler and worker
overhead each. When both images of a pair are through
(:meth:`Submitter.chain_rendered`), the pair's recipe steps follow, one task
each, then ``pair_quality``. Every task has a deterministic key
(``image-<id>``, ``point2dem-<L>-<R>``), so resubmission reuses work, and
asks for the recipe's worker resources (``stereo=1`` for the heavy steps; an
image task for those of its calibration steps).

A step the database records as done is submitted for reuse
(``StepTask.reuse``; an image task is told its done steps): its result is
located on the worker and its row is left as it is.

Tasks are queued and sent by :meth:`Submitter.flush`, one ``update-graph``
per run of equal resources. With the preview pass a pair's full pass waits for
its verdict (:mod:`~ctxdask.batch.triage`: :meth:`Submitter.release_pair`).

Tiled stereo: a pair's prep steps go as above, followed by its tile plan
(:class:`~ctxdask.batch.tiles.TilePlanTask`); its mosaic steps are tracked from
then on but sent only once the tiles are decided (:meth:`Submitter.submit_mosaics`),
and each tile attempt is sent on its own (:meth:`Submitter.submit_tile`: a
run-tagged key, no dask retries, away from the workers it failed on). Every
future goes to the one ``as_completed`` of the driver
(:mod:`~ctxdask.batch.tilework` decides on the tiles).
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Iterable, Mapping

from ctxdask import tracking
from ctxdask.batch.dem_products import pair_product_inputs
from ctxdask.batch.model import BatchContext, ImageTask, Outcome, StepTask, image_chain
from ctxdask.batch.pairlist import Pair
from ctxdask.batch.planning import PAIR_QUALITY_STEP, QUALITY_STEP, Chain
from ctxdask.batch.sources import Unavailable
from ctxdask.batch.state import Group, RunState, Tracked
from ctxdask.batch.tiles import TilePlanTask, TileTask, plan_tiles, run_tile
from ctxdask.batch.work import execute, remake, run_image
from ctxdask.daskcompat import Task, TaskRef, live_workers, submit_graph
from ctxdask.quality.alignment import mola_for_pair
from ctxdask.settings import BatchSection
from ctxdask.settings import current as current_settings
from ctxdask.tools.recipe import TILED_PREP_STEPS as TILE_PREP
from ctxdask.tools.recipe import StepCall
from ctxdask.tools.recipe.preview import PREVIEW_STEPS
from ctxdask.tools.recipe.preview import QA_STEP as PREVIEW_QA

__all__ = ["Submitter"]

#: what runs each type of task sent through a graph (an image task: run_image, without upstream)
_RUN = {StepTask: execute, TilePlanTask: plan_tiles}


class Submitter:
    """Builds and sends the tasks of one run.

    Parameters
    ----------
    client : distributed.Client
    state : RunState
    db : TrackingDB
    run_id : int
    chain : Chain
    context : BatchContext
    settings : BatchSection
    done_keys : set of str
        Steps recorded done (reused, never made again).
    known_summing : mapping
        Product id -> summing mode an earlier validation found.
    holders : mapping, optional
        Done step key -> live workers holding its work dir (asked at the
        start, :func:`~ctxdask.batch.scratch.find_holders`): a reused step
        is pulled from there rather than made again.
    """

    def __init__(self, client, state: RunState, db: tracking.TrackingDB, run_id: int, *, chain: Chain,
                 context: BatchContext, settings: BatchSection, done_keys: set[str],
                 known_summing: Mapping[str, int | None], holders: Mapping[str, tuple[str, ...]] | None = None):
        self.client = client
        self.state = state
        self.db = db
        self.run_id = run_id
        self.chain = chain
        self.recipe = chain.recipe
        self.recipe_image = chain.recipe_image
        self.recipe_pair = chain.recipe_pair
        self.context = context
        self.settings = settings
        self.done_keys = done_keys
        self.known_summing = known_summing
        self.holders = dict(holders or {})
        # an image task runs all calibration steps: it needs every resource they need
        self.image_resources: dict[str, float] = {}
        self.step_resources: dict[str, dict[str, float]] = {}
        for step in self.recipe.image_steps:
            if step.name in self.recipe_image:
                self.step_resources[step.name] = dict(step.resources)
                for name, amount in step.resources.items():
                    self.image_resources[name] = max(amount, self.image_resources.get(name, 0))
        self.ac = None
        #: tiled pairs -> the steps after their mosaics (sent with them)
        self.later: dict[str, list[StepCall]] = {}
        #: pairs whose full pass waits for their preview's verdict -> what submit_pair would queue
        self.after_preview: dict[str, tuple] = {}
        # tile keys name the run: a client keeps finished results under their keys for a while, and an
        # earlier run's result (or failure) must never stand in for this run's task
        self.run_tag = uuid.uuid4().hex[:12]

    def start(self, ac) -> None:
        """Where futures go (an ``as_completed``)."""
        self.ac = ac

    # ---------------------------------------------------------------- tasks
    def task(self, key: str, step: str, kind: str, scope: str, subject: str, **kw) -> StepTask:
        """A StepTask; one the database records as done is marked for reuse."""
        timeout = float(self.settings.timeouts.get(step, kw.pop("timeout", 3600.0)))
        kw.setdefault("reuse", key in self.done_keys)
        if kw["reuse"]:
            kw.setdefault("held_by", self.holders.get(key, ()))
        return StepTask(key=key, step=step, kind=kind, scope=scope, subject=subject, timeout=timeout, **kw)

    def submit(self, task: StepTask, upstream: Iterable[str] = (), resources: Mapping | None = None) -> None:
        """Queue a task; :meth:`flush` sends the queue to the scheduler."""
        state = self.state
        upstream = tuple(dict.fromkeys(upstream))
        if upstream:
            task = dataclasses.replace(task, needs=upstream)
        state.tracked[task.key] = Tracked(task, upstream, None, dict(resources or {}))
        state.subject_keys.setdefault(task.subject, set()).add(task.key)
        state.queued.append(task.key)

    def flush(self) -> None:
        """Send the queued tasks, one graph per run of equal resources, and record them as pending.

        One ``update-graph`` message for many tasks instead of one per
        ``Client.submit`` (about 1 ms each): the driver's main cost at
        thousands of pairs.
        """
        state = self.state
        queued, state.queued = state.queued, []
        if not queued:
            return

        def entry(key):
            return state.groups.get(key) or state.tracked.get(key) or state.tiles[key]

        # runs of consecutive tasks with the same resources keep upstream tasks first
        for resources, run in itertools.groupby(queued, key=lambda k: tuple(sorted(entry(k).resources.items()))):
            run = list(run)
            here = set(run)
            graph = {}
            # the context goes inside each task, not as a task of its own: the scheduler sends a task to a
            # worker holding its dependencies, so a context task would pile every image of a small batch
            # on the one worker holding it (one graph pickles the shared object once)
            for key in run:
                if key in state.groups:
                    graph[key] = Task(key, run_image, state.groups[key].task, self.context)
                    continue
                t = entry(key)
                # an image step is reached through its image task
                deps = [TaskRef(d) if d in here else state.future_of(d)
                        for d in dict.fromkeys(state.tracked[u].group or u for u in t.upstream)]
                graph[key] = Task(key, _RUN[type(t.task)], t.task, self.context, *deps)
            futures = submit_graph(self.client, graph, run, resources=dict(resources) or None,
                                   retries=self.settings.retries, fifo_timeout="100 ms")
            for key, future in zip(run, futures):
                entry(key).future = future
                if key in state.groups:
                    for member in state.groups[key].members:
                        state.tracked[member].future = future
            self.ac.update(futures)
        steps = [k for key in queued if key not in state.tiles
                 for k in (state.groups[key].members if key in state.groups else (key,))]
        # steps done before keep their rows: they are reused, not run
        self.db.pending_steps([(k, state.tracked[k].task.scope, state.tracked[k].task.subject,
                                state.tracked[k].task.step)
                               for k in steps if not state.tracked[k].task.reuse], self.run_id)

    # --------------------------------------------------------------- images
    def submit_image(self, pid: str) -> None:
        """Queue the image task of ``pid``: fetch, validate, quality and calibration, one dask task."""
        self.state.image_status[pid] = "running"
        self.db.set_subject("images", pid, "pending")
        try:
            source = self.context.source_for(pid)
        except Exception as exc:  # noqa: BLE001 - e.g. not in the URL list: fetch fails with the reason
            source = Unavailable(str(exc))
        image_steps = self.chain.image_steps
        head = [self.task(f"fetch-{pid}", "fetch", "fetch", "image", pid, source=source)]
        summing = self.known_summing.get(pid)
        if "validate" in image_steps:
            # reusing a validation needs the summing mode it found (unless nothing is calibrated)
            known = summing is not None or not self.recipe_image
            head.append(self.task(f"validate-{pid}", "validate", "validate", "image", pid,
                                  params={"summing": summing} if known else {},
                                  reuse=known and f"validate-{pid}" in self.done_keys))
            if QUALITY_STEP in image_steps:
                head.append(self.task(f"{QUALITY_STEP}-{pid}", QUALITY_STEP, QUALITY_STEP, "image", pid))
        key = f"image-{pid}"
        done = frozenset(k for k in self.chain.image_keys(pid, summing) if k in self.done_keys)
        held = {k: self.holders[k] for k in done if k in self.holders}
        group = self.state.groups[key] = Group(ImageTask(key, pid, tuple(head), done, held), [],
                                               dict(self.image_resources))
        for task in head:
            self.member(group, task)
        # steps an earlier validation rendered are marked pending now, as they were before
        if self.recipe_image and "validate" in image_steps and summing is not None:
            for call in image_chain(self.recipe, pid, summing, self.recipe_image):
                self.member(group, self.task(call.key, call.step, "recipe", "image", pid, call=call,
                                             timeout=call.timeout, params={"summing": summing}))
        self.state.queued.append(key)

    def member(self, group: Group, task: StepTask) -> Tracked:
        """Track ``task`` as a step of the image task ``group``."""
        t = self.state.tracked[task.key] = Tracked(task, (), group.future, self.step_resources.get(task.step, {}),
                                                   group=group.task.key)
        group.members.append(task.key)
        self.state.subject_keys.setdefault(task.subject, set()).add(task.key)
        return t

    def chain_rendered(self, pid: str, outcomes: list[Outcome]) -> None:
        """Note the calls the image task ran, and let the pairs waiting for this image go."""
        state = self.state
        validate = next((o for o in outcomes if o.step == "validate"), None)
        if not outcomes or ("validate" in self.chain.image_steps and (validate is None or not validate.ok)):
            state.image_calls[pid] = []  # the chain never ran: its pairs cannot run
            return
        if validate is not None:
            state.start_time[pid] = validate.info.get("start_time")
            summing = validate.info.get("summing")
            calls = image_chain(self.recipe, pid, summing, self.recipe_image) if self.recipe_image else []
        else:
            summing, calls = None, []
        state.summing[pid] = summing
        state.image_calls[pid] = calls
        state.image_last[pid] = calls[-1].key if calls else (validate or outcomes[0]).key
        state.chained.add(pid)
        for pair in state.pairs_of.get(pid, ()):
            other = pair.right if pid == pair.left else pair.left
            if pair.pair_id in state.pair_open and other in state.chained:
                self.submit_pair(pair)

    # ---------------------------------------------------------------- pairs
    def submit_pair(self, pair: Pair) -> None:
        """Queue the pair's steps: both its images are through."""
        state = self.state
        heads = [state.image_last[pair.left], state.image_last[pair.right]]
        if not self.chain.pair_steps:
            state.subject_keys.setdefault(pair.pair_id, set())
            return
        left, right = state.image_calls[pair.left], state.image_calls[pair.right]
        # MOLA shots for pc_align: tools.asp.mola-points, a file or a folder of per-pair CSVs
        mola = mola_for_pair(current_settings().tools.asp.mola_points, pair.pair_id, pair.left, pair.right) \
            if self.recipe.settings.tools.asp.pc_align else None
        calls = self.recipe.pair_calls(left[-1] if left else "-", right[-1] if right else "-",
                                       left_id=pair.left, right_id=pair.right, mola=mola)
        self.db.set_subject("pairs", pair.pair_id, "pending")
        calls = [c for c in calls if c.step in self.recipe_pair]
        summing = tuple((pid, state.summing.get(pid)) for pid in pair.images)
        gate = next((c for c in calls if c.step == PREVIEW_QA), None)
        if gate is not None and gate.key not in self.done_keys and any(c.step not in PREVIEW_STEPS for c in calls):
            # triage (ctxdask.batch.triage): the full pass waits for the preview's verdict
            self.after_preview[pair.pair_id] = (pair, calls, summing, heads)
            self._submit_steps(pair, [c for c in calls if c.step in PREVIEW_STEPS], summing, heads)
            return
        self._submit_pair_calls(pair, calls, summing, heads)

    def release_pair(self, pair_id: str) -> None:
        """The pair's preview passed: queue its full pass (the preview steps are in flight or done)."""
        waiting = self.after_preview.pop(pair_id, None)
        if waiting is not None:
            self._submit_pair_calls(*waiting)

    def hold_pair(self, pair_id: str) -> None:
        """The pair's preview held it: its full pass is never queued in this run."""
        self.after_preview.pop(pair_id, None)

    def _submit_pair_calls(self, pair: Pair, calls: list[StepCall], summing: tuple, heads: list[str]) -> None:
        """Queue a pair's steps not queued yet, tiled or not, and its products."""
        if self.recipe.tile_step is not None:
            self._submit_tiled_pair(pair, calls, summing, heads)
            return
        self._submit_steps(pair, calls, summing, heads)
        if PAIR_QUALITY_STEP in self.chain.pair_steps:
            self._submit_pair_quality(pair, calls)

    def _submit_steps(self, pair: Pair, calls: list[StepCall], summing: tuple, heads: list[str]) -> None:
        """Queue each of ``calls`` this run has not queued already (the preview's, when the full pass follows)."""
        for call in calls:
            if call.key in self.state.tracked:
                continue
            task = self.task(call.key, call.step, "recipe", "pair", pair.pair_id, call=call, timeout=call.timeout,
                             params={"summing": summing})
            self.submit(task, upstream=[*call.upstream, *heads], resources=call.resources)

    def _submit_tiled_pair(self, pair: Pair, calls: list[StepCall], summing: tuple, heads: list[str]) -> None:
        """Tiled stereo: queue the prep steps and the tile plan that reads them.

        The mosaics are tracked from now on (so the pair stays open) and sent
        when the tiles are decided (:meth:`submit_mosaics`), with the steps that
        read them.
        """
        state = self.state
        prep = {c.step: c for c in calls if c.step in TILE_PREP}
        for call in prep.values():
            if call.key in state.tracked:  # a preview step, queued before its verdict
                continue
            task = self.task(call.key, call.step, "recipe", "pair", pair.pair_id, call=call, timeout=call.timeout,
                             params={"summing": summing})
            self.submit(task, upstream=[*call.upstream, *heads], resources=call.resources)
        names = {"left": pair.left, "right": pair.right}
        mosaics = [step for step in self.recipe.mosaic_steps if step.name in self.recipe_pair]
        for step in mosaics:
            key = step.key_for(names)
            task = self.task(key, step.name, "recipe", "pair", pair.pair_id, timeout=step.timeout,
                             params={"summing": summing})
            state.tracked[key] = Tracked(task, (), None, dict(step.resources))
            state.subject_keys.setdefault(pair.pair_id, set()).add(key)
        if not mosaics or not {"stereo_parse", "mapproject_left"} <= prep.keys():
            return  # the selected chain ends before the tiles
        self.later[pair.pair_id] = calls  # the steps after the mosaics, and the prep steps the pair's QA reads
        s = self.recipe.settings.tools.asp
        key = f"tile_plan-{pair.pair_id}-{self.run_tag}"
        plan = TilePlanTask(key, pair.pair_id, t_srs=s.t_srs, spacing=s.dem_spacing)
        state.tiles[key] = Tracked(plan, (prep["stereo_parse"].key, prep["mapproject_left"].key))
        state.queued.append(key)

    def submit_tile(self, task: TileTask, avoid: Iterable[str] = (), workers: list[str] | None = None) -> None:
        """Send one tile attempt now, on a worker it has not failed on when there is one.

        No dask retries: the tile bookkeeping retries by failure kind. The
        restriction is loose (any worker when no other has the resources);
        ``workers`` (a hedged duplicate's) is strict.
        """
        state, call = self.state, task.step.call
        avoid, extra = set(avoid), {}
        if workers:
            extra = dict(workers=list(workers), allow_other_workers=False)
        elif avoid:
            others = [w for w, info in live_workers(self.client).items()
                      if w not in avoid and all(info.get("resources", {}).get(r, 0) >= n
                                                for r, n in call.resources.items())]
            if others:
                extra = dict(workers=others, allow_other_workers=True)
        upstream = [state.future_of(k) for k in dict.fromkeys(state.tracked[u].group or u for u in call.upstream)]
        future = self.client.submit(run_tile, task, self.context, *upstream, key=task.dask_key, pure=False,
                                    resources=dict(call.resources) or None, retries=0, **extra)
        state.tiles[task.dask_key] = Tracked(task, tuple(call.upstream), future, dict(call.resources))
        self.ac.add(future)

    def submit_mosaics(self, pair: Pair, calls: list[StepCall], upstream: list[Outcome]) -> None:
        """Send a tiled pair's mosaics of its good tiles (``upstream``), then queue what reads them."""
        state = self.state
        for call in calls:
            t = state.tracked[call.key]
            t.task = dataclasses.replace(t.task, call=call, needs=tuple(o.key for o in upstream))
            t.future = self.client.submit(execute, t.task, self.context, *upstream, key=call.key, pure=False,
                                          resources=dict(t.resources) or None)
            self.ac.add(t.future)
        self.db.pending_steps([(c.key, "pair", pair.pair_id, c.step) for c in calls], self.run_id)
        # the pair's summing modes, as its own tracked steps carry them: a step after the mosaic whose
        # files are lost is made again from them (steps.rebuild)
        summing = tuple((pid, state.summing.get(pid)) for pid in pair.images)
        pair_calls = self.later.pop(pair.pair_id, [])
        later = [c for c in pair_calls if c.step not in TILE_PREP]
        for call in later:
            task = self.task(call.key, call.step, "recipe", "pair", pair.pair_id, call=call, timeout=call.timeout,
                             params={"summing": summing})
            self.submit(task, upstream=list(call.upstream), resources=call.resources)
        if PAIR_QUALITY_STEP in self.chain.pair_steps:
            self._submit_pair_quality(pair, [*calls, *pair_calls])

    def _submit_pair_quality(self, pair: Pair, calls: list[StepCall]) -> None:
        """The pair's products (ctxdask.batch.dem_products) from the steps that make them."""
        inputs = pair_product_inputs(calls)
        if "dem" not in inputs:
            return
        state = self.state
        steps = {c.key: {"step": c.step, "program": c.program, "argv": list(c.argv)}
                 for c in [*state.image_calls.get(pair.left, ()), *state.image_calls.get(pair.right, ()), *calls]}
        params = {"inputs": inputs, "steps": steps,
                  "datetime": state.start_time.get(pair.left),
                  "end_datetime": state.start_time.get(pair.right), "left": pair.left, "right": pair.right,
                  # which upstream files are delivered: provenance names those by their place in the pair folder
                  "deliver": sorted(self.context.deliver)}
        key = f"{PAIR_QUALITY_STEP}-{pair.pair_id}"
        task = self.task(key, PAIR_QUALITY_STEP, PAIR_QUALITY_STEP, "pair", pair.pair_id, params=params)
        self.submit(task, upstream=[k for k, _ in inputs.values()])

    def remake(self, outcome: Outcome) -> Outcome:
        """Make a step whose files were lost with their worker again, on a live worker (blocking).

        A tile is not made again here: its delivery is lost, and the next run
        runs it again (a tile's attempts are the tile bookkeeping's to count).
        """
        if outcome.key not in self.state.tracked:
            raise ValueError(f"{outcome.key} is a tile, run again by the next run")
        future = self.client.submit(remake, outcome, self.context, key=f"remake-{outcome.key}",
                                    pure=False, resources=dict(self.state.tracked[outcome.key].resources) or None)
        try:
            return future.result()
        finally:
            future.release()
