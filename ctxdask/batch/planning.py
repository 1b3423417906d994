"""Planning a run: which steps make the chain, and which pairs of the list to work on now.

The chain of every image is ``fetch -> validate [-> quality] -> the recipe's
image steps``, of every pair ``the recipe's pair steps [-> pair_quality]``
(:func:`select_steps`, :class:`Chain`). :func:`plan_run` reads the tracking
database and sorts the pairs of a list:

- done: every step of the pair and of its two images is ``done``: skipped;
- waiting: a ``failed``/``timeout`` step (its own or an image's), and the run
  does not retry failures: left alone;
- held: the ``hold`` hook gave a reason to leave the pair alone (the place
  where people's grades plug in: a pair or image failed by hand is held with
  the grader's note; see :data:`Hold`);
- unplannable: something about the pair made planning itself fail (recorded
  as ``failed`` with the reason; the other pairs go on);
- planned: everything else, with its images.

The :class:`Plan` also carries the keys of the steps recorded ``done``: the
run reuses them and never makes them again.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping

from ctxdask.batch.pairlist import Pair, PairList, Rejected
from ctxdask.tools.recipe import Recipe
from ctxdask.tracking import Status, TrackingDB

__all__ = ["PAIR_QUALITY_STEP", "PRE_STEPS", "QUALITY_STEP", "Chain", "Hold", "Plan", "StepSelectionError",
           "manual_hold", "plan_run", "preview_hold", "select_steps"]

logger = logging.getLogger(__name__)

#: the image steps the batch adds before the recipe's
PRE_STEPS = ("fetch", "validate")
#: the batch's own quality steps: per image (when the recipe's calibration does not
#: measure quality itself) after validation, per pair after the DEM
QUALITY_STEP, PAIR_QUALITY_STEP = "quality", "pair_quality"

#: final statuses other than done: left alone by a plain rerun, redone with retry_failed
_GAVE_UP = frozenset(s for s in Status if s.final and s != Status.DONE)

#: ``hold(pair) -> reason or None``: a reason not to work on a pair in this run (e.g. it or
#: one of its images was failed by hand), or None to plan it as usual
Hold = Callable[[Pair], "str | None"]


def manual_hold(rejected: Mapping[str, str], then: Hold | None = None) -> Hold:
    """A :data:`Hold` keeping back what people failed by hand.

    ``rejected`` maps the images and pairs whose current manual grade is
    ``fail`` to the reason (:meth:`ctxdask.tracking.TrackingDB.manually_rejected`).
    A pair is held when it or either image is there; the reason names which and
    carries the grader's note. ``then`` is another hook asked for the pairs this
    one lets through.
    """

    def hold(pair: Pair) -> str | None:
        for subject, what in ((pair.pair_id, "the pair"), (pair.left, f"image {pair.left}"),
                              (pair.right, f"image {pair.right}")):
            if subject in rejected:
                return f"{what} {rejected[subject]} (run with --include-rejected to process it anyway)"
        return then(pair) if then is not None else None

    return hold


def preview_hold(held: Mapping[str, str], then: Hold | None = None) -> Hold:
    """A :data:`Hold` keeping back the pairs their preview held (the triage of :mod:`ctxdask.quality.preview`).

    ``held`` maps each pair held after its preview and not released by a grade
    to the measured reason (:meth:`ctxdask.tracking.TrackingDB.held_previews`);
    ``then`` is asked for the others.
    """

    def hold(pair: Pair) -> str | None:
        if pair.pair_id in held:
            return f"{held[pair.pair_id]} (grade the pair pass or warn to release it)"
        return then(pair) if then is not None else None

    return hold


class StepSelectionError(ValueError):
    """A step selection (``batch.steps``, ``--steps``) that names no step of the chain."""


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
    StepSelectionError
        A name that is not a step of the chain, or none at all.
    """
    measured = any("quality" in s.outputs for s in recipe.image_steps)
    own = () if measured or not quality else (QUALITY_STEP,)
    image = [*PRE_STEPS, *own, *(s.name for s in recipe.image_steps)]
    pair = [s.name for s in recipe.pair_steps]
    if recipe.mosaic_steps:
        # tiled stereo: the mosaics follow the prep steps (the tiles are tracked in their own table)
        cut = len(recipe.pair_steps) - sum(1 for s in recipe.pair_steps if s.name in _AFTER_MOSAIC)
        pair[cut:cut] = [s.name for s in recipe.mosaic_steps]
    if quality and any("dem" in s.outputs for s in (*recipe.pair_steps, *recipe.mosaic_steps)):
        pair.append(PAIR_QUALITY_STEP)
    chain = image + pair
    if steps is None:
        return image, pair
    wanted = [s for s in steps]
    unknown = [s for s in wanted if s not in chain]
    if unknown:
        raise StepSelectionError(f"unknown steps {unknown}; the chain is {' -> '.join(chain)}")
    if not wanted:
        raise StepSelectionError("no steps selected")
    last = max(chain.index(s) for s in wanted)
    return [s for s in image if chain.index(s) <= last], [s for s in pair if chain.index(s) <= last]


#: tiled stereo: the recipe's pair steps that read the mosaic (the rest are its prep)
_AFTER_MOSAIC = ("pc_align", "point2dem_aligned", "dem_geoid")


@dataclasses.dataclass(frozen=True)
class Chain:
    """The steps a run makes of each image and pair, and their deterministic keys.

    Attributes
    ----------
    recipe : Recipe
    image_steps, pair_steps : tuple of str
        As :func:`select_steps` returns them.
    """

    recipe: Recipe
    image_steps: tuple[str, ...]
    pair_steps: tuple[str, ...]

    @property
    def recipe_image(self) -> list[str]:
        """The recipe's image steps (calibration) among the selected ones."""
        return [s for s in self.image_steps if s not in (*PRE_STEPS, QUALITY_STEP)]

    @property
    def recipe_pair(self) -> list[str]:
        """The recipe's pair steps among the selected ones."""
        return [s for s in self.pair_steps if s != PAIR_QUALITY_STEP]

    def image_keys(self, pid: str, summing: int | None) -> list[str]:
        """Step keys of an image (its calibration steps depend on the summing mode)."""
        keys = [f"{s}-{pid}" for s in (*PRE_STEPS, QUALITY_STEP) if s in self.image_steps]
        recipe_image = self.recipe_image
        if recipe_image:
            keys += [c.key for c in self.recipe.image_calls(pid, "-", summing=summing) if c.step in recipe_image]
        return keys

    def pair_keys(self, pair: Pair) -> list[str]:
        """Step keys of a pair."""
        names = {"left": pair.left, "right": pair.right}
        keys = [s.key_for(names) for s in (*self.recipe.pair_steps, *self.recipe.mosaic_steps)
                if s.name in self.pair_steps]
        if PAIR_QUALITY_STEP in self.pair_steps:
            keys.append(f"{PAIR_QUALITY_STEP}-{pair.pair_id}")
        return keys


@dataclasses.dataclass
class Plan:
    """What a run works on, and what it leaves alone and why.

    Attributes
    ----------
    planned : list of Pair
    already_done, waiting : int
        Pairs finished before; pairs waiting for ``retry_failed``.
    held : list of Rejected
        Pairs the ``hold`` hook held back, with its reason.
    unplannable : list of Rejected
        Pairs planning failed on (recorded as failed).
    done_keys : set of str
        Steps recorded done: reused, never made again.
    known_summing : dict
        Product id -> summing mode an earlier validation found (or None).
    """

    planned: list[Pair] = dataclasses.field(default_factory=list)
    already_done: int = 0
    waiting: int = 0
    held: list[Rejected] = dataclasses.field(default_factory=list)
    unplannable: list[Rejected] = dataclasses.field(default_factory=list)
    done_keys: set[str] = dataclasses.field(default_factory=set)
    known_summing: dict[str, int | None] = dataclasses.field(default_factory=dict)


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def plan_run(db: TrackingDB, pairs: PairList, chain: Chain, *, retry_failed: bool = False,
             hold: Hold | None = None) -> Plan:
    """Sort the pairs of ``pairs`` by what the database says about them (see the module docstring).

    Parameters
    ----------
    db : TrackingDB
        The run's database (pairs planning fails on are recorded as failed in it).
    pairs : PairList
    chain : Chain
    retry_failed : bool
        Plan pairs with failed or timed-out steps too.
    hold : callable, optional
        ``hold(pair) -> reason or None`` (:data:`Hold`): pairs with a reason are not planned.
    """
    status = db.step_status()
    plan = Plan(done_keys={key for key, state in status.items() if state == "done"})
    plan.known_summing = summing = db.image_summing()
    # tiled stereo: a pair whose DEM has holes (failed tiles) is worked on again with retry_failed
    holed = set()
    if retry_failed and chain.recipe.mosaic_steps:
        holed = db.pairs_with_holes()
    image_state: dict[str, str | Exception] = {}
    for pid in pairs.images:
        try:
            states = {status.get(k, "pending") for k in chain.image_keys(pid, summing.get(pid))}
        except Exception as exc:  # noqa: BLE001 - its pairs are rejected below, the others go on
            image_state[pid] = exc
            continue
        image_state[pid] = ("done" if states == {"done"} else
                            "blocked" if states & _GAVE_UP and not retry_failed else "todo")
    for pair in pairs:
        try:
            bad = next((image_state[i] for i in pair.images if isinstance(image_state[i], Exception)), None)
            if bad is not None:
                raise bad
            own = {status.get(k, "pending") for k in chain.pair_keys(pair)}
            reason = hold(pair) if hold is not None else None
        except Exception as exc:  # noqa: BLE001 - one bad pair never stops the batch
            _unplannable(db, plan, pair, exc)
            continue
        images = {image_state[pair.left], image_state[pair.right]}
        if images == {"done"} and own <= {"done"} and pair.pair_id not in holed:
            plan.already_done += 1
        elif reason:
            plan.held.append(Rejected(pair.line, pair.pair_id, reason))
        elif not retry_failed and ("blocked" in images or own & _GAVE_UP):
            plan.waiting += 1
        else:
            plan.planned.append(pair)
    return plan


def _unplannable(db: TrackingDB, plan: Plan, pair: Pair, exc: Exception) -> None:
    """Record a pair that cannot be planned as failed (with its line), and go on without it."""
    reason = f"cannot be planned: {_error_text(exc)}"
    logger.error("pair %s (line %s) %s", pair.pair_id, pair.line, reason)
    plan.unplannable.append(Rejected(pair.line, pair.pair_id, reason))
    db.set_subject("pairs", pair.pair_id, "failed", reason)
