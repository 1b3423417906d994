"""What a batch would do, without doing it: ``ctxdask batch --dry-run``.

ASP's own ``stereo_dist --dry-run`` prints the commands it would run; users on
a new cluster want the same before hours of correlation: which pairs run,
which are done or held and why, and each program's exact command line.

The plan is the one :func:`~ctxdask.batch.run_batch` would make: the same
request checks (:mod:`~ctxdask.batch.request`), holds and
:func:`~ctxdask.batch.planning.plan_run`, run on
a copy of the batch's database (:func:`ctxdask.tracking.snapshot`), so nothing
is written: no output folder, no database row, no cluster. Image chains are
rendered for the summing mode an earlier validation recorded, else the one
the EDR's label says (EDRs in a folder); an image whose label cannot be read
here (a URL list) is shown without its calibration commands, which depend on
that mode.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shlex
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

from ctxdask import tracking
from ctxdask.batch.model import image_chain
from ctxdask.batch.pairlist import Pair, PairList, Rejected
from ctxdask.batch.planning import Chain, Plan, plan_run
from ctxdask.batch.request import check_request, holds
from ctxdask.batch.sources import EDRSource
from ctxdask.settings import Settings
from ctxdask.tools.recipe import Recipe, StepCall

__all__ = ["DryRun", "PlannedPair", "command_line", "dry_run"]


def command_line(call: StepCall) -> str:
    """The command a step runs, as a shell would show it (a native step: its function and options)."""
    if call.kind == "native":
        options = ", ".join(f"{k}={v!r}" for k, v in sorted(call.options.items()))
        return f"{call.callable}({options})"
    return shlex.join(call.argv)


@dataclasses.dataclass
class PlannedPair:
    """A pair the run would work on: the steps it would run, in order (steps recorded done left out)."""

    pair: Pair
    summing: Mapping[str, int | None]
    calls: list[StepCall]
    notes: list[str]


@dataclasses.dataclass
class DryRun:
    """The plan of a run that was not started (:func:`dry_run`)."""

    pairs_file: str
    out: pathlib.Path
    database: pathlib.Path
    runs_before: int
    plan: Plan
    rejected: list[Rejected]
    pairs: list[PlannedPair]

    def lines(self) -> Iterable[str]:
        """The plan as text: counts, what is left alone and why, then each pair's commands."""
        plan = self.plan
        where = f"{self.runs_before} runs recorded" if self.runs_before else "a new database"
        yield f"ctxdask batch --dry-run: {self.pairs_file} -> {self.out} ({where}; nothing is run or written)"
        yield (f"  {len(plan.planned)} pairs to run, {plan.already_done} already done, {plan.waiting} waiting for "
               f"--retry-failed, {len(plan.held)} held, {len(self.rejected) + len(plan.unplannable)} rejected")
        for r in (*self.rejected, *plan.unplannable, *plan.held):
            yield f"  not run: {r}"
        for planned in self.pairs:
            modes = ", ".join(f"{pid} summing {s if s is not None else '?'}" for pid, s in planned.summing.items())
            yield f"pair {planned.pair.pair_id} ({modes}):"
            for note in planned.notes:
                yield f"  # {note}"
            for call in planned.calls:
                yield f"  [{call.step}] {command_line(call)}"


def _label_summing(source: EDRSource, pid: str) -> int | None:
    """The summing mode of ``pid``'s EDR as its label says, when the EDR is a file this process can read."""
    import ctxdask

    find = getattr(source, "find", None)
    if find is None:
        return None
    try:
        return int(ctxdask.open_edr(find(pid)).attrs.get("SAMPLING_FACTOR", 1))
    except Exception:  # noqa: BLE001 - compressed, missing or broken: validation will say so in the real run
        return None


def _render(recipe: Recipe, chain: Chain, plan: Plan, pair: Pair, summing: Mapping[str, int | None],
            mola: str | None) -> PlannedPair:
    calls, notes, last = [], [], {}
    for pid in pair.images:
        if summing[pid] is None:
            notes.append(f"{pid}: its calibration commands depend on the summing mode validation finds")
            continue
        image_calls = image_chain(recipe, pid, summing[pid], chain.image_steps)
        last[pid] = image_calls[-1] if image_calls else "-"
        calls += [c for c in image_calls if c.key not in plan.done_keys and c not in calls]
    if chain.pair_steps:
        try:
            pair_calls = recipe.pair_calls(last.get(pair.left, "-"), last.get(pair.right, "-"),
                                           left_id=pair.left, right_id=pair.right, mola=mola)
        except Exception as exc:  # noqa: BLE001 - what the real run would record as the pair's failure
            notes.append(f"the pair steps cannot be rendered: {exc}")
            pair_calls = []
        calls += [c for c in pair_calls if c.step in chain.pair_steps and c.key not in plan.done_keys]
        if recipe.tile_step is not None:
            notes.append(f"{recipe.tile_step.name} runs once per tile of the list stereo_parse writes; "
                         "the mosaics follow")
    return PlannedPair(pair, dict(summing), calls, notes)


def dry_run(pairs: str | os.PathLike | PairList | Iterable[tuple[str, str]], out: str | os.PathLike, *,
            settings: Settings | Mapping[str, Any] | None = None, source: EDRSource | str | os.PathLike | None = None,
            recipe: Recipe | None = None) -> DryRun:
    """Plan a run as :func:`~ctxdask.batch.run_batch` would, and render its commands, without running it.

    Parameters are those of :func:`~ctxdask.batch.run_batch`; the same errors
    are raised for the same bad requests.
    """
    from ctxdask.quality.alignment import mola_for_pair

    request = check_request(pairs, out, settings=settings, source=source, recipe=recipe)
    recipe, chain, pairlist = request.recipe, request.chain, request.pairs
    with tempfile.TemporaryDirectory(prefix="ctxdask-dry-run-") as tmp:
        copy = pathlib.Path(tmp) / "plan.sqlite"
        runs_before = 0
        if request.database.is_file():
            tracking.snapshot(request.database, copy)
            with tracking.BatchView(copy) as view:
                runs_before = view.run_count()
        with tracking.TrackingDB(copy) as tdb:
            tdb.register(pairlist.pairs, pairlist.images)
            plan = plan_run(tdb, pairlist, chain, retry_failed=request.settings.batch.retry_failed,
                            hold=holds(tdb, request.settings))
    asp = recipe.settings.tools.asp
    rendered = []
    for pair in plan.planned:
        summing = {pid: plan.known_summing.get(pid) or _label_summing(request.source, pid) for pid in pair.images}
        mola = mola_for_pair(asp.mola_points, pair.pair_id, pair.left, pair.right) if asp.pc_align else None
        rendered.append(_render(recipe, chain, plan, pair, summing, mola))
    return DryRun(str(pairlist.source), request.out, request.database, runs_before, plan, list(pairlist.rejected),
                  rendered)
