"""Triage after the preview pass: a pair goes on to full resolution, or is held with the measured reason.

The preview pass (:mod:`ctxdask.tools.recipe.preview`) ends with its verdict
(:mod:`ctxdask.quality.preview`). The submitter queues a pair's preview steps
alone and keeps its full-resolution steps back (:meth:`Submitter.submit_pair
<ctxdask.batch.submission.Submitter.submit_pair>`); when the verdict comes in,
:func:`after_preview` records it and

- ``pass``: queues the full pass (:meth:`Submitter.release_pair
  <ctxdask.batch.submission.Submitter.release_pair>`), mapprojected onto the preview DEM;
- ``held``: queues nothing more; the pair ends ``skipped`` with the reason
  (:func:`held_status`) and is listed among the run's held pairs, so that
  ``ctxdask status``, the report and the pair's page say why. The next runs hold it
  (:func:`ctxdask.batch.planning.preview_hold`) until a person grades it ``pass`` or
  ``warn``; then it runs its full pass, reusing the preview and everything done.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ctxdask import tracking
from ctxdask.batch.pairlist import Rejected
from ctxdask.batch.state import RunState
from ctxdask.tracking.previews import PASS

__all__ = ["after_preview", "held_status"]

logger = logging.getLogger(__name__)


def after_preview(db: tracking.TrackingDB, state: RunState, submitter, run_id: int, pair_id: str,
                  record: Mapping[str, Any]) -> None:
    """Record a pair's preview verdict (``record``: the ``preview_qa`` step's JSON) and act on it."""
    verdict, reasons = record.get("verdict"), list(record.get("reasons") or [])
    db.record_preview(pair_id, verdict, reasons, record.get("metrics") or {})
    if verdict == PASS:
        submitter.release_pair(pair_id)
        return
    reason = "held after its preview: " + "; ".join(reasons or ["no reason recorded"])
    submitter.hold_pair(pair_id)
    state.held[pair_id] = reason
    pair = state.pair_open.get(pair_id)
    logger.warning("pair %s %s", pair_id, reason)
    db.record_rejected(run_id, [Rejected(pair.line if pair is not None else None, pair_id,
                                         f"{reason} (grade the pair pass or warn to release it)")])


def held_status(state: RunState, pair_id: str, status: str, error: str | None) -> tuple[str, str | None]:
    """A pair's status and error as recorded: ``skipped`` with the reason when its preview held it."""
    if pair_id in state.held and status == "done":
        return "skipped", state.held[pair_id]
    return status, error
