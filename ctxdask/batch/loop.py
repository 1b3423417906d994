"""The driver's loop: one run's tasks, results, deliveries and clean-ups until every pair has ended.

:class:`Driver` puts the run together around one :class:`~ctxdask.batch.state.RunState`:
the :class:`~ctxdask.batch.submission.Submitter` sends every task (image
tasks, pair steps, tile plans and tile attempts), one
:class:`distributed.as_completed` brings them back, and
:class:`~ctxdask.batch.results.ResultHandler` records each by its type, in one
database transaction per pass, bringing results home through the run's one
:class:`~ctxdask.batch.delivery.Deliverer` before a step counts as done.
When nothing is in flight but pairs are still open, the loop closes them as
failed (:meth:`Driver._stuck`), whatever kind of work they waited for.

Ctrl-C (or SIGTERM) asks the loop to stop at its next pass (a second one
hurries it, :mod:`ctxdask.batch.interrupts`): everything in flight is cancelled (running programs are
stopped through the tasks' cancel check), deliveries are abandoned or
completed and the completed ones recorded, so that the database lists every
file in the output folder, and the rest is recorded as ``interrupted``; the
next run resumes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import pathlib
import time
import uuid
from collections.abc import Callable

from ctxdask import tracking
from ctxdask.batch.delivery import Deliverer
from ctxdask.batch.dem_products import write_batch_catalog
from ctxdask.batch.interrupts import StopRequest
from ctxdask.batch.model import BatchContext
from ctxdask.batch.pairlist import Pair
from ctxdask.batch.planning import Chain, Plan
from ctxdask.batch.progress import Progress
from ctxdask.batch.push import Pusher
from ctxdask.batch.results import ResultHandler
from ctxdask.batch.scratch import find_copies, find_failed_attempts, find_holders, remove_failed_attempts, remove_strays
from ctxdask.batch.sources import EDRSource
from ctxdask.batch.state import RunState
from ctxdask.batch.submission import Submitter
from ctxdask.daskcompat import executing_count
from ctxdask.settings import BatchSection
from ctxdask.tools.tasks import RunOptions

__all__ = ["Driver"]

logger = logging.getLogger(__name__)

#: seconds between two passes of the result loop
_TICK = 0.05
#: gathers of finished results in flight at once, off the driver's thread: their round trips overlap
_GATHERS = 4


class Driver:
    """One run: the submitter and the result handler around one shared state, and the loop.

    Not thread-safe; one per run.
    """

    def __init__(self, client, out: pathlib.Path, db: tracking.TrackingDB, run_id: int, *, chain: Chain, plan: Plan,
                 source: EDRSource, settings: BatchSection, options: RunOptions, runner: Callable | None,
                 progress: bool, retry_failed: bool = False, stop: StopRequest | None = None):
        self.client = client
        self.stop = stop or StopRequest()
        self.db = db
        self.plan = plan
        self.options = options
        self.show_progress = progress
        self.progress_interval = settings.progress_interval
        self.topic = f"ctxdask-batch-{uuid.uuid4().hex[:12]}"
        self.state = RunState()
        # copies an earlier, unfinished run pulled of steps that are done: removed with those steps
        self.state.copies.update(find_copies(client, options.work_dir, plan.done_keys))
        # failed attempts (their logs) an earlier run left: removed at the end if their step is done by then
        self.failed_before = find_failed_attempts(client, options.work_dir)
        # delivered files only the driver holds (tiles home) go to the workers that read them
        self.pusher = Pusher(client, out, chunk_size=settings.chunk_size, window=settings.chunk_window,
                             threads=settings.delivery_threads)
        self.context = BatchContext(
            recipe=chain.recipe, source=source, options=options, image_steps=tuple(chain.recipe_image),
            deliver=frozenset(settings.deliver), topic=self.topic, runner=runner,
            chunk_size=settings.chunk_size, window=settings.chunk_window, timeouts=dict(settings.timeouts),
            push_topic=self.pusher.topic)
        self.submitter = Submitter(client, self.state, db, run_id, chain=chain, context=self.context,
                                   settings=settings, done_keys=plan.done_keys, known_summing=plan.known_summing,
                                   holders=find_holders(client, options.work_dir, plan.done_keys))
        self.deliverer = Deliverer(client, mode=settings.delivery, chunk_size=settings.chunk_size,
                                   window=settings.chunk_window, threads=settings.delivery_threads,
                                   stall_timeout=settings.stall_timeout, remake=self.submitter.remake)
        self.results = ResultHandler(client, self.state, db, run_id, out=out, settings=settings, options=options,
                                     submitter=self.submitter, deliverer=self.deliverer, retry_failed=retry_failed)
        self.ac = None
        self.progress: Progress | None = None
        #: gathers of completed batches, oldest first (handled in the order the batches completed)
        self.gathering: collections.deque = collections.deque()
        self.gatherer = concurrent.futures.ThreadPoolExecutor(_GATHERS, thread_name_prefix="ctxdask-gather")

    def running_count(self) -> int:
        """The number of tasks running now."""
        return len(self.state.running)

    # ---------------------------------------------------------------- loop
    def run(self, planned: list[Pair]) -> str:
        """Run the planned pairs to the end, or until the run is stopped.

        Returns
        -------
        str
            ``"done"``, or ``"interrupted"`` when the run was stopped (Ctrl-C, SIGTERM).
        """
        from distributed import as_completed

        state, submitter, results = self.state, self.submitter, self.results
        self.ac = as_completed()
        submitter.start(self.ac)
        self.client.subscribe_topic(self.topic, results.on_event)
        self.pusher.start()
        state.open_pairs(planned)
        self.progress = results.progress = Progress(len(planned), already=self.plan.already_done,
                                                    dashboard=getattr(self.client, "dashboard_link", None),
                                                    enabled=self.show_progress,
                                                    log_interval=self.progress_interval)
        try:
            if self.stop.is_set():  # asked to stop before anything was sent (while the cluster started)
                raise KeyboardInterrupt
            with self.db.transaction():
                for pid in state.pairs_of:
                    submitter.submit_image(pid)
                submitter.flush()
            next_watch = time.monotonic() + 1.0
            tick = time.monotonic()
            while state.pair_open or results.deliveries:
                if self.stop.is_set():  # Ctrl-C or SIGTERM: stop here, between two passes
                    raise KeyboardInterrupt
                # one pass per tick at most: results, events and database commits come in batches
                time.sleep(max(0.0, tick + _TICK - time.monotonic()))
                tick = time.monotonic()
                # results are gathered off this thread: a gather is a round trip to the workers through a
                # scheduler that may be busy, and waiting for it here held back every submission
                batch = self.ac.next_batch(block=False)
                if batch:
                    self.gathering.append(self.gatherer.submit(self._results, batch))
                gathered = []
                while self.gathering and self.gathering[0].done():
                    gathered += self.gathering.popleft().result()
                done_deliveries = [cf for cf in results.deliveries if cf.done()]
                if not gathered and not done_deliveries and results.events.empty() and tick < next_watch \
                        and not state.queued:
                    continue
                with self.db.transaction():
                    results.drain_events()
                    for future, result in gathered:
                        results.dispatch(future, result)
                    for cf in done_deliveries:
                        results.delivered(cf)
                    if time.monotonic() >= next_watch:
                        results.watchdog()
                        next_watch = time.monotonic() + 1.0
                    submitter.flush()
                results.clean()
                self.progress.set_running(self.running_count())
                if not state.pair_open and not results.deliveries:
                    break
                if not gathered and not self.gathering and self.ac.is_empty() and not results.deliveries \
                        and state.pair_open and not state.queued:
                    self._stuck()
            # let the last scratch clean-ups finish before a LocalCluster goes away
            from distributed import wait

            results.clean()
            done = [k for k, status in self.db.step_status().items() if status == "done"]
            done += [f"stereo_tile-{pair_id}-{index:03d}" for pair_id, index in self.db.done_tiles()]
            results.cleanups += remove_failed_attempts(self.client, self.failed_before, done, self.options.work_dir)
            with contextlib.suppress(Exception):
                wait(results.cleanups, timeout=30)
            if state.cleaned:  # what tasks made again after a worker died left elsewhere
                with contextlib.suppress(Exception):
                    wait(remove_strays(self.client, self.options.work_dir, state.cleaned), timeout=30)
            write_batch_catalog(self.db, results.out)
            return "done"
        except KeyboardInterrupt:
            self._interrupt()
            return "interrupted"
        finally:
            self.progress.close()
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(self.topic)
            self.pusher.stop()
            # batches still being gathered (Ctrl-C) are not handled: their steps end interrupted; a gather
            # that holds futures keeps their tasks on the scheduler, so it is given a moment to end
            self.gatherer.shutdown(wait=False, cancel_futures=True)
            concurrent.futures.wait(self.gathering, timeout=5)
            self.gathering.clear()
            self.deliverer.shutdown(cancel=True)
            self._release_futures()

    def _release_futures(self) -> None:
        """Let the scheduler forget every task of this run now, not when the garbage collector gets to it.

        Keys are deterministic: a task the scheduler still knows when the
        next run on the same cluster submits its key is run from the old
        spec (an image task telling its steps to run again instead of reusing them).
        """
        if self.ac is not None:
            self.ac.clear()
        for t in (*self.state.tracked.values(), *self.state.tiles.values()):
            t.future = None
        for group in self.state.groups.values():
            group.future = None

    def _results(self, batch: list) -> list[tuple]:
        """(future, result) of a batch of completed futures: one gather for all that finished (a helper thread)."""
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
        for pair in list(self.state.pair_open.values()):
            logger.error("pair %s has no work in flight; marking it failed", pair.pair_id)
            self.db.set_subject("pairs", pair.pair_id, "failed", "internal error: no work left in flight")
            del self.state.pair_open[pair.pair_id]
            self.progress.finish_pair("failed", pair.pair_id)

    def _interrupt(self) -> None:
        """Stop everything in flight and record it as interrupted."""
        from distributed import Event

        with self.db.transaction():  # tile attempts in flight end interrupted; tiles landing now send nothing
            self.results.tiles.interrupt()
        with contextlib.suppress(Exception):
            Event(self.options.cancel_event, client=self.client).set()
        with contextlib.suppress(Exception):
            self.client.cancel(self.state.in_flight())
        self._land_deliveries()
        self._wait_for_workers_idle()
        stamp = tracking.now()
        with self.db.transaction():
            for key, t in self.state.tracked.items():
                if (t.outcome is None or t.delivering) and (not t.task.reuse or t.since is not None):
                    self.db.upsert_step(key, status="interrupted", ended=stamp,
                                        error="the batch was interrupted (Ctrl-C)")
            for pid, status in self.state.image_status.items():
                if status == "running":
                    self.db.set_subject("images", pid, "interrupted", "the batch was interrupted")
            for pair_id in self.state.pair_open:
                self.db.set_subject("pairs", pair_id, "interrupted", "the batch was interrupted")

    def _land_deliveries(self) -> None:
        """End every delivery and record those that completed (their files are in the output folder).

        A delivery whose files were all home lands them; one still
        transferring is abandoned and leaves nothing (:meth:`Deliverer.stop`).
        Recorded like any other, the completed ones make their steps ``done``.
        """
        self.deliverer.stop()
        with self.db.transaction():
            for cf in list(self.results.deliveries):
                self.results.delivered(cf)

    def _wait_for_workers_idle(self, seconds: float | None = None) -> None:
        """Give cancelled programs time to be stopped by their tasks' cancel checks."""
        grace = (self.options.grace or 10.0) + 5.0 if seconds is None else seconds
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self.stop.hurry.is_set():  # hurried: the cluster's close stops them
            try:
                busy = sum(self.client.run(executing_count).values())
            except Exception:  # noqa: BLE001 - the cluster may be going away
                return
            if not busy:
                return
            time.sleep(0.2)


