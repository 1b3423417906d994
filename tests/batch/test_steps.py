"""Making a lost step again (steps.rebuild) and what the driver tells it (break 14 of issue 19)."""

from __future__ import annotations

import dataclasses

import pytest

from ctxdask.batch.model import BatchContext, Outcome, StepTask
from ctxdask.batch.pairlist import Pair
from ctxdask.batch.planning import Chain
from ctxdask.batch.settings import BatchSettings
from ctxdask.batch.state import RunState, Tracked
from ctxdask.batch.steps import rebuild
from ctxdask.batch.submission import Submitter
from ctxdask.product_id import InvalidProductIdError
from ctxdask.tools.recipe import build_recipe

from .conftest import IDS

LEFT, RIGHT = IDS[0], IDS[1]
PAIR = f"{LEFT}-{RIGHT}"


class _Future:
    def __init__(self, key):
        self.key = key


class _Client:
    def submit(self, func, *args, key, **kw):
        return _Future(key)


class _Sink:
    def add(self, future):
        pass

    def pending_steps(self, rows, run_id):
        pass


def test_a_pair_step_without_summing_modes_is_refused_never_rendered_as_an_image_chain():
    ctx = BatchContext(recipe=build_recipe(), source=None, image_steps=("mroctx2isis", "spiceinit", "ctxcal"))
    for step in ("pc_align", "pair_quality"):
        lost = Outcome(key=f"{step}-{PAIR}", step=step, subject=PAIR, status="done", info={"summing": None})
        with pytest.raises(ValueError, match=f"{step}-{PAIR}: cannot be made again") as err:
            rebuild(lost, ctx, "tcp://127.0.0.9:1", [])
        assert not isinstance(err.value, InvalidProductIdError)


def test_steps_after_a_tiled_mosaic_carry_the_pairs_summing_modes():
    """The tile runner's mosaic tasks carry no params: the later steps' summing came from them (None),
    so remaking a lost pc_align rendered an image chain for the pair id (InvalidProductIdError)."""
    recipe = build_recipe(stereo_mode="tiled", pc_align=True, lowres_dem="/dem.tif")
    chain = Chain(recipe, ("fetch", "validate"), tuple(s.name for s in (*recipe.pair_steps, *recipe.mosaic_steps)))
    state = RunState()
    state.summing = {LEFT: 1, RIGHT: 2}
    ctx = BatchContext(recipe=recipe, source=None)
    sub = Submitter(_Client(), state, _Sink(), 1, chain=chain, context=ctx, settings=BatchSettings.from_config(),
                    done_keys=set(), known_summing={})
    sub.start(_Sink(), None)
    pair = Pair(LEFT, RIGHT)
    calls = recipe.pair_calls("-", "-", left_id=LEFT, right_id=RIGHT, mola="/mola.csv")
    mosaic = recipe.mosaic_steps[0]
    key = mosaic.key_for({"left": LEFT, "right": RIGHT})
    mine = StepTask(key=key, step=mosaic.name, kind="recipe", scope="pair", subject=PAIR, timeout=1.0,
                    params={"summing": ((LEFT, 1), (RIGHT, 2))})
    state.tracked[key] = Tracked(mine, ())
    theirs = dataclasses.replace(mine, params={})  # as TiledPairs._submit_mosaics builds it
    later = [c for c in calls if c.step in ("pc_align", "point2dem_aligned")]
    assert later
    sub.mosaics_ready(pair, {key: (theirs, [], mosaic.render({"left": LEFT, "right": RIGHT}, {}))}, later)
    for call in later:
        assert state.tracked[call.key].task.params["summing"] == ((LEFT, 1), (RIGHT, 2))
