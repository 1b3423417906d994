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
    Hillshade, colour relief, orthoimage thumbnail, DEM statistics and STAC
    item of a pair's DEM (:func:`ctxdask.quality.pair_products`).

Quality products (:data:`QUALITY_ROLES`) are always brought home, whatever
``batch.deliver`` says.

What every task of a run shares (recipe, EDR source, runner settings) travels
once per worker as a :class:`BatchContext`; a :class:`StepTask` is only what
differs between tasks (both defined in :mod:`~ctxdask.batch.model`, and
importable from here). Upstream results made on another host are pulled into
this worker's scratch, or made again here when their worker has gone
(:mod:`~ctxdask.batch.staging`). The batch's own steps are in
:mod:`~ctxdask.batch.steps`.

A step the database records as done (``StepTask.reuse``; for an image task
``ImageTask.done``) is located instead of run: its Outcome says
``reused`` and the driver leaves its row alone. Only when its result has
gone with its scratch does it run again, as a new attempt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
import traceback
from collections.abc import Mapping
from typing import Any

# the task types are defined in model; they are re-exported here, where they have always been imported from
from ctxdask.batch.model import (
    QUALITY_ROLES,
    BatchContext,
    FileInfo,
    ImageTask,
    Outcome,
    Status,
    StepTask,
    image_chain,
    sha256_file,
)
from ctxdask.batch.scratch import clean_dead_scratch, remove_workdirs
from ctxdask.batch.staging import LiveHolders, localize, made_alone, vanished
from ctxdask.batch.steps import InvalidEDRError, fetch, pair_quality, quality, rebuild, start_time, utc, validate
from ctxdask.exceptions import (
    CTXError,
    ToolCancelledError,
    ToolError,
    ToolNotFoundError,
    ToolTimeoutError,
)
from ctxdask.tools.tasks import StepResult, cached_result, run_step

__all__ = ["QUALITY_ROLES", "BatchContext", "FileInfo", "ImageTask", "InvalidEDRError", "Outcome", "StepTask",
           "clean_dead_scratch", "execute", "image_chain", "rebuild", "remake", "remove_workdirs", "run_image",
           "sha256_file"]


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
            group: str | None = None, alone: bool = True, holders: LiveHolders | None = None) -> Outcome:
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
    alone : bool
        A recipe step is made by one worker of the cluster at a time
        (:func:`~ctxdask.batch.staging.made_alone`); a tile is not (a hedged
        duplicate runs beside its original), nor a step of an image task
        (which holds the lock of its whole chain).
    holders : LiveHolders, optional
        Where a recipe step not made here is looked for (an image task's, for its chain).

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
    upstream = tuple(_needed(task, upstream))
    worker = _worker_address()
    base = dict(key=task.key, step=task.step, subject=task.subject, worker=worker,
                host=socket.gethostname())
    blocked = [u for u in upstream if not u.ok]
    if blocked:
        first = blocked[0]
        return Outcome(**base, status="skipped", started=utc(), ended=utc(),
                       error=f"not run: {first.key} is {first.status}", blocked_by=first.key)
    if task.reuse:
        reused = _reuse(task, ctx, upstream, base)
        if reused is not None:
            return reused
        # its result went with the scratch it was in: the step runs again, recorded as a new attempt
    started = utc()
    _announce(task, ctx.topic, worker, started, group)
    t0 = time.monotonic()
    result: StepResult | None = None
    info: dict[str, Any] = {"summing": task.params["summing"]} if "summing" in task.params else {}
    made: list[str] = []
    alone = made_alone(ctx, task.call, worker) if alone and task.kind == "recipe" else contextlib.nullcontext()
    try:
        with alone:
            held = _held_by_a_live_worker(task, ctx, upstream, worker, made, holders)
            results = [] if held is not None else [localize(u, ctx, worker, made) for u in upstream
                                                     if u.result is not None]
            try:
                result, info = (held, info) if held is not None else _run(task, ctx, results, info)
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
            **base, status=status, started=started, ended=utc(), duration=time.monotonic() - t0,
            exit_code=getattr(exc, "returncode", None), log_path=getattr(exc, "log_path", None),
            error=message, made_here=tuple(made),
        )
    return Outcome(
        **base, status="done", started=started, ended=utc(), duration=time.monotonic() - t0,
        exit_code=result.returncode if result else None,
        log_path=(result.log_path or None) if result else None,
        result=result, info=info, files=files, made_here=tuple(made),
    )

def _held_by_a_live_worker(task: StepTask, ctx: BatchContext, upstream: tuple[Outcome, ...], me: str,
                           made: list[str], holders: LiveHolders | None = None) -> StepResult | None:
    """A recipe step another live worker already made from the same inputs, copied here; else None.

    The scheduler reruns a task whose result died with its worker (the result
    of an image task, say, moved to a worker that was then killed); the steps
    it ran are still in the scratch of the live worker that made them. Asked
    (one broadcast to the workers) only when this worker has no finished
    work dir of the step.
    """
    if task.kind != "recipe" or task.call is None:
        return None
    results = [u.result for u in upstream if u.result is not None]
    try:
        if not me or cached_result(task.call, *results, options=ctx.options) is not None:
            return None  # not on a cluster, or here already: run_step reuses it
    except (ValueError, OSError, KeyError):
        return None
    holders = holders or LiveHolders(ctx, me, keys=(task.key,))
    found = holders.find(task.call, results)
    if found is None:
        return None
    staged = holders.stage(*found)
    made.append(task.key)
    return staged


def _reuse(task: StepTask, ctx: BatchContext, upstream: tuple[Outcome, ...], base: Mapping) -> Outcome | None:
    """The Outcome of a step the database records as done, without running it; None when it must run.

    Nothing is announced or recorded for it. ``fetch`` asks the EDR source
    where the EDR is (a file in the EDR folder or the download cache);
    ``validate`` reads the summing mode the driver passed and the label's
    START_TIME; a recipe step is found through its manifest
    (:func:`~ctxdask.tools.tasks.cached_result`) when its work dir is still in
    this worker's scratch; ``quality`` and ``pair_quality`` feed no later step,
    and their products are already home.
    """
    info: dict[str, Any] = {"reused": True}
    result: StepResult | None = None
    made: list[str] = []
    stamp = utc()
    try:
        if task.kind == "fetch":
            result = fetch(task, ctx.options)
        elif task.kind == "validate":
            if "summing" not in task.params:
                return None
            edr = next((u.result for u in upstream if u.result is not None and "edr" in u.result.outputs), None)
            info.update(summing=task.params["summing"],
                        start_time=start_time(edr.outputs["edr"]) if edr is not None else None)
        elif task.kind == "recipe":
            # a manifest names its inputs by fingerprint: files only the driver holds need not come here for it
            results = [u.result if u.at_driver else localize(u, ctx, base["worker"], made)
                       for u in upstream if u.result is not None]
            result = cached_result(task.call, *results, options=ctx.options)
            if result is None:  # made on another worker: pulled from the one that holds it
                result = _held_elsewhere(task, ctx, results, base["worker"], made)
            if result is None:
                return None
            info["summing"] = task.params.get("summing")
    except (OSError, CTXError, KeyError, ValueError):
        return None  # not found as it was: make it again
    return Outcome(**base, status="done", started=stamp, ended=stamp, result=result, info=info,
                   log_path=(result.log_path or None) if result is not None else None, made_here=tuple(made))

def _held_elsewhere(task: StepTask, ctx: BatchContext, upstream: list[StepResult], me: str,
                    made: list[str]) -> StepResult | None:
    """A done step's result found by its manifest on a live worker that holds it, copied here; else None.

    The holder checks its manifest against the fingerprint of the inputs
    (:func:`~ctxdask.tools.tasks.cached_result` reads only fingerprints of
    upstream results, not their files), then the outputs are pulled as any
    input made on another host (:func:`~ctxdask.batch.staging.stage`).
    """
    from distributed import worker_client

    from ctxdask.batch.staging import ProducerGone, _result, stage
    from ctxdask.daskcompat import live_workers

    for holder in task.held_by:
        if holder == me:
            continue
        with worker_client() as client:
            if holder not in live_workers(client):
                continue
            try:  # gives up (ProducerGone) once the holder leaves
                found = _result(client, client.submit(cached_result, task.call, *upstream, options=ctx.options,
                                                      workers=[holder], allow_other_workers=False, pure=False,
                                                      priority=100), holder)
            except ProducerGone:
                continue
        if found is not None:
            staged = stage(found, holder, ctx)
            made.append(task.key)
            return staged
    return None

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

    def run(step: StepTask, *upstream: Outcome, **kw) -> Outcome:
        outcome = execute(step, ctx, *upstream, group=task.key, **kw)
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
    calls = image_chain(ctx.recipe, task.subject, summing, ctx.image_steps)
    # one cluster-wide lock and one question to the workers for the whole chain: per step, they were
    # most of a batch's scheduler traffic
    me = _worker_address()
    holders = LiveHolders(ctx, me, keys=tuple(c.key for c in calls))
    with made_alone(ctx, calls[0], me) if calls else contextlib.nullcontext():
        for call in calls:
            step = StepTask(key=call.key, step=call.step, kind="recipe", scope="image", subject=task.subject,
                            timeout=float(ctx.timeouts.get(call.step, call.timeout)), call=call,
                            params={"summing": summing}, reuse=call.key in task.done,
                            held_by=tuple(task.held.get(call.key, ())))
            needs = list(dict.fromkeys([*call.upstream, previous.key]))
            previous = run(step, *(by_key[k] for k in needs), alone=False, holders=holders)
    return outcomes

def remake(outcome: Outcome, ctx: BatchContext) -> Outcome:
    """``outcome`` made again on this worker, with its files hashed for delivery (its own are lost)."""
    worker, made = _worker_address(), []
    result = rebuild(outcome, ctx, worker, made, LiveHolders(ctx, worker))
    return dataclasses.replace(outcome, worker=worker, host=socket.gethostname(), result=result,
                               log_path=result.log_path or None, files=_files(outcome.step in ctx.deliver, result),
                               made_here=tuple(made))

def _run(task: StepTask, ctx: BatchContext, results: list[StepResult],
         info: dict[str, Any]) -> tuple[StepResult | None, dict[str, Any]]:
    """The step itself, on local inputs: (result, info)."""
    result = None
    info = dict(info)
    if task.kind == "fetch":
        result = fetch(task, ctx.options)
    elif task.kind in ("validate", "quality"):
        edr = next(r for r in results if "edr" in r.outputs)
        if task.kind == "validate":
            info = validate(edr.outputs["edr"], task.subject)
        else:
            result, info["quality"] = quality(task, ctx.options, edr)
    elif task.kind == "pair_quality":
        result, info = pair_quality(task, ctx.options, {r.key: r for r in results})
    else:
        result = (ctx.runner or run_step)(task.call, *results, options=ctx.options)
        for role in ("quality", "preview"):  # an image's QA record; a pair's preview verdict
            if role in result.outputs:
                with open(result.outputs[role]) as f:
                    info[role] = json.load(f)
    return result, info
