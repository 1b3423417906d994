"""The batch driver: a pair list through the CTX chain on a dask cluster.

:func:`run_batch` (and ``ctxdask batch``) runs one batch; each part of the
job lives in a module of its own, imported in one direction:

1. The pair list is read and checked (:mod:`~ctxdask.batch.pairlist`), the
   tracking database opened (:mod:`ctxdask.tracking`) and locked, work a
   dead driver left in flight marked ``interrupted``, and what killed runs
   left cleaned up (:mod:`~ctxdask.batch.scratch`).
2. Planning (:mod:`~ctxdask.batch.planning`): which pairs to work on, which
   are done, waiting for ``retry_failed`` or held back; the steps recorded done.
3. Submission (:mod:`~ctxdask.batch.submission`): one dask task per image,
   then one per pair step once both images are through, with deterministic
   keys and worker resources; steps done before are reused.
4. The loop (:mod:`~ctxdask.batch.loop`): results arrive through
   :class:`distributed.as_completed` and go to result handling
   (:mod:`~ctxdask.batch.results`) in one database transaction per pass;
   results are brought home (:mod:`~ctxdask.batch.delivery`) before a step
   counts as done.
5. Ctrl-C (or SIGTERM) asks the loop to stop at its next pass (a second one
   stops at once): everything in flight is cancelled (running programs are
   stopped through the tasks' cancel check), deliveries are abandoned or
   completed and the completed ones recorded, so that the database lists
   every file in the output folder, and the rest is recorded as
   ``interrupted``; the next run resumes. Any other exception ends the run's
   row as ``failed`` with the error.

What runs on the workers is in :mod:`~ctxdask.batch.work`. Deadlines: recipe
steps run under the runner's hard deadline (process-group kill); in-process
steps and workers that stop answering are covered by the watchdog of result
handling. A worker that dies takes nothing with it: the scheduler reruns its
tasks, and delivery reads from another worker on its host or makes the step
again (:mod:`~ctxdask.batch.staging`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ctxdask import tracking
from ctxdask.batch.interrupts import quiet_teardown, stop_on_signals
from ctxdask.batch.loop import Driver
from ctxdask.batch.outcomes import error_text
from ctxdask.batch.pairlist import PairList
from ctxdask.batch.planning import Hold, plan_run, select_steps
from ctxdask.batch.request import Request, check_request, holds
from ctxdask.batch.scratch import claim_local_scratch, clean_after_dead_runs, release_local_scratch
from ctxdask.batch.sources import EDRSource
from ctxdask.batch.summary import BatchSummary
from ctxdask.settings import BatchSection, Settings
from ctxdask.tools.recipe import Recipe
from ctxdask.tools.tasks import RunOptions

__all__ = ["BatchSummary", "run_batch", "select_steps"]

logger = logging.getLogger(__name__)

# -------------------------------------------------------------- public API
@contextlib.contextmanager
def _cluster(client, batch: BatchSection):
    """Yield (client, is_local): the given client, one to ``batch.scheduler``, or a LocalCluster.

    A cluster the batch connects to itself gets what :func:`ctxdask.cluster.connect`
    gives: the packages checked alike on every worker, and running programs
    stopped when their worker shuts down.
    """
    if client is not None:
        yield client, False
        return
    from distributed import Client, LocalCluster

    from ctxdask.cluster import StopProgramsOnShutdown, connect

    if batch.scheduler:
        with connect(batch.scheduler) as c:
            yield c, False
        return
    n = batch.local_workers or os.cpu_count() or 1
    with LocalCluster(n_workers=int(n), threads_per_worker=batch.local_threads, processes=True,
                      resources={"stereo": 1}, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        c.register_plugin(StopProgramsOnShutdown())
        yield c, True


def run_batch(
    pairs: str | os.PathLike | PairList | Iterable[tuple[str, str]],
    out: str | os.PathLike,
    *,
    settings: Settings | Mapping[str, Any] | None = None,
    client=None,
    source: EDRSource | str | os.PathLike | None = None,
    recipe: Recipe | None = None,
    runner: Callable | None = None,
    hold: Hold | None = None,
) -> BatchSummary:
    """Run a stereo-pair list through the CTX chain on a dask cluster.

    Everything that decides how the batch runs is a setting (``ctxdask config``
    lists them, ``ctxdask.yaml`` explains them): the cluster (``batch.scheduler``,
    ``batch.local-workers``), the database (``batch.database``), what to run
    (``batch.steps``, ``batch.retry-failed``, ``batch.include-rejected``), deadlines
    (``tools.timeouts``, ``batch.timeouts``), delivery and the recipe's options
    (``tools.*``). The remaining arguments are code, not settings.

    Parameters
    ----------
    pairs : path, PairList or iterable of (left, right)
        The pair list (see :func:`ctxdask.batch.read_pairs`).
    out : path
        Output folder: delivered products (``pairs/<L>-<R>/``,
        ``images/<id>/``) and, by default, the tracking database.
    settings : Settings or mapping, optional
        The settings (:class:`ctxdask.settings.Settings`); a mapping of dotted
        keys (``{"batch.retry-failed": True}``) changes the current ones. Default:
        the configuration as it is now (:func:`ctxdask.settings.current`).
    client : distributed.Client, optional
        Use this cluster instead of the one ``batch.scheduler`` names or a LocalCluster.
    source : path or callable, optional
        A folder of EDRs (``<PRODUCT_ID>.IMG`` any case, or ``.IMG.bz2``/``.gz``),
        or another EDR source, ``source(product_id, scratch) -> path`` (see
        :mod:`ctxdask.batch.sources`).
    recipe : Recipe, optional
        Another chain than :func:`ctxdask.tools.recipe.build_recipe` of ``settings``
        (its steps keep their own deadlines).
    runner : callable, optional
        Replaces :func:`ctxdask.tools.tasks.run_step` for recipe steps on the
        workers (tests, benchmarks, custom executors).
    hold : callable, optional
        ``hold(pair) -> reason or None``: pairs to leave alone in this run
        (e.g. failed by hand), with the reason (:data:`ctxdask.batch.planning.Hold`).
        Pairs and images whose manual grade is ``fail`` are held too, and pairs their
        preview held (``tools.asp.preview``) until a grade releases them, unless
        ``batch.include-rejected`` (:mod:`ctxdask.tracking.grades`, :mod:`ctxdask.tracking.previews`).

    Returns
    -------
    BatchSummary
        Also after Ctrl-C (``status == "interrupted"``).

    Raises
    ------
    EmptyPairListError
        The list has no usable pair; the message gives each rejected line's reason.
    StepSelectionError
        ``batch.steps`` names a step the chain does not have.
    SettingsError
        A setting of the wrong kind or value, named.
        (Any other exception ends the run's database row as ``failed`` with its text.)

    Examples
    --------
    >>> summary = run_batch("pairs.txt", "results", source="edr",
    ...                     settings={"batch.local-workers": 4})  # doctest: +SKIP
    >>> print(summary)  # doctest: +SKIP
    """
    t0 = time.monotonic()
    request = check_request(pairs, out, settings=settings, source=source, recipe=recipe)
    created = not request.out.exists()  # made once the request is known to be good
    request.out.mkdir(parents=True, exist_ok=True)
    try:
        return _run(request, t0, client=client, runner=runner, hold=hold)
    except BaseException:
        if created:  # e.g. the scheduler could not be reached: no run began, so no folder is left behind
            _remove_unused(request.out, request.database)
        raise


def _remove_unused(out: pathlib.Path, db_path: pathlib.Path) -> None:
    """Remove ``out`` (made by this call) when no run was recorded in it; else leave it as it is."""
    with contextlib.suppress(Exception):
        if db_path.is_file():
            with tracking.BatchView(db_path) as view:
                if view.run_count():
                    return
        for path in (db_path, *(db_path.with_name(db_path.name + end) for end in (".lock", "-wal", "-shm"))):
            if path.parent == out:
                path.unlink(missing_ok=True)
        out.rmdir()  # only if nothing else is in it


def _run(request: Request, t0: float, *, client, runner, hold) -> BatchSummary:
    """The run itself: the database, the cluster, the plan, the driver, the summary."""
    settings, chain, src, pairlist, out = request.settings, request.chain, request.source, request.pairs, request.out
    batch, db_path = settings.batch, request.database
    # Ctrl-C while a local cluster starts only asks to stop (an interrupt inside distributed's start-up
    # leaves workers half made, and its exit hook fails on them): the run is recorded, then stops at once
    with tracking.lock_database(db_path), tracking.TrackingDB(db_path) as tdb, stop_on_signals() as stop, \
            _cluster(client, batch) as (c, is_local):
        tdb.interrupt_stale()
        work_dir = batch.scratch or (claim_local_scratch(out) if is_local else None)
        clean_after_dead_runs(c, out, work_dir)
        options = RunOptions.from_settings(settings, cancel_event=f"ctxdask-batch-cancel-{uuid.uuid4().hex[:12]}",
                                           **({"work_dir": work_dir} if work_dir else {}))
        dashboard = getattr(c, "dashboard_link", "") or ""
        tdb.register(pairlist.pairs, pairlist.images)
        run_id = tdb.start_run(
            pairs_file=pairlist.source, out=str(out), scheduler=str(getattr(c, "scheduler", "") and
                                                               c.scheduler.address),
            dashboard=dashboard,
            settings={"steps": [*chain.image_steps, *chain.pair_steps], "retry_failed": batch.retry_failed,
                      "batch": dataclasses.asdict(batch), "work_dir": options.work_dir,
                      # where the EDRs came from: later tools (ctxdask flat --from-batch) find them there
                      "edr_dir": getattr(src, "folder", None), "edr_cache": getattr(src, "cache", None)})
        try:
            tdb.record_rejected(run_id, pairlist.rejected)
            plan = plan_run(tdb, pairlist, chain, retry_failed=batch.retry_failed, hold=holds(tdb, settings, hold))
            tdb.record_rejected(run_id, plan.held)  # `ctxdask status` lists them with the reason
            driver = Driver(c, out, tdb, run_id, chain=chain, plan=plan, source=src, settings=batch,
                            options=options, runner=runner, progress=batch.progress, retry_failed=batch.retry_failed,
                            stop=stop)
            status = driver.run(plan.planned)
        except BaseException as exc:
            if is_local and stop.hurry.is_set():
                quiet_teardown(c)
            # whatever stops the driver ends its run row with the reason, never left 'running'
            with contextlib.suppress(Exception):
                tdb.end_run(run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                            error_text(exc))
            raise
        tdb.end_run(run_id, "done" if status == "done" else "interrupted")
        if is_local and stop.hurry.is_set():
            quiet_teardown(c)
        if is_local and not batch.scratch and work_dir:
            release_local_scratch(work_dir)
        with tracking.BatchView(db_path) as view:
            report = view.status_report(failures=None)
        return BatchSummary(
            run_id=run_id, status=status, out=str(out), database=str(db_path),
            duration=time.monotonic() - t0, planned=len(plan.planned), already_done=plan.already_done,
            waiting=plan.waiting, pairs=report["pairs"], images=report["images"],
            rejected=(*pairlist.rejected, *plan.unplannable), failures=report["failures"], dashboard=dashboard,
            held=tuple(plan.held),
        )
