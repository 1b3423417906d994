"""The batch's own steps, run in the worker process: fetch, validate, quality, pair_quality.

Each writes into its work dir ``<work root>/<key>`` and returns a
:class:`~ctxdask.tools.tasks.StepResult` like a recipe step's, so later steps
consume it the same way. :func:`rebuild` makes any step's result again on this
worker (the recipe chain up to it, reusing what this worker finished before
through the manifests), for inputs whose worker has gone
(:mod:`~ctxdask.batch.staging`) and for delivery of lost files
(:func:`ctxdask.batch.work.remake`).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from ctxdask.batch.model import BatchContext, Outcome, StepTask, image_chain
from ctxdask.exceptions import CTXError
from ctxdask.tools.identity import content_identity
from ctxdask.tools.owner import write_owner
from ctxdask.tools.tasks import RunOptions, StepResult, cached_result, expected_result, run_step, work_root

__all__ = ["Elsewhere", "InvalidEDRError", "fetch", "pair_quality", "quality", "rebuild", "start_time", "utc",
           "validate"]

class InvalidEDRError(CTXError, ValueError):
    """Validation found errors in an EDR; the reason is the report's summary."""

def utc() -> str:
    """The time now in UTC, ISO 8601 with microseconds."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")

def _scratch(task: StepTask, options: RunOptions) -> str:
    """The work dir of an in-process step (``<work root>/<key>``)."""
    path = os.path.join(work_root(options.work_dir), task.key)
    os.makedirs(path, exist_ok=True)
    return path

def _private_scratch(task: StepTask, options: RunOptions) -> str:
    """A work dir of its own for one execution of an in-process step (``<work root>/<key>.tmp-<random>``).

    Two executions of one step (a retry, a remake, a task the scheduler ran
    twice) never write one path, so the files an execution hashed for
    delivery are the ones delivered. Marked with its owner, so that what a
    process killed mid-step leaves is cleaned (:func:`ctxdask.batch.scratch.clean_dead_scratch`).
    """
    path = os.path.join(work_root(options.work_dir), f"{task.key}.tmp-{uuid.uuid4().hex[:12]}")
    os.makedirs(path)
    write_owner(path)
    return path

def _in_process_result(task: StepTask, workdir: str, outputs: Mapping[str, str], started: str, t0: float,
                       fingerprint: str) -> StepResult:
    return StepResult(
        key=task.key, step=task.step, program=task.kind, workdir=workdir, outputs=dict(outputs), log_path="",
        returncode=0, duration=time.monotonic() - t0, started=started, host=socket.gethostname(),
        cached=False, fingerprint=fingerprint,
    )

def fetch(task: StepTask, options: RunOptions) -> StepResult:
    """The ``fetch`` step: get the EDR from the task's source into the step's work dir.

    Its fingerprint names the EDR by content (id, size, sha256), not by where it is kept.
    """
    scratch = _scratch(task, options)
    t0 = time.monotonic()
    started = utc()
    path = task.source(task.subject, scratch)
    # the EDR's bytes, not where this worker keeps them: a copy fetched on another host is the same input
    identity = content_identity(path)
    fingerprint = hashlib.sha256(f"{task.subject}\0{identity['size']}\0{identity['sha256']}".encode()).hexdigest()
    return _in_process_result(task, scratch, {"edr": os.path.abspath(path)}, started, t0, fingerprint)

def quality(task: StepTask, options: RunOptions, edr: StepResult) -> tuple[StepResult, dict[str, Any]]:
    """Metrics, grade and thumbnail of the raw EDR, written into the step's work dir."""
    import dask

    from ctxdask.backend import open_edr
    from ctxdask.quality import measure
    from ctxdask.tools.native import write_quality

    workdir = _scratch(task, options)
    t0, started = time.monotonic(), utc()
    outputs = {"quality": os.path.join(workdir, f"{task.subject}.quality.json"),
               "thumbnail": os.path.join(workdir, f"{task.subject}.thumb.png")}
    # this worker thread is the only one on it: no nested cluster computations
    (qa,) = dask.compute(measure(open_edr(edr.outputs["edr"])), scheduler="sync")
    record = write_quality(qa, outputs["quality"], outputs["thumbnail"])
    return _in_process_result(task, workdir, outputs, started, t0, edr.fingerprint), record

def pair_quality(task: StepTask, options: RunOptions,
                 by_key: Mapping[str, StepResult]) -> tuple[StepResult, dict[str, Any]]:
    """A pair's delivered products (COGs, QA, provenance, STAC item): :mod:`ctxdask.batch.dem_products`."""
    from ctxdask.batch.dem_products import make_pair_products

    workdir = _private_scratch(task, options)
    t0, started = time.monotonic(), utc()
    try:
        outputs, info = make_pair_products(workdir, task.subject, task.params, by_key)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)  # nothing of a failed execution is ever delivered
        raise
    fingerprint = hashlib.sha256("\0".join(r.fingerprint for r in by_key.values()).encode()).hexdigest()
    return _in_process_result(task, workdir, outputs, started, t0, fingerprint), info


def validate(path: str, product_id: str) -> dict[str, Any]:
    """Validate the EDR at ``path`` as ``product_id`` for the ``validate`` step.

    Returns
    -------
    dict
        The validation summary, summing mode, lines, START_TIME and warnings.

    Raises
    ------
    InvalidEDRError
        The EDR is invalid, or its label names another product.
    """
    from ctxdask.validation import validate

    report = validate(path)
    if not report.ok:
        raise InvalidEDRError(path, f"validation failed: {report.summary()}")
    if report.product_id and report.product_id.upper() != product_id:
        raise InvalidEDRError(path, f"validation failed: the label's PRODUCT_ID is {report.product_id}, "
                                    f"not {product_id}; the file is misnamed or another product")
    modes = next((f.details for f in report.findings if f.check == "modes"), {})
    return {"summary": report.summary(), "summing": modes.get("summing"), "lines": modes.get("lines"),
            "start_time": start_time(path), "warnings": [f"{w.check}: {w.message}" for w in report.warnings]}

def start_time(path: str) -> str | None:
    """The label's START_TIME (for the pair's STAC item), or None.

    Read with a pattern from the label's first bytes: validation has just
    parsed the label, and parsing it again costs more than the rest of this step.
    """
    with open(path, "rb") as f:
        head = f.read(65536)
    match = re.search(rb"^\s*START_TIME\s*=\s*\"?([0-9T:.\-]+)Z?\"?\s*$", head, re.MULTILINE)
    return match.group(1).decode() if match else None

class Elsewhere(Protocol):
    """Where :func:`rebuild` looks before making a step: results live workers hold (staging's)."""

    def find(self, call, upstream: list[StepResult]) -> tuple[StepResult, str] | None:
        """The step's finished result on a live worker (paths there) and that worker, else None."""

    def stage(self, result: StepResult, holder: str) -> StepResult:
        """Copies of ``result``'s outputs in this worker's scratch."""

    def guard(self, call) -> contextlib.AbstractContextManager:
        """Held while a step (a StepCall) is looked for and made: one worker of the cluster makes it at a time."""


def rebuild(outcome: Outcome, ctx: BatchContext, me: str, made: list[str],
            elsewhere: Elsewhere | None = None) -> StepResult:
    """Make the result of ``outcome``'s step again on this worker (its own worker has gone).

    The step's chain is rendered from the recipe as the driver rendered it
    (same keys, same work-dir names) and walked up to that step. Each step is
    looked for by the fingerprint of its inputs (an expected result where an
    input is nowhere: fingerprints need no files) in this worker's finished
    work dirs (manifests), then on a live worker that holds it (``elsewhere``);
    only what a step made here reads is copied here, and only what no live
    worker holds is made here, under ``elsewhere.guard`` so that two workers
    missing the same step make it once.

    Raises
    ------
    ValueError
        The step is not one that can be made again (not a fetch, quality or recipe step).
    """
    summing = outcome.info.get("summing")
    pair = "-" in outcome.subject  # a pair id joins two product ids (which never hold a '-')
    if outcome.step == "fetch":
        return fetch(StepTask(outcome.key, "fetch", "fetch", "image", outcome.subject, 0.0,
                               source=ctx.source_for(outcome.subject)), ctx.options)
    if outcome.step == "quality":
        # an image task returns its quality outcome only at the end of the chain: a worker lost
        # before delivery takes the quality products with it, so they are made again from the EDR
        fetch_key = f"fetch-{outcome.subject}"
        edr = rebuild(Outcome(fetch_key, "fetch", outcome.subject, "done"), ctx, me, made)
        made.append(fetch_key)
        result, _ = quality(StepTask(outcome.key, "quality", "quality", "image", outcome.subject, 0.0),
                             ctx.options, edr)
        return result
    if pair and (outcome.step == "pair_quality" or not isinstance(summing, (list, tuple)) or len(summing) != 2):
        # never render an image chain for a pair id: without both images' summing modes (or for the
        # batch's own pair products, made from delivered inputs) the pair step cannot be rendered here
        raise ValueError(f"{outcome.key}: cannot be made again here (its worker has gone and the "
                         f"pair's summing modes are {summing!r})")
    if not pair:  # an image step
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
    # key -> (result, where): "here" (this worker's files), a live holder's address (its paths), or
    # "missing" (no one has it: an expected result, by fingerprint only, made here if a step needs it)
    located: dict[str, tuple[StepResult, str]] = {}

    def locate(key: str) -> tuple[StepResult, str]:
        if key in located:
            return located[key]
        if key.startswith("fetch-"):
            located[key] = rebuild(Outcome(key, "fetch", key[len("fetch-"):], "done"), ctx, me, made), "here"
            made.append(key)
            return located[key]
        call = by_key.get(key)
        if call is None:  # e.g. a tiled pair's mosaic: made from tiles, not by the recipe chain
            raise ValueError(f"{outcome.key}: cannot be made again here: its input {key} is not a "
                             "step of the recipe chain")
        upstream = [locate(u)[0] for u in call.upstream]  # fingerprints suffice to look for it
        located[key] = _look(call, upstream) or (expected_result(call, *upstream), "missing")
        return located[key]

    def _look(call, upstream: list[StepResult]) -> tuple[StepResult, str] | None:
        found = cached_result(call, *upstream, options=ctx.options)
        if found is not None:
            made.append(call.key)
            return found, "here"
        return elsewhere.find(call, upstream) if elsewhere is not None else None

    def here(key: str) -> StepResult:
        """The result of ``key`` with files on this worker: copied from its holder, or made here."""
        result, where = locate(key)
        if where == "missing":
            call = by_key[key]
            with elsewhere.guard(call) if elsewhere is not None else contextlib.nullcontext():
                # another worker may have made it while this one waited
                found = _look(call, [locate(u)[0] for u in call.upstream])
                if found is None:
                    inputs = [here(u) for u in call.upstream]
                    found = (ctx.runner or run_step)(call, *inputs, options=ctx.options), "here"
                    made.append(key)
            result, where = located[key] = found
        if where != "here":
            result = elsewhere.stage(result, where)
            located[key] = result, "here"
            made.append(key)
        return result

    return here(outcome.key)
