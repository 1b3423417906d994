"""What a batch runs on the workers: every step wrapped into one task function.

:func:`execute` runs one :class:`StepTask` and returns an :class:`Outcome`
(small, picklable) for every expected end: done, failed (a program's non-zero
exit, an invalid EDR), timeout, skipped (a program not installed, or an
upstream step that did not succeed), interrupted (the batch was cancelled).
Only trouble that may pass (``OSError`` outside a program: a full or flaky
disk, a network hiccup while fetching) is raised, so that dask's ``retries``
runs the task again; everything else would fail the same way twice.

Before starting, a task announces itself with a worker event on the batch's
topic, which the driver turns into the ``running`` status (worker, start time)
without polling the scheduler.

Step kinds:

``fetch``
    The EDR source (:mod:`ctxdask.batch.sources`) finds or makes the EDR on
    the worker; the result is a :class:`~ctxdask.tools.tasks.StepResult` with
    output ``edr``, so recipe steps consume it through an ordinary ``Ref``.
``validate``
    :func:`ctxdask.validate`; an invalid EDR fails with the report's summary.
``recipe``
    One step of the CTX recipe, :func:`ctxdask.tools.tasks.run_step` (or a
    substitute runner with the same signature). When the step writes a
    ``quality`` output (the native calibration measures quality in the same
    pass), the record it holds comes back in ``Outcome.info["quality"]``.
``quality``
    Quality metrics, grade and thumbnail of the raw EDR
    (:func:`ctxdask.quality.measure`), for recipes whose calibration does not
    make them (ISIS).
``pair_quality``
    A pair's delivered products: COGs, hillshade and colour relief, QA
    against MOLA, provenance and STAC item (:mod:`ctxdask.batch.dem_products`).

Quality products (:data:`QUALITY_ROLES`) are always brought home, whatever
``batch.deliver`` says.

What every task of a run shares (recipe, EDR source, runner settings) travels
once per worker as a :class:`BatchContext`; a :class:`StepTask` is only what
differs between tasks. Upstream results made on another host are pulled into
this worker's scratch, or made again here when their worker has gone
(:mod:`~ctxdask.batch.staging`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ctxdask.exceptions import (
    CTXError,
    ToolCancelledError,
    ToolError,
    ToolNotFoundError,
    ToolTimeoutError,
)
from ctxdask.tools.recipe import Recipe, Ref, StagedInput, StepCall
from ctxdask.tools.tasks import RunOptions, StepResult, run_step, work_root

__all__ = ["QUALITY_ROLES", "BatchContext", "FileInfo", "ImageTask", "InvalidEDRError", "Outcome", "StepTask",
           "execute", "image_chain", "rebuild", "remake", "remove_workdirs", "run_image", "sha256_file"]

Status = Literal["done", "failed", "timeout", "skipped", "interrupted"]
Kind = Literal["fetch", "validate", "recipe", "quality", "pair_quality"]
#: output roles delivered to the output folder even when their step is not in ``batch.deliver``
QUALITY_ROLES = frozenset({"quality", "thumbnail", "hillshade", "colour_relief", "ortho_thumbnail", "stac",
                           # a pair's delivered products (ctxdask.batch.dem_products)
                           "dem_cog", "dem_areoid_cog", "ortho_cog", "error_cog", "hillshade_cog",
                           "colour_relief_cog", "qa_metrics", "provenance", "residuals", "mola",
                           "pc_align_errors"})
_HASH_BLOCK = 4 * 1024 * 1024


class InvalidEDRError(CTXError, ValueError):
    """Validation found errors in an EDR; the reason is the report's summary."""


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """A file a step made, to be delivered: where it is on the worker, where it goes."""

    path: str
    relpath: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class BatchContext:
    """What all tasks of a run share; sent to each worker once (a task of its own).

    Attributes
    ----------
    recipe : Recipe
    source : callable
        The EDR source (see :mod:`ctxdask.batch.sources`).
    options : RunOptions
    image_steps : tuple of str
        The recipe image steps the run selected (to make an image again).
    deliver : frozenset of str
        Steps whose outputs (and logs) are hashed for delivery.
    topic : str, optional
        Worker-event topic on which starts are announced.
    runner : callable, optional
        Replaces :func:`~ctxdask.tools.tasks.run_step` for recipe steps.
    chunk_size, window : int
        Chunk size and chunks in flight of pulls between workers.
    timeouts : mapping
        Step name -> seconds (``batch.timeouts``), winning over the recipe's
        for the image steps an :class:`ImageTask` renders on the worker.
    """

    recipe: Recipe
    source: Callable[[str, str], str]
    options: RunOptions = dataclasses.field(default_factory=RunOptions)
    image_steps: tuple[str, ...] = ()
    deliver: frozenset[str] = frozenset()
    topic: str | None = None
    runner: Callable[..., StepResult] | None = None
    chunk_size: int = 8 * 1024 * 1024
    window: int = 4
    timeouts: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def source_for(self, product_id: str) -> Callable[[str, str], str]:
        """The source narrowed to one product when it can be (what a fetch task carries)."""
        narrow = getattr(self.source, "for_product", None)
        return narrow(product_id) if narrow else self.source


def image_chain(recipe: Recipe, product_id: str, summing: int | None, steps) -> list[StepCall]:
    """The recipe image steps named in ``steps``, reading the EDR of ``fetch-<id>``."""
    fetch = Ref(f"fetch-{product_id}", "edr")
    calls = []
    for call in recipe.image_calls(product_id, "-", summing=summing):
        if call.step in steps:
            inputs = {role: StagedInput(i.name, fetch, i.copy) if i.source == "-" else i
                      for role, i in call.inputs.items()}
            calls.append(dataclasses.replace(call, inputs=inputs))
    return calls


@dataclasses.dataclass(frozen=True)
class StepTask:
    """One step of one image or pair, as sent to a worker (small and picklable).

    Attributes
    ----------
    key : str
        Deterministic task key, also the database key (``validate-<id>``).
    step : str
        Step name (``fetch``, ``validate`` or a recipe step).
    kind : {"fetch", "validate", "recipe", "quality", "pair_quality"}
    scope : {"image", "pair"}
    subject : str
        Product id or pair id.
    timeout : float
        Deadline in seconds (recipe steps: enforced by the runner, which kills
        the program; in-process steps: checked by the driver).
    call : StepCall, optional
        The rendered recipe step.
    source : callable, optional
        The EDR source of a fetch step (narrowed to the product).
    params : mapping
        Kind-specific values: ``summing`` of recipe steps (``((left,
        summing), (right, summing))`` for pair steps), so that a lost result
        can be made again; for
        ``pair_quality`` ``inputs`` (product -> upstream ``(key, role)``),
        ``steps`` (key -> step, program, argv), ``datetime``,
        ``end_datetime``, ``left``, ``right``.
    needs : tuple of str
        Keys of the upstream steps, in order. An upstream dask task may be a
        whole image (:func:`run_image`, a list of Outcomes): only these are
        taken from it.
    """

    key: str
    step: str
    kind: Kind
    scope: Literal["image", "pair"]
    subject: str
    timeout: float
    call: StepCall | None = None
    source: Callable[[str, str], str] | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    needs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ImageTask:
    """All image steps of one product, run as one dask task (:func:`run_image`).

    The image chain is strictly sequential, so one task instead of one per
    step saves the scheduler and worker round trips (a few ms each), which
    dominate a batch of thousands of images.

    Attributes
    ----------
    key : str
        Deterministic dask key, ``image-<id>``.
    subject : str
        Product id.
    head : tuple of StepTask
        ``fetch`` and, when selected, ``validate`` and ``quality``; the
        calibration steps (``BatchContext.image_steps``) are rendered on the
        worker once validation has reported the summing mode.
    """

    key: str
    subject: str
    head: tuple[StepTask, ...]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a step ended (what travels back to the driver).

    Attributes
    ----------
    key, step, subject : str
    status : {"done", "failed", "timeout", "skipped", "interrupted"}
    worker : str
        Address of the worker that ran it ('' when nothing ran).
    host : str
    started, ended : str
        ISO 8601 UTC.
    duration : float
    exit_code : int or None
    log_path : str or None
        The log on the worker.
    error : str or None
        What went wrong (message and log tail), or why the step was skipped.
    result : StepResult or None
        For succeeded fetch and recipe steps, what downstream steps consume.
    info : dict
        Step-specific facts (validation: summing, lines, start_time, warnings;
        quality: the record of :func:`ctxdask.tools.native.quality_record`;
        pair_quality: DEM ``statistics`` and product ``files`` by role;
        recipe steps: ``summing``).
    files : tuple of FileInfo
        Files to bring home (outputs of a delivered step, and its log).
    made_here : tuple of str
        Upstream keys whose outputs were copied to, or made again on, this
        worker (its scratch holds them until they are cleaned).
    """

    key: str
    step: str
    subject: str
    status: Status
    worker: str = ""
    host: str = ""
    started: str = ""
    ended: str = ""
    duration: float = 0.0
    exit_code: int | None = None
    log_path: str | None = None
    error: str | None = None
    result: StepResult | None = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    files: tuple[FileInfo, ...] = ()
    made_here: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "done"


def _utc() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def sha256_file(path: str) -> str:
    """Hex sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


def _announce(task: StepTask, topic: str | None, worker: str, started: str, group: str | None = None) -> None:
    if not (topic and worker):
        return
    try:
        from distributed import get_worker

        # step, scope, subject and deadline: the driver may not know a step rendered on the worker
        get_worker().log_event(topic, {"key": task.key, "worker": worker, "started": started,
                                       "host": socket.gethostname(), "group": group, "step": task.step,
                                       "kind": task.kind, "scope": task.scope, "subject": task.subject,
                                       "timeout": task.timeout})
    except Exception:  # noqa: BLE001 - the running status is informative only
        pass


def _files(deliver: bool, result: StepResult) -> tuple[FileInfo, ...]:
    """Outputs to deliver: all (and the log) for a delivered step, else the quality products."""
    if deliver:
        paths = dict(result.outputs)
        if result.log_path and os.path.isfile(result.log_path):
            paths["log"] = result.log_path
    else:
        paths = {role: path for role, path in result.outputs.items() if role in QUALITY_ROLES}
    out = []
    for path in paths.values():
        rel = os.path.relpath(path, result.workdir)
        if rel.startswith(".."):  # not inside the work dir (a fetch step's source EDR)
            continue
        out.append(FileInfo(path, rel, os.path.getsize(path), sha256_file(path)))
    return tuple(sorted(out, key=lambda f: f.relpath))


def _scratch(task: StepTask, options: RunOptions) -> str:
    """The work dir of an in-process step (``<work root>/<key>``)."""
    path = os.path.join(work_root(options.work_dir), task.key)
    os.makedirs(path, exist_ok=True)
    return path


def _in_process_result(task: StepTask, workdir: str, outputs: Mapping[str, str], started: str, t0: float,
                       fingerprint: str) -> StepResult:
    return StepResult(
        key=task.key, step=task.step, program=task.kind, workdir=workdir, outputs=dict(outputs), log_path="",
        returncode=0, duration=time.monotonic() - t0, started=started, host=socket.gethostname(),
        cached=False, fingerprint=fingerprint,
    )


def _fetch(task: StepTask, options: RunOptions) -> StepResult:
    scratch = _scratch(task, options)
    t0 = time.monotonic()
    started = _utc()
    path = task.source(task.subject, scratch)
    st = os.stat(path)
    fingerprint = hashlib.sha256(
        f"{task.subject}\0{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
    return _in_process_result(task, scratch, {"edr": os.path.abspath(path)}, started, t0, fingerprint)


def _quality(task: StepTask, options: RunOptions, edr: StepResult) -> tuple[StepResult, dict[str, Any]]:
    """Metrics, grade and thumbnail of the raw EDR, written into the step's work dir."""
    import dask

    from ctxdask.edr import open_edr
    from ctxdask.quality import measure
    from ctxdask.tools.native import write_quality

    workdir = _scratch(task, options)
    t0, started = time.monotonic(), _utc()
    outputs = {"quality": os.path.join(workdir, f"{task.subject}.quality.json"),
               "thumbnail": os.path.join(workdir, f"{task.subject}.thumb.png")}
    # this worker thread is the only one on it: no nested cluster computations
    (qa,) = dask.compute(measure(open_edr(edr.outputs["edr"])), scheduler="sync")
    record = write_quality(qa, outputs["quality"], outputs["thumbnail"])
    return _in_process_result(task, workdir, outputs, started, t0, edr.fingerprint), record


def _pair_quality(task: StepTask, options: RunOptions,
                  by_key: Mapping[str, StepResult]) -> tuple[StepResult, dict[str, Any]]:
    """A pair's delivered products (COGs, QA, provenance, STAC item): :mod:`ctxdask.batch.dem_products`."""
    from ctxdask.batch.dem_products import make_pair_products

    workdir = _scratch(task, options)
    t0, started = time.monotonic(), _utc()
    outputs, info = make_pair_products(workdir, task.subject, task.params, by_key)
    fingerprint = hashlib.sha256("\0".join(r.fingerprint for r in by_key.values()).encode()).hexdigest()
    return _in_process_result(task, workdir, outputs, started, t0, fingerprint), info


def _validate(path: str, product_id: str) -> dict[str, Any]:
    from ctxdask.validation import validate

    report = validate(path)
    if not report.ok:
        raise InvalidEDRError(path, f"validation failed: {report.summary()}")
    if report.product_id and report.product_id.upper() != product_id:
        raise InvalidEDRError(path, f"validation failed: the label's PRODUCT_ID is {report.product_id}, "
                                    f"not {product_id}; the file is misnamed or another product")
    modes = next((f.details for f in report.findings if f.check == "modes"), {})
    return {"summary": report.summary(), "summing": modes.get("summing"), "lines": modes.get("lines"),
            "start_time": _start_time(path), "warnings": [f"{w.check}: {w.message}" for w in report.warnings]}


def _start_time(path: str) -> str | None:
    """The label's START_TIME (for the pair's STAC item), or None.

    Read with a pattern from the label's first bytes: validation has just
    parsed the label, and parsing it again costs more than the rest of this step.
    """
    with open(path, "rb") as f:
        head = f.read(65536)
    match = re.search(rb"^\s*START_TIME\s*=\s*\"?([0-9T:.\-]+)Z?\"?\s*$", head, re.MULTILINE)
    return match.group(1).decode() if match else None


def _classify(exc: BaseException) -> tuple[Status, str]:
    """Status and message of an expected failure."""
    if isinstance(exc, ToolTimeoutError) or (isinstance(exc, TimeoutError) and not isinstance(exc, ToolError)):
        return "timeout", str(exc)
    if isinstance(exc, ToolCancelledError):
        return "interrupted", str(exc)
    if isinstance(exc, ToolNotFoundError):
        return "skipped", str(exc)
    if isinstance(exc, CTXError):
        return "failed", str(exc)
    # a bug or an unexpected library error: record it whole, retrying would not help
    return "failed", "".join(traceback.format_exception_only(type(exc), exc)).strip() + \
        "\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])


def _needed(task: StepTask, upstream: tuple) -> list[Outcome]:
    """The upstream Outcomes ``task`` needs, taken out of whole-image results (lists)."""
    flat = [o for u in upstream for o in (u if isinstance(u, list) else (u,))]
    if not task.needs:
        return flat
    by_key = {o.key: o for o in flat}
    return [by_key[k] for k in task.needs if k in by_key]


def execute(task: StepTask, ctx: BatchContext, *upstream: Outcome | list[Outcome],
            group: str | None = None) -> Outcome:
    """Run one batch step on a worker and say how it ended.

    Parameters
    ----------
    task : StepTask
    ctx : BatchContext
        What all tasks of the run share.
    *upstream : Outcome or list of Outcome
        Outcomes of the steps this one needs (dask passes them in); a list is
        the result of a whole image, of which ``task.needs`` are taken.
    group : str, optional
        Key of the :class:`ImageTask` this step runs in (told to the driver).

    Returns
    -------
    Outcome
        ``skipped`` without running anything when an upstream step did not
        succeed.

    Raises
    ------
    OSError
        Transient trouble outside a program; dask retries the task.
    """
    from ctxdask.batch.staging import localize, vanished

    upstream = tuple(_needed(task, upstream))
    worker = _worker_address()
    base = dict(key=task.key, step=task.step, subject=task.subject, worker=worker,
                host=socket.gethostname())
    blocked = [u for u in upstream if not u.ok]
    if blocked:
        first = blocked[0]
        return Outcome(**base, status="skipped", started=_utc(), ended=_utc(),
                       error=f"not run: {first.key} is {first.status}")
    started = _utc()
    _announce(task, ctx.topic, worker, started, group)
    t0 = time.monotonic()
    result: StepResult | None = None
    info: dict[str, Any] = {"summing": task.params["summing"]} if "summing" in task.params else {}
    made: list[str] = []
    try:
        results = [localize(u, ctx, worker, made) for u in upstream if u.result is not None]
        try:
            result, info = _run(task, ctx, results, info)
        except Exception:
            if not vanished(list(upstream), worker):
                raise
            # inputs read in another worker's scratch went with it: once more, on copies
            results = [localize(u, ctx, worker, made, borrow=False) for u in upstream if u.result is not None]
            result, info = _run(task, ctx, results, info)
        files = _files(task.step in ctx.deliver, result) if result is not None else ()
    except Exception as exc:
        if isinstance(exc, OSError) and not isinstance(exc, (CTXError, TimeoutError)):
            raise
        status, message = _classify(exc)
        return Outcome(
            **base, status=status, started=started, ended=_utc(), duration=time.monotonic() - t0,
            exit_code=getattr(exc, "returncode", None), log_path=getattr(exc, "log_path", None),
            error=message, made_here=tuple(made),
        )
    return Outcome(
        **base, status="done", started=started, ended=_utc(), duration=time.monotonic() - t0,
        exit_code=result.returncode if result else None,
        log_path=(result.log_path or None) if result else None,
        result=result, info=info, files=files, made_here=tuple(made),
    )


def run_image(task: ImageTask, ctx: BatchContext) -> list[Outcome]:
    """Run every image step of one product, in order, on this worker; return their Outcomes.

    ``fetch``, then ``validate`` and ``quality`` (``task.head``), then the
    calibration steps of ``ctx.image_steps`` rendered for the summing mode
    validation found, each through :func:`execute` (its own running event,
    deadline and Outcome). A step whose upstream did not succeed is returned
    as ``skipped`` with the reason, so the chain stops at the first failure.
    Without a successful validation the summing mode is unknown and the
    calibration steps are not rendered.

    Raises
    ------
    OSError
        Transient trouble (see :func:`execute`): dask retries the whole image;
        finished recipe steps are reused through their manifests.
    """
    outcomes: list[Outcome] = []
    by_key: dict[str, Outcome] = {}

    def run(step: StepTask, *upstream: Outcome) -> Outcome:
        outcome = execute(step, ctx, *upstream, group=task.key)
        outcomes.append(outcome)
        by_key[outcome.key] = outcome
        return outcome

    fetch = previous = run(task.head[0])
    validate = None
    for step in task.head[1:]:
        if step.kind == "validate":
            validate = previous = run(step, fetch)
        else:  # quality: of the raw EDR, beside the chain (a failure does not stop calibration)
            run(step, *(o for o in (fetch, validate) if o is not None))
    if validate is None or not validate.ok or not ctx.image_steps:
        return outcomes
    summing = validate.info.get("summing")
    for call in image_chain(ctx.recipe, task.subject, summing, ctx.image_steps):
        step = StepTask(key=call.key, step=call.step, kind="recipe", scope="image", subject=task.subject,
                        timeout=float(ctx.timeouts.get(call.step, call.timeout)), call=call,
                        params={"summing": summing})
        needs = list(dict.fromkeys([*call.upstream, previous.key]))
        previous = run(step, *(by_key[k] for k in needs))
    return outcomes


def remake(outcome: Outcome, ctx: BatchContext) -> Outcome:
    """``outcome`` made again on this worker, with its files hashed for delivery (its own are lost)."""
    worker, made = _worker_address(), []
    result = rebuild(outcome, ctx, worker, made)
    return dataclasses.replace(outcome, worker=worker, host=socket.gethostname(), result=result,
                               log_path=result.log_path or None, files=_files(outcome.step in ctx.deliver, result),
                               made_here=tuple(made))


def _run(task: StepTask, ctx: BatchContext, results: list[StepResult],
         info: dict[str, Any]) -> tuple[StepResult | None, dict[str, Any]]:
    """The step itself, on local inputs: (result, info)."""
    result = None
    info = dict(info)
    if task.kind == "fetch":
        result = _fetch(task, ctx.options)
    elif task.kind in ("validate", "quality"):
        edr = next(r for r in results if "edr" in r.outputs)
        if task.kind == "validate":
            info = _validate(edr.outputs["edr"], task.subject)
        else:
            result, info["quality"] = _quality(task, ctx.options, edr)
    elif task.kind == "pair_quality":
        result, info = _pair_quality(task, ctx.options, {r.key: r for r in results})
    else:
        result = (ctx.runner or run_step)(task.call, *results, options=ctx.options)
        if "quality" in result.outputs:
            with open(result.outputs["quality"]) as f:
                info["quality"] = json.load(f)
    return result, info


def rebuild(outcome: Outcome, ctx: BatchContext, me: str, made: list[str]) -> StepResult:
    """Make the result of ``outcome``'s step again on this worker (its own worker has gone).

    The step's chain is rendered from the recipe as the driver rendered it
    (same keys, same work-dir names) and run here up to that step; steps
    finished here before are reused through their manifests.

    Raises
    ------
    ValueError
        The step is not one that can be made again (not a fetch, quality or recipe step).
    """
    summing = outcome.info.get("summing")
    if outcome.step == "fetch":
        return _fetch(StepTask(outcome.key, "fetch", "fetch", "image", outcome.subject, 0.0,
                               source=ctx.source_for(outcome.subject)), ctx.options)
    if outcome.step == "quality":
        # an image task returns its quality outcome only at the end of the chain: a worker lost
        # before delivery takes the quality products with it, so they are made again from the EDR
        fetch = f"fetch-{outcome.subject}"
        edr = rebuild(Outcome(fetch, "fetch", outcome.subject, "done"), ctx, me, made)
        made.append(fetch)
        result, _ = _quality(StepTask(outcome.key, "quality", "quality", "image", outcome.subject, 0.0),
                             ctx.options, edr)
        return result
    if not isinstance(summing, (list, tuple)):  # an image step
        calls = image_chain(ctx.recipe, outcome.subject, summing, ctx.image_steps)
    else:  # a pair step, ((left, summing), (right, summing)): both images' chains, then the pair's
        (left, _), (right, _) = summing
        chains = {pid: image_chain(ctx.recipe, pid, s, ctx.image_steps) for pid, s in summing}
        calls = [*chains[left], *chains[right], *ctx.recipe.pair_calls(
            chains[left][-1] if chains[left] else "-", chains[right][-1] if chains[right] else "-",
            left_id=left, right_id=right)]
    by_key = {c.key: c for c in calls}
    if outcome.key not in by_key:
        raise ValueError(f"{outcome.key}: cannot be made again here (its worker has gone)")
    done: dict[str, StepResult] = {}

    def make(key: str) -> StepResult:
        if key not in done:
            if key.startswith("fetch-"):
                done[key] = rebuild(Outcome(key, "fetch", key[len("fetch-"):], "done"), ctx, me, made)
            else:
                call = by_key[key]
                done[key] = (ctx.runner or run_step)(call, *map(make, call.upstream), options=ctx.options)
            made.append(key)
        return done[key]

    return make(outcome.key)


#: work-dir name prefixes of the in-process steps (no manifest)
_IN_PROCESS = ("fetch-", "quality-", "pair_quality-")


def remove_workdirs(paths: list[str], work_dir: str | None = None) -> int:
    """Delete step work dirs (and their ``.failed`` twins) on this worker; return how many.

    Relative paths are taken from this worker's work root (``work_dir``, the
    ``tools.work-dir`` setting, else its local directory). Only folders
    holding a step manifest, a ``.failed`` suffix, a fetch stamp, named after
    an in-process step or holding pulled copies are touched, so a wrong path
    can never remove anything else.
    """
    removed = 0
    root = None
    for path in paths:
        if not os.path.isabs(path):
            root = root or work_root(work_dir)
            path = os.path.join(root, path)
        for candidate in (path, f"{path}.failed"):
            if not os.path.isdir(candidate) or os.path.islink(candidate):
                continue
            names = set(os.listdir(candidate))
            name = os.path.basename(candidate)
            if (candidate.endswith(".failed") or "ctxdask-step.json" in names
                    or any(n.endswith(".source.json") for n in names) or name.startswith(_IN_PROCESS)
                    or os.path.basename(os.path.dirname(candidate)) == "staged"):
                shutil.rmtree(candidate, ignore_errors=True)
                removed += 1
    return removed
