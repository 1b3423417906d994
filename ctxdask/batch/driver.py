"""The batch driver: a pair list through the CTX chain on a dask cluster.

:func:`run_batch` (and ``ctxdask batch``) plans, submits and tracks the work:

1. The pair list is read and checked (:mod:`~ctxdask.batch.pairlist`), the
   tracking database opened (:mod:`~ctxdask.batch.db`) and locked, and work a
   dead driver left in flight is marked ``interrupted``.
2. Planning: a pair whose steps (and its images' steps) are all ``done`` is
   skipped; one with a ``failed``/``timeout`` step waits for ``retry_failed``;
   every other pair is planned, with its images.
3. Image work runs once per image however many pairs share it, as ONE dask
   task per image (``image-<id>``, :func:`~ctxdask.batch.work.run_image`):
   ``fetch``, ``validate`` (and ``quality``), then the recipe's image steps
   (calibration) rendered on the worker for the summing mode validation
   found. The chain is strictly sequential, and a task per step cost ~4 ms of
   scheduler and worker overhead each. The task returns one Outcome per
   step, each recorded as its own row (``validate-<id>``...). When both
   images of a pair are through, the pair's recipe steps follow, one task
   each. Every task has a deterministic key (``image-<id>``,
   ``point2dem-<L>-<R>``), so resubmission reuses work, and the recipe's
   worker resources (``stereo=1`` for the heavy steps; an image task asks for
   those of its calibration steps).
4. Results arrive through :class:`distributed.as_completed` and go to the
   database as they come, in one transaction per batch of results; a worker
   event announces each step's start (``running``, worker, start time).
5. Outputs of delivered steps come home (:mod:`~ctxdask.batch.delivery`); a
   step counts as ``done`` only once its files are in the output folder,
   checksummed. Then the work dirs are removed.
6. Ctrl-C (or SIGTERM) cancels everything in flight (running programs are
   stopped through the tasks' cancel check), records it as ``interrupted`` and
   returns; the next run resumes.

Deadlines: recipe steps run under the runner's hard deadline (process-group
kill); the in-process steps (fetch, validate) and any worker that stops
answering are covered by the driver's watchdog, which gives up on a step
``watchdog-margin`` seconds past its deadline.

A worker that dies takes nothing with it: the scheduler reruns its tasks, the
step work dirs stay on disk (a rerun finds them through the step manifests)
and delivery reads from another worker on the same host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import logging
import os
import pathlib
import queue
import signal
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ctxdask import config
from ctxdask.batch import db as dbmod
from ctxdask.batch.delivery import Deliverer, DeliveryLost
from ctxdask.batch.dem_products import pair_product_inputs
from ctxdask.batch.pairlist import Pair, PairList, Rejected, read_pairs
from ctxdask.batch.progress import Progress
from ctxdask.batch.sources import EDRSource, LocalEDRSource, make_source
from ctxdask.batch.work import (
    BatchContext,
    ImageTask,
    Outcome,
    StepTask,
    execute,
    image_chain,
    remake,
    remove_workdirs,
    run_image,
)
from ctxdask.quality.alignment import mola_for_pair
from ctxdask.quality.provenance import complete_provenance
from ctxdask.tools.recipe import Recipe, StepCall, build_recipe
from ctxdask.tools.tasks import RunOptions

__all__ = ["BatchSettings", "BatchSummary", "run_batch", "select_steps"]

logger = logging.getLogger(__name__)

#: the image steps the batch adds before the recipe's
PRE_STEPS = ("fetch", "validate")
#: the batch's own quality steps: per image (when the recipe's calibration does not
#: measure quality itself) after validation, per pair after the DEM
QUALITY_STEP, PAIR_QUALITY_STEP = "quality", "pair_quality"
#: seconds between two passes of the result loop
_TICK = 0.05
#: aggregate status of an image or pair: the first of these found among its steps wins
_PRIORITY = ("failed", "timeout", "interrupted", "skipped", "running", "pending")


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """The ``batch`` settings, read once on the driver (see ``ctxdask.yaml``)."""

    retries: int = 2
    timeouts: Mapping[str, float] = dataclasses.field(default_factory=dict)
    watchdog_margin: float = 120.0
    deliver: frozenset[str] = frozenset()
    delivery: str = "transfer"
    chunk_size: int = 8 * 1024 * 1024
    chunk_window: int = 4
    delivery_threads: int = 2
    stall_timeout: float = 300.0
    scratch: str | None = None
    local_workers: int | None = None
    local_threads: int = 2
    cleanup_scratch: bool = True
    progress: bool = True
    quality: bool = True

    @classmethod
    def from_config(cls, **overrides: Any) -> BatchSettings:
        """Read ``ctxdask.batch.*`` now; ``overrides`` (field names, ``None`` ignored) win."""
        b = config.get("batch", {}) or {}
        values: dict[str, Any] = dict(
            retries=int(b.get("retries", 2)),
            timeouts={k: float(v) for k, v in (b.get("timeouts") or {}).items()},
            watchdog_margin=float(b.get("watchdog-margin", 120)),
            deliver=frozenset(b.get("deliver") or ()),
            delivery=str(b.get("delivery", "transfer")),
            chunk_size=int(b.get("chunk-size", cls.chunk_size)),
            chunk_window=int(b.get("chunk-window", 4)),
            delivery_threads=int(b.get("delivery-threads", 2)),
            stall_timeout=float(b.get("stall-timeout", 300)),
            scratch=b.get("scratch"),
            local_workers=b.get("local-workers"),
            local_threads=int(b.get("local-threads", 2)),
            cleanup_scratch=bool(b.get("cleanup-scratch", True)),
            progress=bool(b.get("progress", True)),
            quality=bool(b.get("quality", True)),
        )
        for name, value in overrides.items():
            if value is None:
                continue
            if name == "timeouts":
                value = {**values["timeouts"], **value}
            elif name == "deliver":
                value = frozenset(value)
            values[name] = value
        return cls(**values)


@dataclasses.dataclass
class BatchSummary:
    """What a batch run did.

    Attributes
    ----------
    run_id : int
    status : {"done", "interrupted"}
        ``done`` when the run went through its plan (some pairs may have
        failed), ``interrupted`` after Ctrl-C.
    out, database : str
    duration : float
        Seconds.
    planned : int
        Pairs this run worked on.
    already_done : int
        Pairs skipped because an earlier run finished them.
    waiting : int
        Pairs left alone because of an earlier failure (use ``retry_failed``).
    pairs, images : dict
        Status -> count over the whole database after the run.
    rejected : tuple of Rejected
        Pair-list lines that were skipped.
    failures : list of dict
        Steps that failed, timed out or were interrupted (key, error, log...).
    dashboard : str
    """

    run_id: int
    status: str
    out: str
    database: str
    duration: float
    planned: int
    already_done: int
    waiting: int
    pairs: dict[str, int]
    images: dict[str, int]
    rejected: tuple[Rejected, ...]
    failures: list[dict]
    dashboard: str = ""

    @property
    def ok(self) -> bool:
        """True when every listed pair is done."""
        return self.status == "done" and set(self.pairs) <= {"done"}

    def __str__(self) -> str:
        def fmt(counts):
            return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"

        lines = [
            f"ctxdask batch run {self.run_id}: {self.status} in {self.duration:.1f} s "
            f"({self.planned} pairs worked on, {self.already_done} already done, "
            f"{self.waiting} waiting for --retry-failed)",
            f"  pairs:  {fmt(self.pairs)}",
            f"  images: {fmt(self.images)}",
        ]
        if self.rejected:
            lines.append(f"  {len(self.rejected)} pair-list lines skipped: "
                         + "; ".join(str(r) for r in self.rejected[:5])
                         + (" ..." if len(self.rejected) > 5 else ""))
        for f in self.failures[:10]:
            first = (f.get("error") or "").strip().splitlines()[:1]
            lines.append(f"  {f['status']:11s} {f['key']}: {first[0] if first else ''}")
        if len(self.failures) > 10:
            lines.append(f"  ... and {len(self.failures) - 10} more (ctxdask status {self.out})")
        lines.append(f"  results: {self.out}")
        lines.append(f"  database: {self.database}")
        return "\n".join(lines)


def select_steps(recipe: Recipe, steps: Iterable[str] | None, *,
                 quality: bool = True) -> tuple[list[str], list[str]]:
    """Image and pair step names to run for a ``--steps`` selection.

    Steps need everything before them in the chain
    (``fetch -> validate [-> quality] -> image steps -> pair steps
    [-> pair_quality]``), so a selection means "the chain up to the last step
    named". ``quality`` is there when no image step of the recipe writes a
    ``quality`` output (the native calibration measures quality itself);
    ``pair_quality`` when a pair step writes a ``dem``; neither with
    ``quality=False`` (setting ``batch.quality``).

    Raises
    ------
    ValueError
        A name that is not a step of the chain.
    """
    measured = any("quality" in s.outputs for s in recipe.image_steps)
    own = () if measured or not quality else (QUALITY_STEP,)
    image = [*PRE_STEPS, *own, *(s.name for s in recipe.image_steps)]
    pair = [s.name for s in recipe.pair_steps]
    if quality and any("dem" in s.outputs for s in recipe.pair_steps):
        pair.append(PAIR_QUALITY_STEP)
    chain = image + pair
    if steps is None:
        return image, pair
    wanted = [s for s in steps]
    unknown = [s for s in wanted if s not in chain]
    if unknown:
        raise ValueError(f"unknown steps {unknown}; the chain is {' -> '.join(chain)}")
    if not wanted:
        raise ValueError("no steps selected")
    last = max(chain.index(s) for s in wanted)
    return [s for s in image if chain.index(s) <= last], [s for s in pair if chain.index(s) <= last]


# ----------------------------------------------------------------- helpers
def _aggregate(statuses: Iterable[str]) -> str:
    seen = set(statuses)
    for status in _PRIORITY:
        if status in seen:
            return status
    return "done"


def _pair_dir(out: pathlib.Path, subject: str, scope: str) -> pathlib.Path:
    return out / ("pairs" if scope == "pair" else "images") / subject


def _local_scratch(out: pathlib.Path) -> str:
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"ctxdask-scratch-{digest}")


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


@dataclasses.dataclass(frozen=True)
class _Unavailable:
    """The source for a product the configured source cannot provide: fails with the reason."""

    reason: str

    def __call__(self, product_id: str, scratch: str) -> str:
        from ctxdask.exceptions import MissingFileError

        raise MissingFileError(None, self.reason)


@dataclasses.dataclass
class _Tracked:
    task: StepTask
    upstream: tuple[str, ...]
    future: Any = None
    resources: Mapping[str, float] = dataclasses.field(default_factory=dict)
    since: float | None = None  # monotonic time of the running event
    outcome: Outcome | None = None
    delivering: bool = False
    group: str | None = None  # key of the image task the step runs in


@dataclasses.dataclass
class _Group:
    """One image task: its steps (in chain order, as far as known) and its future."""

    task: ImageTask
    members: list[str]
    resources: Mapping[str, float]
    future: Any = None


class _Driver:
    """One run: planning, submission, the result loop. Not thread-safe; one per run."""

    def __init__(self, client, pairs: PairList, out: pathlib.Path, db: dbmod.TrackingDB, run_id: int, *,
                 recipe: Recipe, source: EDRSource, image_steps: list[str], pair_steps: list[str],
                 settings: BatchSettings, options: RunOptions, retry_failed: bool,
                 runner: Callable | None, progress: bool):
        self.client = client
        self.pairs = pairs
        self.out = out
        self.db = db
        self.run_id = run_id
        self.recipe = recipe
        self.source = source
        self.image_steps = image_steps
        self.pair_steps = pair_steps
        self.recipe_image = [s for s in image_steps if s not in (*PRE_STEPS, QUALITY_STEP)]
        self.recipe_pair = [s for s in pair_steps if s != PAIR_QUALITY_STEP]
        self.start_time: dict[str, str | None] = {}
        self.settings = settings
        self.options = options
        self.retry_failed = retry_failed
        self.runner = runner
        self.show_progress = progress
        self.topic = f"ctxdask-batch-{uuid.uuid4().hex[:12]}"
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.tracked: dict[str, _Tracked] = {}
        self.groups: dict[str, _Group] = {}
        #: worker -> work dirs to remove, sent as one task per worker per pass of the result loop
        self.to_clean: dict[str, list[str]] = {}
        #: summing mode of each image as an earlier run's validation found it
        self.known_summing: dict[str, int | None] = {}
        self.image_calls: dict[str, list[StepCall]] = {}
        self.image_last: dict[str, str] = {}
        self.image_status: dict[str, str] = {}
        self.image_error: dict[str, str] = {}
        self.subject_keys: dict[str, set[str]] = {}
        self.pairs_of: dict[str, list[Pair]] = {}
        self.pair_open: dict[str, Pair] = {}
        self.image_refs: dict[str, int] = {}
        self.chained: set[str] = set()
        self.cleanups: list = []
        self.running: set[str] = set()
        self.deliveries: dict[Any, str] = {}
        self.deliverer = Deliverer(client, mode=settings.delivery, chunk_size=settings.chunk_size,
                                   window=settings.chunk_window, threads=settings.delivery_threads,
                                   stall_timeout=settings.stall_timeout, remake=self._remake)
        self.summing: dict[str, int | None] = {}
        self.queued: list[str] = []
        #: key -> workers other than its producer that hold copies of its outputs
        self.copies: dict[str, set[str]] = {}
        self.context = BatchContext(
            recipe=recipe, source=source, options=options, image_steps=tuple(self.recipe_image),
            deliver=frozenset(settings.deliver), topic=self.topic, runner=runner,
            chunk_size=settings.chunk_size, window=settings.chunk_window, timeouts=dict(settings.timeouts))
        # an image task runs all calibration steps: it needs every resource they need
        self.image_resources: dict[str, float] = {}
        self.step_resources: dict[str, dict[str, float]] = {}
        for step in recipe.image_steps:
            if step.name in self.recipe_image:
                self.step_resources[step.name] = dict(step.resources)
                for name, amount in step.resources.items():
                    self.image_resources[name] = max(amount, self.image_resources.get(name, 0))
        # a task, not scattered data: a worker that joins or restarts can always get (or remake) it
        self.context_future = None
        self.ac = None
        self.progress: Progress | None = None
        self.already_done = self.waiting = 0

    # ---------------------------------------------------------------- plan
    def _image_keys(self, pid: str, summing: int | None) -> list[str]:
        keys = [f"{s}-{pid}" for s in (*PRE_STEPS, QUALITY_STEP) if s in self.image_steps]
        if self.recipe_image:
            keys += [c.key for c in self.recipe.image_calls(pid, "-", summing=summing) if c.step in self.recipe_image]
        return keys

    def _pair_keys(self, pair: Pair) -> list[str]:
        names = {"left": pair.left, "right": pair.right}
        keys = [s.key_for(names) for s in self.recipe.pair_steps if s.name in self.pair_steps]
        if PAIR_QUALITY_STEP in self.pair_steps:
            keys.append(f"{PAIR_QUALITY_STEP}-{pair.pair_id}")
        return keys

    def plan(self) -> list[Pair]:
        """Pairs to work on now; counts those done before and those waiting for retry_failed."""
        status = self.db.step_status()
        summing = {r["product_id"]: r["summing"] for r in self.db.rows("SELECT product_id, summing FROM images")}
        self.known_summing = summing
        image_state: dict[str, str] = {}
        for pid in self.pairs.images:
            states = {status.get(k, "pending") for k in self._image_keys(pid, summing.get(pid))}
            image_state[pid] = ("done" if states == {"done"} else
                                "blocked" if states & {"failed", "timeout"} and not self.retry_failed else "todo")
        planned = []
        for pair in self.pairs:
            own = {status.get(k, "pending") for k in self._pair_keys(pair)}
            images = {image_state[pair.left], image_state[pair.right]}
            if images == {"done"} and own <= {"done"}:
                self.already_done += 1
            elif not self.retry_failed and ("blocked" in images or own & {"failed", "timeout"}):
                self.waiting += 1
            else:
                planned.append(pair)
        return planned

    # -------------------------------------------------------------- submit
    def _task(self, key: str, step: str, kind: str, scope: str, subject: str, **kw) -> StepTask:
        timeout = float(self.settings.timeouts.get(step, kw.pop("timeout", 3600.0)))
        return StepTask(key=key, step=step, kind=kind, scope=scope, subject=subject, timeout=timeout, **kw)

    def _submit(self, task: StepTask, upstream: Iterable[str] = (), resources: Mapping | None = None) -> None:
        """Queue a task; :meth:`_flush` sends the queue to the scheduler."""
        upstream = tuple(dict.fromkeys(upstream))
        if upstream:
            task = dataclasses.replace(task, needs=upstream)
        self.tracked[task.key] = _Tracked(task, upstream, None, dict(resources or {}))
        self.subject_keys.setdefault(task.subject, set()).add(task.key)
        self.queued.append(task.key)

    def _flush(self) -> None:
        """Send the queued tasks, one graph per run of equal resources, and record them as pending.

        One ``update-graph`` message for many tasks instead of one per
        ``Client.submit`` (about 1 ms each): the driver's main cost at
        thousands of pairs.
        """
        from dask._task_spec import Task, TaskRef

        queued, self.queued = self.queued, []
        if not queued:
            return

        def resources_of(key):
            return tuple(sorted((self.groups[key] if key in self.groups else self.tracked[key]).resources.items()))

        # runs of consecutive tasks with the same resources keep upstream tasks first
        for resources, run in itertools.groupby(queued, key=resources_of):
            run = list(run)
            here = set(run)
            graph = {}
            for key in run:
                if key in self.groups:
                    graph[key] = Task(key, run_image, self.groups[key].task, self.context_future)
                    continue
                t = self.tracked[key]
                # an image step is reached through its image task
                deps = [TaskRef(d) if d in here else self._future_of(d)
                        for d in dict.fromkeys(self.tracked[u].group or u for u in t.upstream)]
                graph[key] = Task(key, execute, t.task, self.context_future, *deps)
            futures = self.client.get(graph, run, sync=False, resources=dict(resources) or None,
                                      retries=self.settings.retries, fifo_timeout="100 ms")
            for key, future in zip(run, futures):
                if key in self.groups:
                    self.groups[key].future = future
                    for member in self.groups[key].members:
                        self.tracked[member].future = future
                else:
                    self.tracked[key].future = future
            self.ac.update(futures)
        steps = [k for key in queued for k in (self.groups[key].members if key in self.groups else (key,))]
        self.db.pending_steps([(k, self.tracked[k].task.scope, self.tracked[k].task.subject, self.tracked[k].task.step)
                               for k in steps], self.run_id)

    def _future_of(self, key: str):
        return self.groups[key].future if key in self.groups else self.tracked[key].future

    def _submit_image(self, pid: str) -> None:
        """Queue the image task of ``pid``: fetch, validate, quality and calibration, one dask task."""
        self.image_status[pid] = "running"
        self.db.set_subject("images", pid, "pending")
        try:
            source = self.context.source_for(pid)
        except Exception as exc:  # noqa: BLE001 - e.g. not in the URL list: fetch fails with the reason
            source = _Unavailable(str(exc))
        head = [self._task(f"fetch-{pid}", "fetch", "fetch", "image", pid, source=source)]
        if "validate" in self.image_steps:
            head.append(self._task(f"validate-{pid}", "validate", "validate", "image", pid))
            if QUALITY_STEP in self.image_steps:
                head.append(self._task(f"{QUALITY_STEP}-{pid}", QUALITY_STEP, QUALITY_STEP, "image", pid))
        key = f"image-{pid}"
        group = self.groups[key] = _Group(ImageTask(key, pid, tuple(head)), [], dict(self.image_resources))
        for task in head:
            self._member(group, task)
        # steps an earlier validation rendered are marked pending now, as they were before
        summing = self.known_summing.get(pid)
        if self.recipe_image and "validate" in self.image_steps and summing is not None:
            for call in image_chain(self.recipe, pid, summing, self.recipe_image):
                self._member(group, self._task(call.key, call.step, "recipe", "image", pid, call=call,
                                               timeout=call.timeout, params={"summing": summing}))
        self.queued.append(key)

    def _member(self, group: _Group, task: StepTask) -> _Tracked:
        """Track ``task`` as a step of the image task ``group``."""
        t = self.tracked[task.key] = _Tracked(task, (), group.future, self.step_resources.get(task.step, {}),
                                              group=group.task.key)
        group.members.append(task.key)
        self.subject_keys.setdefault(task.subject, set()).add(task.key)
        return t

    def _chain_rendered(self, pid: str, outcomes: list[Outcome]) -> None:
        """Note the calls the image task ran, and let the pairs waiting for this image go."""
        validate = next((o for o in outcomes if o.step == "validate"), None)
        if not outcomes or ("validate" in self.image_steps and (validate is None or not validate.ok)):
            self.image_calls[pid] = []  # the chain never ran: its pairs cannot run
            return
        if validate is not None:
            self.start_time[pid] = validate.info.get("start_time")
            summing = validate.info.get("summing")
            calls = image_chain(self.recipe, pid, summing, self.recipe_image) if self.recipe_image else []
        else:
            summing, calls = None, []
        self.summing[pid] = summing
        self.image_calls[pid] = calls
        self.image_last[pid] = calls[-1].key if calls else (validate or outcomes[0]).key
        self._image_chain_submitted(pid)

    def _image_chain_submitted(self, pid: str) -> None:
        """Submit the pairs of ``pid`` whose other image is through as well."""
        self.chained.add(pid)
        for pair in self.pairs_of.get(pid, ()):
            other = pair.right if pid == pair.left else pair.left
            if pair.pair_id in self.pair_open and other in self.chained:
                self._submit_pair(pair)

    def _submit_pair(self, pair: Pair) -> None:
        heads = [self.image_last[pair.left], self.image_last[pair.right]]
        if not self.pair_steps:
            self.subject_keys.setdefault(pair.pair_id, set())
            return
        left, right = self.image_calls[pair.left], self.image_calls[pair.right]
        # MOLA shots for pc_align: tools.asp.mola-points, a file or a folder of per-pair CSVs
        mola = mola_for_pair(config.get("tools.asp.mola-points", None), pair.pair_id, pair.left, pair.right) \
            if self.recipe.settings.pc_align else None
        calls = self.recipe.pair_calls(left[-1] if left else "-", right[-1] if right else "-",
                                       left_id=pair.left, right_id=pair.right, mola=mola)
        self.db.set_subject("pairs", pair.pair_id, "pending")
        calls = [c for c in calls if c.step in self.recipe_pair]
        summing = tuple((pid, self.summing.get(pid)) for pid in pair.images)
        for call in calls:
            task = self._task(call.key, call.step, "recipe", "pair", pair.pair_id, call=call, timeout=call.timeout,
                              params={"summing": summing})
            self._submit(task, upstream=[*call.upstream, *heads], resources=call.resources)
        if PAIR_QUALITY_STEP in self.pair_steps:
            self._submit_pair_quality(pair, calls)

    def _submit_pair_quality(self, pair: Pair, calls: list[StepCall]) -> None:
        """DEM products after the last step that makes a DEM (with point2dem's orthoimage)."""
        inputs = pair_product_inputs(calls)
        if "dem" not in inputs:
            return
        steps = {c.key: {"step": c.step, "program": c.program, "argv": list(c.argv)}
                 for c in [*self.image_calls.get(pair.left, ()), *self.image_calls.get(pair.right, ()), *calls]}
        params = {"inputs": inputs, "steps": steps,
                  "datetime": self.start_time.get(pair.left), "end_datetime": self.start_time.get(pair.right),
                  "left": pair.left, "right": pair.right}
        key = f"{PAIR_QUALITY_STEP}-{pair.pair_id}"
        task = self._task(key, PAIR_QUALITY_STEP, PAIR_QUALITY_STEP, "pair", pair.pair_id, params=params)
        self._submit(task, upstream=[k for k, _ in inputs.values()])

    def _remake(self, outcome: Outcome) -> Outcome:
        """Make a step whose files were lost with their worker again, on a live worker (blocking)."""
        future = self.client.submit(remake, outcome, self.context_future, key=f"remake-{outcome.key}",
                                    pure=False, resources=dict(self.tracked[outcome.key].resources) or None)
        try:
            return future.result()
        finally:
            future.release()

    # ------------------------------------------------------------ results
    def _outcome_of(self, key: str, future, result) -> Outcome:
        """The Outcome a finished future stands for (errors and cancellations included)."""
        t = self.tracked[key]
        if isinstance(result, Outcome):
            return result
        base = dict(key=key, step=t.task.step, subject=t.task.subject, ended=dbmod.now())
        failed_up = [u for u in t.upstream if self.tracked[u].future is not None
                     and self.tracked[u].future.status in ("error", "cancelled")]
        if failed_up or any(self.tracked[u].outcome is not None and not self.tracked[u].outcome.ok
                            for u in t.upstream):
            up = (failed_up or list(t.upstream))[0]
            return Outcome(**base, status="skipped", error=f"not run: {up} did not succeed")
        if future.status == "cancelled":
            if t.outcome is not None:  # already recorded (watchdog)
                return t.outcome
            return Outcome(**base, status="interrupted", error="cancelled")
        exc = result
        name = type(exc).__name__
        if name == "KilledWorker":
            why = (f"the workers running this step died {exc.args[0] if exc.args else ''} times "
                   "(out of memory? a crash in a library?); see the worker logs")
            return Outcome(**base, status="failed", error=why)
        return Outcome(**base, status="failed",
                       error=f"{_error_text(exc)} (after {self.settings.retries} retries)")

    def _handle_group(self, key: str, future, result) -> None:
        """Record the Outcomes of an image task, one per step, and let its pairs go."""
        group = self.groups[key]
        pid = group.task.subject
        outcomes = list(result) if isinstance(result, list) else []
        for o in outcomes:
            if o.key not in self.tracked:  # rendered on the worker, announced late or not at all
                self._member(group, StepTask(key=o.key, step=o.step, kind="recipe", scope="image", subject=pid,
                                             timeout=0.0, params={"summing": o.info.get("summing")}))
        reported = {o.key for o in outcomes}
        missing = [m for m in group.members if m not in reported and self.tracked[m].outcome is None]
        if isinstance(result, list):
            first = next((o for o in outcomes if not o.ok), None)
            why = (f"not run: {first.key} is {first.status}" if first is not None
                   else "not run: not a step of this image's chain")
            outcomes += [self._lost(m, "skipped", why) for m in missing]
        else:
            outcomes += self._group_lost(group, future, result, missing)
        self._chain_rendered(pid, [o for o in outcomes if o.key in reported])
        for o in outcomes:
            if self.tracked[o.key].future is not None:
                self._handle(o.key, o)

    def _lost(self, key: str, status: str, error: str) -> Outcome:
        t = self.tracked[key]
        return Outcome(key=key, step=t.task.step, subject=t.task.subject, status=status, ended=dbmod.now(),
                       error=error)

    def _group_lost(self, group: _Group, future, result, missing: list[str]) -> list[Outcome]:
        """Outcomes of the steps of an image task that failed, was cancelled or lost its workers.

        The step that was running (the last announced) takes the task's
        failure; those announced before it finished but their results are
        lost (``interrupted``: the next run redoes them, cheaply through their
        manifests); the rest are ``skipped``.
        """
        if not missing:
            return []
        announced = [m for m in missing if self.tracked[m].since is not None]
        culprit = announced[-1] if announced else missing[0]
        timed_out = next((m for m in group.members if self.tracked[m].outcome is not None
                          and self.tracked[m].outcome.status == "timeout"), None)
        if timed_out is not None:  # the watchdog cancelled the task
            failure = self._lost(culprit, "skipped", f"not run: {timed_out} is timeout")
        elif future.status == "cancelled":
            failure = self._lost(culprit, "interrupted", "cancelled")
        else:
            failure = self._outcome_of(culprit, future, result)
        out = []
        for m in missing:
            if m == culprit:
                out.append(failure)
            elif m in announced:
                out.append(self._lost(m, "interrupted", f"its result was lost with the image task: {failure.error}"))
            else:
                out.append(self._lost(m, "skipped", f"not run: {culprit} is {failure.status}"))
        return out

    def _record(self, outcome: Outcome, status: str | None = None, error: str | None = None) -> None:
        t = self.tracked[outcome.key]
        # scope, subject and step too: a step rendered on the worker may have no row yet
        self.db.upsert_step(
            outcome.key, scope=t.task.scope, subject=outcome.subject, step=outcome.step, run_id=self.run_id,
            status=status or outcome.status, worker=outcome.worker or None,
            host=outcome.host or None, started=outcome.started or None, ended=outcome.ended or None,
            duration=round(outcome.duration, 6), exit_code=outcome.exit_code, log_path=outcome.log_path,
            error=error if error is not None else outcome.error,
        )

    def _handle(self, key: str, outcome: Outcome) -> None:
        t = self.tracked[key]
        if t.outcome is not None and t.outcome.status == "timeout":
            return  # the watchdog already gave up on it
        t.outcome = outcome
        t.since = None
        self.running.discard(key)
        for made in outcome.made_here:
            self.copies.setdefault(made, set()).add(outcome.worker)
        if outcome.ok and outcome.files:
            # done only once its products are home
            t.delivering = True
            self._record(outcome, status="running", error="delivering results")
            dest = _pair_dir(self.out, t.task.subject, t.task.scope)
            self.deliveries[self.deliverer.submit(outcome, dest)] = key
            return
        self._record(outcome)
        self._after(key)

    def _after(self, key: str) -> None:
        """Follow-up of a step that reached its final state."""
        t = self.tracked[key]
        o = t.outcome
        pid = t.task.subject
        if o.ok:
            self._record_quality(t.task, o)
        if t.task.step == "validate" and o.ok:
            self.db.set_subject("images", pid, "running", summing=o.info.get("summing"),
                                lines=o.info.get("lines"), validation=o.info.get("summary"))
        self._check_subjects(t.task)

    def _record_quality(self, task: StepTask, o: Outcome) -> None:
        """Store an image's grade and metrics, or a pair's DEM products, with delivered paths."""
        folder = "pairs" if task.scope == "pair" else "images"

        def delivered(rel: str | None) -> str | None:
            return f"{folder}/{task.subject}/{rel}" if rel else None

        record = o.info.get("quality")
        if record:
            thumb = o.result.outputs.get("thumbnail") if o.result is not None else None
            self.db.set_quality(task.subject, grade=record.get("grade"), reasons=record.get("grade_reasons", []),
                                metrics=record.get("metrics", {}),
                                thumbnail=delivered(os.path.relpath(thumb, o.result.workdir) if thumb else None))
        elif task.kind == PAIR_QUALITY_STEP:
            files = o.info.get("files", {})
            self.db.set_pair_quality(task.subject, statistics=o.info.get("statistics", {}),
                                     **{role: delivered(files.get(role)) for role in
                                        ("stac", "hillshade", "colour_relief", "ortho_thumbnail")})

    def _keys_final(self, subject: str) -> bool:
        return all(self.tracked[k].outcome is not None and not self.tracked[k].delivering
                   for k in self.subject_keys.get(subject, ()))

    def _subject_status(self, subject: str) -> tuple[str, str | None]:
        outcomes = [self.tracked[k].outcome for k in self.subject_keys.get(subject, ())]
        status = _aggregate(o.status for o in outcomes)
        error = next((o.error for o in outcomes if o.status == status and o.error), None)
        return status, error

    def _check_subjects(self, task: StepTask) -> None:
        if task.scope == "image":
            pid = task.subject
            if self.image_status.get(pid) == "running" and pid in self.image_calls and self._keys_final(pid):
                status, error = self._subject_status(pid)
                self.image_status[pid], self.image_error[pid] = status, error
                self.db.set_subject("images", pid, status, error)
            for pair in self.pairs_of.get(pid, ()):
                self._check_pair(pair)
        else:
            self._check_pair(self.pair_open.get(task.subject))

    def _check_pair(self, pair: Pair | None) -> None:
        if pair is None or pair.pair_id not in self.pair_open:
            return
        images = [self.image_status.get(i) for i in pair.images]
        if "running" in images:
            return
        submitted = pair.pair_id in self.subject_keys
        if submitted and not self._keys_final(pair.pair_id):
            return
        bad = sorted(((i, s) for i, s in zip(pair.images, images) if s != "done"),
                     key=lambda item: _PRIORITY.index(item[1]) if item[1] in _PRIORITY else len(_PRIORITY))
        if bad:
            which, status = bad[0]
            side = "left" if which == pair.left else "right"
            first = (self.image_error.get(which) or "").strip().splitlines()[:1]
            error = f"{side} image {which} is {status}: {first[0] if first else ''}"
            if submitted:
                own, _ = self._subject_status(pair.pair_id)
                status = own if own not in ("done", "skipped") else status
        else:
            status, error = self._subject_status(pair.pair_id) if submitted else ("done", None)
        out_dir = _pair_dir(self.out, pair.pair_id, "pair")
        if submitted:
            self._complete_provenance(pair, out_dir)
        self.db.set_subject("pairs", pair.pair_id, status, error,
                            output_dir=str(out_dir) if out_dir.is_dir() else None)
        del self.pair_open[pair.pair_id]
        self.progress.finish_pair(status)
        self._release(self.subject_keys.get(pair.pair_id, ()))
        for pid in pair.images:
            self.image_refs[pid] -= 1
            if self.image_refs[pid] == 0:
                self._release(self.subject_keys.get(pid, ()))

    def _write_catalog(self) -> None:
        """The batch's STAC catalog over every pair item delivered so far (``ctxdask stac`` does the same)."""
        if not any(self.out.glob("pairs/*/*.stac.json")):
            return
        from ctxdask.quality.stac import rebuild_catalog

        try:
            rebuild_catalog(self.out)
        except Exception as exc:  # noqa: BLE001 - the products stand without a catalog; `ctxdask stac` redoes it
            logger.warning("could not write the STAC catalog of %s: %s", self.out, exc)
            return
        with self.db.transaction():  # the items now link to their collection: new sizes and checksums
            for item in self.out.glob("pairs/*/*.stac.json"):
                self._rerecord(item, f"{PAIR_QUALITY_STEP}-{item.parent.name}", item.parent.name)

    def _rerecord(self, path: pathlib.Path, key: str, subject: str) -> None:
        """Record a delivered file again after the driver changed it (size, sha256)."""
        from ctxdask.quality.provenance import file_sha256

        self.db.record_product(str(path), key, subject, path.stat().st_size, file_sha256(path))

    def _complete_provenance(self, pair: Pair, out_dir: pathlib.Path) -> None:
        """Times, exit codes and hosts of the runs the pair_quality worker could not see (from the database)."""
        keys = [*self.subject_keys.get(pair.pair_id, ()), *(k for pid in pair.images
                                                           for k in self.subject_keys.get(pid, ()))]
        marks = ",".join("?" * len(keys))
        rows = self.db.rows(f"SELECT key, started, ended, exit_code, host, log_path FROM steps WHERE key IN ({marks})",
                            keys) if keys else []
        edrs = {}
        for pid in pair.images:  # EDR checksums when the driver sees the EDR folder (plain files only)
            with contextlib.suppress(Exception):
                path = self.source.find(pid) if isinstance(self.source, LocalEDRSource) else None
                if path and path.lower().endswith(".img"):
                    edrs[pid] = path
        try:
            if complete_provenance(out_dir / "provenance.json", rows, edrs):
                self._rerecord(out_dir / "provenance.json", f"{PAIR_QUALITY_STEP}-{pair.pair_id}", pair.pair_id)
        except (OSError, ValueError) as exc:  # the products stand without it
            logger.warning("%s: could not complete provenance.json: %s", pair.pair_id, exc)

    def _release(self, keys: Iterable[str]) -> None:
        """Drop futures of finished work and clean its scratch on the workers."""
        by_worker: dict[str, list[str]] = {}
        for key in keys:
            t = self.tracked[key]
            o = t.outcome
            if o is not None and o.worker:
                workdir = o.result.workdir if o.result is not None else os.path.join(
                    self.options.work_dir or "", key)
                if o.result is not None or self.options.work_dir:
                    by_worker.setdefault(o.worker, []).append(workdir)
            t.future = None
            if t.group is not None and t.group in self.groups:
                self.groups.pop(t.group).future = None
            for worker in self.copies.pop(key, ()):
                # copies pulled or remade on other workers: paths relative to their own work root
                by_worker.setdefault(worker, []).extend([key, os.path.join("staged", key)])
        if not self.settings.cleanup_scratch:
            return
        for worker, paths in by_worker.items():
            self.to_clean.setdefault(worker, []).extend(paths)

    def _clean(self) -> None:
        """Remove released work dirs: one task per worker for everything released since the last call."""
        for worker, paths in self.to_clean.items():
            # preferred on the worker that made them; elsewhere the paths simply do not exist
            self.cleanups.append(self.client.submit(remove_workdirs, paths, self.options.work_dir, workers=[worker],
                                                    allow_other_workers=True, pure=False, priority=-10))
        self.to_clean = {}
        self.cleanups = [f for f in self.cleanups if not f.done()]

    def _delivered(self, cf) -> None:
        key = self.deliveries.pop(cf)
        t = self.tracked[key]
        t.delivering = False
        o = t.outcome
        try:
            files = cf.result()
        except DeliveryLost as exc:
            self._record(o, status="interrupted", error=str(exc))
            t.outcome = dataclasses.replace(o, status="interrupted", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded, the batch goes on
            self._record(o, status="failed", error=f"delivery failed: {_error_text(exc)}")
            t.outcome = dataclasses.replace(o, status="failed", error=f"delivery failed: {exc}")
        else:
            for f in files:
                self.db.record_product(f.path, key, t.task.subject, f.size, f.sha256)
            log = next((f.path for f in files if os.path.basename(f.path) == os.path.basename(o.log_path or "")),
                       o.log_path)
            self._record(dataclasses.replace(o, log_path=log))
        self._after(key)

    # --------------------------------------------------------- run events
    def _on_event(self, event) -> None:
        self.events.put(event[1])

    def _drain_events(self) -> None:
        while True:
            try:
                msg = self.events.get_nowait()
            except queue.Empty:
                return
            t = self.tracked.get(msg.get("key"))
            group = self.groups.get(msg.get("group") or "")
            if t is None and group is not None and group.future is not None:
                # a calibration step the worker rendered from validation's summing mode
                t = self._member(group, StepTask(key=msg["key"], step=msg["step"], kind=msg.get("kind", "recipe"),
                                                 scope="image", subject=msg["subject"],
                                                 timeout=float(msg.get("timeout") or 3600.0)))
            if t is None or t.outcome is not None or t.future is None:
                continue
            t.since = time.monotonic()
            self.running.add(msg["key"])
            self.db.upsert_step(msg["key"], scope=t.task.scope, subject=t.task.subject, step=t.task.step,
                                run_id=self.run_id, status="running", worker=msg.get("worker"),
                                host=msg.get("host"), started=msg.get("started"), attempts="+1")

    def _watchdog(self) -> None:
        now = time.monotonic()
        for key in list(self.running):
            t = self.tracked[key]
            if t.since is None or t.outcome is not None or t.future is None:
                continue
            limit = t.task.timeout + self.settings.watchdog_margin
            if now - t.since > limit:
                outcome = Outcome(key=key, step=t.task.step, subject=t.task.subject, status="timeout",
                                  ended=dbmod.now(), duration=now - t.since,
                                  error=f"{t.task.step} gave no result {limit:g} s after it started "
                                        f"(deadline {t.task.timeout:g} s); the driver gave up on it")
                t.outcome = outcome
                self.running.discard(key)
                self._record(outcome)
                t.future.cancel()
                self._after(key)

    def running_count(self) -> int:
        return len(self.running)

    # ---------------------------------------------------------------- loop
    def run(self, planned: list[Pair]) -> str:
        from distributed import as_completed

        self.ac = as_completed()
        self.context_future = self.client.submit(_identity, self.context, key=f"ctxdask-context-{self.topic}",
                                                 pure=False)
        self.client.subscribe_topic(self.topic, self._on_event)
        for pair in planned:
            self.pair_open[pair.pair_id] = pair
            for pid in pair.images:
                self.pairs_of.setdefault(pid, []).append(pair)
                self.image_refs[pid] = self.image_refs.get(pid, 0) + 1
        self.progress = Progress(len(planned), already=self.already_done,
                                 dashboard=getattr(self.client, "dashboard_link", None),
                                 enabled=self.show_progress)
        try:
            with self.db.transaction():
                for pid in self.pairs_of:
                    self._submit_image(pid)
                self._flush()
            next_watch = time.monotonic() + 1.0
            tick = time.monotonic()
            while self.pair_open or self.deliveries:
                # one pass per tick at most: results, events and database commits come in batches
                time.sleep(max(0.0, tick + _TICK - time.monotonic()))
                tick = time.monotonic()
                batch = self.ac.next_batch(block=False)
                done_deliveries = [cf for cf in self.deliveries if cf.done()]
                if not batch and not done_deliveries and self.events.empty() and tick < next_watch:
                    continue
                with self.db.transaction():
                    self._drain_events()
                    for future, result in self._results(batch):
                        key = future.key
                        if key in self.groups and self.groups[key].future is not None:
                            self._handle_group(key, future, result)
                        elif key in self.tracked and self.tracked[key].future is not None:
                            self._handle(key, self._outcome_of(key, future, result))
                    for cf in done_deliveries:
                        self._delivered(cf)
                    if time.monotonic() >= next_watch:
                        self._watchdog()
                        next_watch = time.monotonic() + 1.0
                    self._flush()
                self._clean()
                self.progress.set_running(self.running_count())
                if not self.pair_open and not self.deliveries:
                    break
                if not batch and self.ac.is_empty() and not self.deliveries and self.pair_open:
                    self._stuck()
            # let the last scratch clean-ups finish before a LocalCluster goes away
            from distributed import wait

            self._clean()
            with contextlib.suppress(Exception):
                wait(self.cleanups, timeout=30)
            self._write_catalog()
            return "done"
        except KeyboardInterrupt:
            self._interrupt()
            return "interrupted"
        finally:
            self.progress.close()
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(self.topic)
            self.deliverer.shutdown(cancel=True)

    def _results(self, batch: list) -> list[tuple]:
        """(future, result) of a batch of completed futures: one gather for all that finished."""
        finished = [f for f in batch if f.status == "finished"]
        try:
            values = self.client.gather(finished, errors="skip") if finished else []
        except Exception:  # noqa: BLE001 - lost between completion and gather; ask one by one
            values = None
        if values is None or len(values) != len(finished):
            return [(f, self._one_result(f)) for f in batch]
        out = list(zip(finished, values))
        out += [(f, self._one_result(f)) for f in batch if f.status != "finished"]
        return out

    @staticmethod
    def _one_result(future):
        if future.status == "finished":
            try:
                return future.result(timeout=60)
            except Exception as exc:  # noqa: BLE001
                return exc
        if future.status == "cancelled":
            return None
        return future.exception()

    def _stuck(self) -> None:
        """Nothing in flight but pairs still open: a bookkeeping error; close them as failed."""
        for pair in list(self.pair_open.values()):
            logger.error("pair %s has no work in flight; marking it failed", pair.pair_id)
            self.db.set_subject("pairs", pair.pair_id, "failed", "internal error: no work left in flight")
            del self.pair_open[pair.pair_id]
            self.progress.finish_pair("failed")

    def _interrupt(self) -> None:
        """Stop everything in flight and record it as interrupted."""
        from distributed import Event

        with contextlib.suppress(Exception):
            Event(self.options.cancel_event, client=self.client).set()
        live = list({t.future.key: t.future for t in self.tracked.values()
                     if t.future is not None and t.outcome is None}.values())
        with contextlib.suppress(Exception):
            self.client.cancel(live)
        self._wait_for_workers_idle()
        stamp = dbmod.now()
        with self.db.transaction():
            for key, t in self.tracked.items():
                if t.outcome is None or t.delivering:
                    self.db.upsert_step(key, status="interrupted", ended=stamp,
                                        error="the batch was interrupted (Ctrl-C)")
            for pid, status in self.image_status.items():
                if status == "running":
                    self.db.set_subject("images", pid, "interrupted", "the batch was interrupted")
            for pair_id in self.pair_open:
                self.db.set_subject("pairs", pair_id, "interrupted", "the batch was interrupted")

    def _wait_for_workers_idle(self, seconds: float | None = None) -> None:
        """Give cancelled programs time to be stopped by their tasks' cancel checks."""
        grace = (self.options.grace or 10.0) + 5.0 if seconds is None else seconds
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                busy = sum(self.client.run(_executing).values())
            except Exception:  # noqa: BLE001 - the cluster may be going away
                return
            if not busy:
                return
            time.sleep(0.2)


def _identity(value: Any) -> Any:
    return value


def _executing(dask_worker) -> int:
    return len(dask_worker.state.executing)


# -------------------------------------------------------------- public API
@contextlib.contextmanager
def _cluster(client, scheduler: str | None, local: int | None, settings: BatchSettings):
    """Yield (client, is_local): the given client, one to ``scheduler``, or a LocalCluster."""
    if client is not None:
        yield client, False
        return
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as c:
            yield c, False
        return
    n = local or settings.local_workers or os.cpu_count() or 1
    with LocalCluster(n_workers=int(n), threads_per_worker=settings.local_threads, processes=True,
                      resources={"stereo": 1}, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        yield c, True


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Let SIGTERM stop a batch like Ctrl-C (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_batch(
    pairs: str | os.PathLike | PairList | Iterable[tuple[str, str]],
    out: str | os.PathLike,
    *,
    edr_dir: str | os.PathLike | None = None,
    source: EDRSource | None = None,
    client=None,
    scheduler: str | None = None,
    local: int | None = None,
    db: str | os.PathLike | None = None,
    retry_failed: bool = False,
    steps: Iterable[str] | None = None,
    timeouts: Mapping[str, float] | None = None,
    recipe: Recipe | None = None,
    runner: Callable | None = None,
    deliver: Iterable[str] | None = None,
    delivery: str | None = None,
    retries: int | None = None,
    progress: bool | None = None,
    scratch: str | os.PathLike | None = None,
) -> BatchSummary:
    """Run a stereo-pair list through the CTX chain on a dask cluster.

    Parameters
    ----------
    pairs : path, PairList or iterable of (left, right)
        The pair list (see :func:`ctxdask.batch.read_pairs`).
    out : path
        Output folder: delivered products (``pairs/<L>-<R>/``,
        ``images/<id>/``) and, by default, the tracking database.
    edr_dir : path, optional
        Folder of EDRs (``<PRODUCT_ID>.IMG`` any case, or ``.IMG.bz2``/``.gz``).
    source : callable, optional
        Another EDR source, ``source(product_id, scratch) -> path`` (see
        :mod:`ctxdask.batch.sources`); wins over ``edr_dir``.
    client : distributed.Client, optional
        Use this cluster. Otherwise ``scheduler`` (an address), otherwise a
        LocalCluster of ``local`` worker processes (each with ``stereo=1``).
    db : path or URL, optional
        Tracking database (default ``<out>/ctxdask-batch.sqlite``).
    retry_failed : bool
        Run failed and timed-out steps again (a plain rerun leaves them).
    steps : list of str, optional
        Run the chain only up to the last step named (``["validate"]``).
    timeouts : mapping, optional
        Step name -> seconds, overriding ``tools.timeouts`` / ``batch.timeouts``.
    recipe : Recipe, optional
        Default :func:`ctxdask.tools.recipe.build_recipe` with ``timeouts``.
    runner : callable, optional
        Replaces :func:`ctxdask.tools.tasks.run_step` for recipe steps on the
        workers (tests, benchmarks, custom executors).
    deliver : list of str, optional
        Steps whose outputs are brought home (default ``batch.deliver``).
    delivery : {"transfer", "shared"}, optional
    retries : int, optional
        dask retries of transient errors (default ``batch.retries``).
    progress : bool, optional
        Show the progress bar (default ``batch.progress``).
    scratch : path, optional
        Root of step work dirs (default: see ``batch.scratch`` and
        ``tools.work-dir``).

    Returns
    -------
    BatchSummary
        Also after Ctrl-C (``status == "interrupted"``).

    Examples
    --------
    >>> summary = run_batch("pairs.txt", "results", edr_dir="edr", local=4)  # doctest: +SKIP
    >>> print(summary)  # doctest: +SKIP
    """
    t0 = time.monotonic()
    out = pathlib.Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pairlist = read_pairs(pairs)
    settings = BatchSettings.from_config(retries=retries, timeouts=dict(timeouts or {}) or None,
                                         deliver=deliver, delivery=delivery, progress=progress,
                                         scratch=os.fspath(scratch) if scratch else None)
    recipe = recipe or build_recipe(timeouts={k: v for k, v in (timeouts or {}).items()
                                              if k not in (*PRE_STEPS, QUALITY_STEP, PAIR_QUALITY_STEP)})
    image_steps, pair_steps = select_steps(recipe, steps, quality=settings.quality)
    src = make_source(edr_dir, source)
    db_path = dbmod.database_path(db, out)

    with dbmod.lock_database(db_path), dbmod.TrackingDB(db_path) as tdb, \
            _cluster(client, scheduler, local, settings) as (c, is_local), _sigterm_as_interrupt():
        tdb.interrupt_stale()
        work_dir = settings.scratch or (_local_scratch(out) if is_local else None)
        options = RunOptions.from_config(cancel_event=f"ctxdask-batch-cancel-{uuid.uuid4().hex[:12]}",
                                         timeouts=dict(timeouts or {}),
                                         **({"work_dir": work_dir} if work_dir else {}))
        dashboard = getattr(c, "dashboard_link", "") or ""
        tdb.register(pairlist.pairs, pairlist.images)
        run_id = tdb.start_run(
            pairs_file=pairlist.source, out=str(out), scheduler=str(getattr(c, "scheduler", "") and
                                                               c.scheduler.address),
            dashboard=dashboard,
            settings={"steps": image_steps + pair_steps, "retry_failed": retry_failed,
                      "batch": dataclasses.asdict(settings), "work_dir": options.work_dir})
        tdb.record_rejected(run_id, pairlist.rejected)
        driver = _Driver(c, pairlist, out, tdb, run_id, recipe=recipe, source=src, image_steps=image_steps,
                         pair_steps=pair_steps, settings=settings, options=options,
                         retry_failed=retry_failed, runner=runner, progress=settings.progress)
        planned = driver.plan()
        try:
            status = driver.run(planned)
        except BaseException as exc:
            tdb.end_run(run_id, "failed", _error_text(exc))
            raise
        tdb.end_run(run_id, "done" if status == "done" else "interrupted")
        if is_local and not settings.scratch and work_dir:
            with contextlib.suppress(OSError):
                os.rmdir(work_dir)  # only when empty: everything was delivered and cleaned
        report = tdb.report(failures=None)
        return BatchSummary(
            run_id=run_id, status=status, out=str(out), database=str(db_path),
            duration=time.monotonic() - t0, planned=len(planned), already_done=driver.already_done,
            waiting=driver.waiting, pairs=report["pairs"], images=report["images"],
            rejected=pairlist.rejected, failures=report["failures"], dashboard=dashboard,
        )
