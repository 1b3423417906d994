"""Result handling: how each step ended, into the database, with its files brought home.

Results arrive through :class:`distributed.as_completed` and the driver's loop
hands each finished future to :meth:`ResultHandler.dispatch`, inside one
database transaction per pass. An image task returns one Outcome per step,
each recorded as its own row (``validate-<id>``...); a worker event
announces each step's start (``running``, worker, start time,
:meth:`ResultHandler.drain_events`).

- A step counts as ``done`` only once its files are in the output folder,
  checksummed (:mod:`~ctxdask.batch.delivery`).
- The Outcome of a step reused from an earlier run leaves its row as it is.
- When every step of an image or pair has ended, its aggregate status is
  recorded; a pair's end releases its futures and cleans its scratch (and its
  images' once no open pair uses them).
- The watchdog gives up on a step ``watchdog-margin`` seconds past its
  deadline (in-process steps and workers that stopped answering).

:meth:`ResultHandler.dispatch` goes by the type of the finished task: an
image task, a step, or tiled stereo's tile plan and tile attempts, which go
to the tile bookkeeping (:mod:`~ctxdask.batch.tilework`); a tiled pair ends
through :meth:`ResultHandler.check_pair` like any other.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import queue
import time
from collections.abc import Iterable
from typing import Any

from ctxdask import tracking
from ctxdask.batch.delivery import Deliverer, DeliveryLost, DeliveryStopped
from ctxdask.batch.dem_products import finish_pair
from ctxdask.batch.model import ImageTask, Outcome, StepTask
from ctxdask.batch.outcomes import error_text, group_outcomes, outcome_of
from ctxdask.batch.pairlist import Pair
from ctxdask.batch.planning import PAIR_QUALITY_STEP
from ctxdask.batch.progress import Progress
from ctxdask.batch.scratch import remove_workdirs
from ctxdask.batch.state import RunState
from ctxdask.batch.submission import Submitter
from ctxdask.batch.tiles import TilePlanTask, TileTask
from ctxdask.batch.tilework import TileWork
from ctxdask.batch.triage import after_preview, held_status
from ctxdask.settings import BatchSection
from ctxdask.tools.tasks import RunOptions

__all__ = ["ResultHandler", "pair_dir"]

logger = logging.getLogger(__name__)


def pair_dir(out: pathlib.Path, subject: str, scope: str) -> pathlib.Path:
    """Where an image's or a pair's products are delivered."""
    return out / ("pairs" if scope == "pair" else "images") / subject


class ResultHandler:
    """Records the results of one run as they come.

    Parameters
    ----------
    client : distributed.Client
    state : RunState
    db : TrackingDB
    run_id : int
    out : pathlib.Path
        The output folder.
    settings : BatchSection
    options : RunOptions
    submitter : Submitter
        To let pairs go once their images are through.
    deliverer : Deliverer
    retry_failed : bool
        Tiled stereo: run tiles that failed in an earlier run again.
    """

    def __init__(self, client, state: RunState, db: tracking.TrackingDB, run_id: int, *, out: pathlib.Path,
                 settings: BatchSection, options: RunOptions, submitter: Submitter, deliverer: Deliverer,
                 retry_failed: bool = False):
        self.client = client
        self.state = state
        self.db = db
        self.run_id = run_id
        self.out = out
        self.settings = settings
        self.options = options
        self.submitter = submitter
        self.deliverer = deliverer
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        #: delivery future -> step key
        self.deliveries: dict[Any, str] = {}
        #: destination path -> step key, of this run's deliveries (in flight or completed)
        self.claimed: dict[str, str] = {}
        #: images with a pair that did not end done: their scratch stays for the rerun to reuse
        self.keep_images: set[str] = set()
        self.cleanups: list = []
        self.progress: Progress | None = None
        self.tiles = TileWork(client, state, db, run_id, out=out, submitter=submitter, deliverer=deliverer,
                              deliveries=self.deliveries, settings=settings, options=options,
                              retry_failed=retry_failed)
        self._handlers = {ImageTask: self.handle_group, StepTask: self._step, TilePlanTask: self._tile_plan,
                          TileTask: self._tile_attempt}

    # ------------------------------------------------------------- dispatch
    def dispatch(self, future, result) -> None:
        """Record a finished future by the type of its task (one whose future was released: nothing)."""
        task = self.state.task_of(future.key)
        if task is not None:
            self._handlers[type(task)](future.key, future, result)

    def _step(self, key: str, future, result) -> None:
        self.handle(key, outcome_of(self.state, key, future, result, self.settings.retries))

    def _tile_plan(self, key: str, future, result) -> None:
        t = self.state.tiles.pop(key)
        t.future = None
        future.release()
        self._end(self.tiles.planned(t.task, result))

    def _tile_attempt(self, key: str, future, result) -> None:
        t = self.state.tiles[key]
        # handled: let the scheduler forget it now, not when the garbage collector finds the future, or a
        # worker dying meanwhile has it made again (a tile run twice; its work dir may be cleaned already)
        t.future = None
        future.release()
        self._end(self.tiles.attempt_done(t, result))

    def _end(self, outcomes: Iterable[Outcome]) -> None:
        """Record steps that ended without running (a tiled pair's mosaics without enough tiles)."""
        for o in outcomes:
            self.handle(o.key, o)

    def handle_group(self, key: str, future, result) -> None:
        """Record the Outcomes of an image task, one per step, and let its pairs go."""
        state = self.state
        group = state.groups[key]
        pid = group.task.subject
        reported = list(result) if isinstance(result, list) else []
        for o in reported:
            if o.key not in state.tracked:  # rendered on the worker, announced late or not at all
                self.submitter.member(group, StepTask(key=o.key, step=o.step, kind="recipe", scope="image",
                                                      subject=pid, timeout=0.0,
                                                      params={"summing": o.info.get("summing")}))
        outcomes = reported + group_outcomes(state, group, future, result, reported, self.settings.retries)
        self.submitter.chain_rendered(pid, reported)
        for o in outcomes:
            if state.tracked[o.key].future is not None:
                self.handle(o.key, o)

    # ------------------------------------------------------------ recording
    def record(self, outcome: Outcome, status: str | None = None, error: str | None = None) -> None:
        """Write a step's row."""
        t = self.state.tracked[outcome.key]
        # scope, subject and step too: a step rendered on the worker may have no row yet
        self.db.upsert_step(
            outcome.key, scope=t.task.scope, subject=outcome.subject, step=outcome.step, run_id=self.run_id,
            status=status or outcome.status, worker=outcome.worker or None,
            host=outcome.host or None, started=outcome.started or None, ended=outcome.ended or None,
            duration=round(outcome.duration, 6), exit_code=outcome.exit_code, log_path=outcome.log_path,
            error=error if error is not None else outcome.error, blocked_by=outcome.blocked_by,
        )

    def handle(self, key: str, outcome: Outcome) -> None:
        """A step has ended: record it, or start bringing its files home first."""
        state = self.state
        t = state.tracked[key]
        if t.outcome is not None and t.outcome.status == "timeout":
            return  # the watchdog already gave up on it
        t.outcome = outcome
        t.since = None
        state.running.discard(key)
        # workers whose scratch held this step's result when the run started (an earlier run's work
        # dir) hold a copy too: removed with the step's own
        for holder in self.submitter.holders.get(key, ()):
            if holder != outcome.worker:
                state.copies.setdefault(key, set()).add(holder)
        # e.g. a tile a mosaic had pushed: goes with this subject
        state.note_copies(t.task.subject, outcome.worker, outcome.made_here)
        if outcome.reused:  # finished by an earlier run: its row, products and quality records stand
            self.check_subjects(t.task)
            return
        if outcome.ok and outcome.files:
            dest = pair_dir(self.out, t.task.subject, t.task.scope)
            clash = self._clash(key, [dest / f.relpath for f in outcome.files])
            if clash:
                outcome = t.outcome = dataclasses.replace(outcome, status="failed", error=clash)
                self.record(outcome)
                self.after(key)
                return
            # done only once its products are home
            t.delivering = True
            self.record(outcome, status="running", error="delivering results")
            future = self.deliverer.submit(outcome, dest)
            self.deliveries[future] = key
            self.claimed.update({str(dest / f.relpath): key for f in outcome.files})
            return
        self.record(outcome)
        self.after(key)

    def _clash(self, key: str, paths: list[pathlib.Path]) -> str | None:
        """Why ``key`` may not deliver ``paths``: another step of this run delivers or delivered one of them.

        (A product of an earlier run may be replaced by another step, e.g.
        after a change of calibration: the database then lists its new maker.)
        """
        for path in paths:
            owner = self.claimed.get(str(path))
            if owner is not None and owner != key:
                return (f"delivery refused: {path} is {owner}'s product; two steps never write one path "
                        "(rename an output of one of them)")
        return None

    def after(self, key: str) -> None:
        """Follow-up of a step that reached its final state."""
        t = self.state.tracked[key]
        o = t.outcome
        pid = t.task.subject
        if o.ok:
            self._record_quality(t.task, o)
            if "preview" in o.info:  # the preview's verdict: the full pass goes on, or the pair is held
                after_preview(self.db, self.state, self.submitter, self.run_id, pid, o.info["preview"])
        if t.task.step == "validate" and o.ok:
            self.db.set_subject("images", pid, "running", summing=o.info.get("summing"),
                                lines=o.info.get("lines"), validation=o.info.get("summary"))
        self.check_subjects(t.task)

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
            self.db.set_pair_quality(task.subject, statistics=o.info.get("statistics", {}), qa=o.info.get("qa"),
                                     **{role: delivered(files.get(role)) for role in
                                        ("stac", "hillshade", "colour_relief", "ortho_thumbnail")})

    def delivered(self, cf) -> None:
        """A delivery has ended: the step is done (its files recorded), or interrupted.

        A step whose files did not come home (lost with their worker, a
        checksum mismatch, the run stopping) is ``interrupted``, not failed:
        the step itself succeeded, nothing of it landed in the output folder
        (:mod:`~ctxdask.batch.delivery`), and a plain rerun makes and delivers
        it again, reusing what is done before it.
        """
        key = self.deliveries.pop(cf)
        if key in self.state.tiles:  # a good tile's files
            self._end(self.tiles.delivered(self.state.tiles[key], cf))
            return
        t = self.state.tracked[key]
        t.delivering = False
        o = t.outcome
        # the exception is read, never raised here: raised, it would keep this loop's frames (and the
        # run's futures) alive with the traceback it carries for as long as the delivery's future lives
        exc = DeliveryStopped(None, f"{key}: the run stopped before its files were home") if cf.cancelled() \
            else cf.exception()
        if exc is not None:  # nothing of it landed: its paths are free again
            self.claimed = {path: owner for path, owner in self.claimed.items() if owner != key}
        if isinstance(exc, DeliveryLost):
            self.record(o, status="interrupted", error=str(exc))
            t.outcome = dataclasses.replace(o, status="interrupted", error=str(exc))
        elif exc is not None:
            error = f"delivery failed: {error_text(exc)}; the step runs again next time"
            self.record(o, status="interrupted", error=error)
            t.outcome = dataclasses.replace(o, status="interrupted", error=error)
        else:
            files = cf.result()
            for f in files:
                self.db.record_product(f.path, key, t.task.subject, f.size, f.sha256)
            log = next((f.path for f in files if os.path.basename(f.path) == os.path.basename(o.log_path or "")),
                       o.log_path)
            self.record(dataclasses.replace(o, log_path=log))
        self.after(key)

    # ------------------------------------------------------ images and pairs
    def check_subjects(self, task: StepTask) -> None:
        """Close the image or pair of ``task`` (and the pairs of an image) once all their steps ended."""
        state = self.state
        if task.scope == "image":
            pid = task.subject
            if state.image_status.get(pid) == "running" and pid in state.image_calls and state.keys_final(pid):
                status, error = state.subject_status(pid)
                state.image_status[pid], state.image_error[pid] = status, error
                self.db.set_subject("images", pid, status, error)
            for pair in state.pairs_of.get(pid, ()):
                self.check_pair(pair)
        else:
            self.check_pair(state.pair_open.get(task.subject))

    def check_pair(self, pair: Pair | None) -> None:
        """Record a pair's status once its images and steps have ended; release its work."""
        state = self.state
        if pair is None or pair.pair_id not in state.pair_open:
            return
        images = [state.image_status.get(i) for i in pair.images]
        if "running" in images:
            return
        submitted = pair.pair_id in state.subject_keys
        if submitted and not state.keys_final(pair.pair_id):
            return
        bad = sorted(((i, s) for i, s in zip(pair.images, images) if s != "done"),
                     key=lambda item: tracking.Status.severity_of(item[1]))
        if bad:
            which, status = bad[0]
            side = "left" if which == pair.left else "right"
            first = (state.image_error.get(which) or "").strip().splitlines()[:1]
            error = f"{side} image {which} is {status}: {first[0] if first else ''}"
            if submitted:
                own, _ = state.subject_status(pair.pair_id)
                status = own if own not in ("done", "skipped") else status
        else:
            status, error = state.subject_status(pair.pair_id) if submitted else ("done", None)
            status, error = held_status(state, pair.pair_id, status, error)
        out_dir = pair_dir(self.out, pair.pair_id, "pair")
        if submitted:  # provenance.json: the runs its worker could not see, from the database
            keys = [*state.subject_keys.get(pair.pair_id, ()),
                    *(k for pid in pair.images for k in state.subject_keys.get(pid, ()))]
            finish_pair(self.db, out_dir, pair.pair_id, pair.images, keys, self.submitter.context.source)
        self.db.set_subject("pairs", pair.pair_id, status, error,
                            output_dir=str(out_dir) if out_dir.is_dir() else None)
        del state.pair_open[pair.pair_id]
        self.progress.finish_pair(status, pair.pair_id)
        # a pair that did not end done keeps its work (and its images'): the run that finishes it reuses
        # every step done here and makes only what failed (a plain rerun, or --retry-failed)
        done, clean = status == "done", self.settings.cleanup_scratch
        state.release([*state.subject_keys.get(pair.pair_id, ()), *state.loose_copies.pop(pair.pair_id, ())],
                      clean=clean and done)
        for pid in pair.images:
            state.image_refs[pid] -= 1
            if not done:
                self.keep_images.add(pid)
            if state.image_refs[pid] == 0:
                state.release(state.subject_keys.get(pid, ()), clean=clean and pid not in self.keep_images)

    # -------------------------------------------------------------- scratch
    def clean(self) -> None:
        """Remove released work dirs: one task per worker for everything released since the last call."""
        for worker, paths in self.state.to_clean.items():
            # preferred on the worker that made them; elsewhere the paths simply do not exist
            self.cleanups.append(self.client.submit(remove_workdirs, paths, self.options.work_dir, workers=[worker],
                                                    allow_other_workers=True, pure=False, priority=-10))
        self.state.to_clean.clear()
        self.cleanups = [f for f in self.cleanups if not f.done()]

    # ----------------------------------------------------- events, watchdog
    def on_event(self, event) -> None:
        """Worker-event callback (another thread): queue the message for the driver's thread."""
        self.events.put(event[1])

    def drain_events(self) -> None:
        """Record the starts the workers announced (``running``, worker, start time, attempt)."""
        state = self.state
        while True:
            try:
                msg = self.events.get_nowait()
            except queue.Empty:
                return
            if msg.get("tile"):  # a tile attempt started (tiles.run_tile)
                self.tiles.started(msg)
                continue
            t = state.tracked.get(msg.get("key"))
            group = state.groups.get(msg.get("group") or "")
            if t is None and group is not None and group.future is not None:
                # a calibration step the worker rendered from validation's summing mode
                t = self.submitter.member(group, StepTask(key=msg["key"], step=msg["step"],
                                                          kind=msg.get("kind", "recipe"), scope="image",
                                                          subject=msg["subject"],
                                                          timeout=float(msg.get("timeout") or 3600.0)))
            if t is None or t.outcome is not None or t.future is None:
                continue
            t.since = time.monotonic()
            state.running.add(msg["key"])
            self.db.upsert_step(msg["key"], scope=t.task.scope, subject=t.task.subject, step=t.task.step,
                                run_id=self.run_id, status="running", worker=msg.get("worker"),
                                host=msg.get("host"), started=msg.get("started"), count_attempt=True)

    def watchdog(self) -> None:
        """Give up on steps running ``watchdog-margin`` seconds past their deadline; hedge straggling tiles."""
        self.tiles.hedge()
        state = self.state
        now = time.monotonic()
        for key in list(state.running):
            t = state.tracked[key]
            if t.since is None or t.outcome is not None or t.future is None:
                continue
            limit = t.task.timeout + self.settings.watchdog_margin
            if now - t.since > limit:
                outcome = Outcome(key=key, step=t.task.step, subject=t.task.subject, status="timeout",
                                  ended=tracking.now(), duration=now - t.since,
                                  error=f"{t.task.step} gave no result {limit:g} s after it started "
                                        f"(deadline {t.task.timeout:g} s); the driver gave up on it")
                t.outcome = outcome
                state.running.discard(key)
                self.record(outcome)
                t.future.cancel()
                self.after(key)
