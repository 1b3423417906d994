"""How a finished task ended, as Outcomes: errors, cancellations, and the steps an image task left unreported.

Result handling (:mod:`~ctxdask.batch.results`) records Outcomes; a future
that raised, was cancelled or lost its workers carries none, and an image
task that failed reports only the steps it got through. These functions make
the missing Outcomes from what the driver knows (:class:`RunState`): which
steps were announced as started, which were done before, which upstream step
failed.
"""

from __future__ import annotations

import traceback

from ctxdask import tracking
from ctxdask.batch.model import Outcome
from ctxdask.batch.state import Group, RunState

__all__ = ["error_text", "group_outcomes", "lost", "outcome_of"]


def error_text(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line where it can be."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def outcome_of(state: RunState, key: str, future, result, retries: int) -> Outcome:
    """The Outcome a finished future of step ``key`` stands for (errors and cancellations included).

    ``retries`` is the number of dask retries a failure went through (for the message).
    """
    tracked = state.tracked
    t = tracked[key]
    if isinstance(result, Outcome):
        return result
    base = dict(key=key, step=t.task.step, subject=t.task.subject, ended=tracking.now())
    failed_up = [u for u in t.upstream if tracked[u].future is not None
                 and tracked[u].future.status in ("error", "cancelled")]
    if failed_up or any(tracked[u].outcome is not None and not tracked[u].outcome.ok for u in t.upstream):
        up = (failed_up or list(t.upstream))[0]
        return Outcome(**base, status="skipped", error=f"not run: {up} did not succeed", blocked_by=up)
    if future.status == "cancelled":
        if t.outcome is not None:  # already recorded (watchdog)
            return t.outcome
        return Outcome(**base, status="interrupted", error="cancelled")
    exc = result
    if type(exc).__name__ == "KilledWorker":
        why = (f"the workers running this step died {exc.args[0] if exc.args else ''} times "
               "(out of memory? a crash in a library?); see the worker logs")
        return Outcome(**base, status="failed", error=why)
    return Outcome(**base, status="failed", error=f"{error_text(exc)} (after {retries} retries)")


def lost(state: RunState, key: str, status: str, error: str, blocked_by: str | None = None) -> Outcome:
    """The Outcome of a step whose task ended without reporting it (``blocked_by``: the upstream to blame)."""
    t = state.tracked[key]
    if t.task.reuse and t.since is None:  # done before and never started here: its row stays as it is
        return Outcome(key=key, step=t.task.step, subject=t.task.subject, status="done", info={"reused": True})
    return Outcome(key=key, step=t.task.step, subject=t.task.subject, status=status, ended=tracking.now(),
                   error=error, blocked_by=blocked_by)


def group_outcomes(state: RunState, group: Group, future, result, reported: list[Outcome],
                   retries: int) -> list[Outcome]:
    """Outcomes of the steps of an image task it did not report (``reported``: those it did).

    A task that returned stopped at its first failure: the rest are
    ``skipped``. One that failed, was cancelled or lost its workers: the step
    that was running (the last announced) takes the task's failure; those
    announced before it finished but whose results are lost are
    ``interrupted`` (the next run redoes them, cheaply through their
    manifests); the rest are ``skipped``.
    """
    tracked = state.tracked
    keys = {o.key for o in reported}
    missing = [m for m in group.members if m not in keys and tracked[m].outcome is None]
    if isinstance(result, list):
        first = next((o for o in reported if not o.ok), None)
        if first is not None:
            return [lost(state, m, "skipped", f"not run: {first.key} is {first.status}", first.key) for m in missing]
        return [lost(state, m, "skipped", "not run: not a step of this image's chain") for m in missing]
    if not missing:
        return []
    announced = [m for m in missing if tracked[m].since is not None]
    culprit = announced[-1] if announced else next((m for m in missing if not tracked[m].task.reuse), missing[0])
    timed_out = next((m for m in group.members if tracked[m].outcome is not None
                      and tracked[m].outcome.status == "timeout"), None)
    if timed_out is not None:  # the watchdog cancelled the task
        failure = lost(state, culprit, "skipped", f"not run: {timed_out} is timeout", timed_out)
    elif future.status == "cancelled":
        failure = lost(state, culprit, "interrupted", "cancelled")
    else:
        failure = outcome_of(state, culprit, future, result, retries)
    out = []
    for m in missing:
        if m == culprit:
            out.append(failure)
        elif m in announced:
            out.append(lost(state, m, "interrupted", f"its result was lost with the image task: {failure.error}"))
        else:
            out.append(lost(state, m, "skipped", f"not run: {culprit} is {failure.status}", culprit))
    return out
