"""Making a lost step again (steps.rebuild) and what the driver tells it (break 14 of issue 19)."""

from __future__ import annotations

import dataclasses

import pytest

from ctxdask.batch.model import BatchContext, Outcome, StepTask
from ctxdask.batch.pairlist import Pair
from ctxdask.batch.planning import Chain
from ctxdask.batch.state import RunState, Tracked
from ctxdask.batch.steps import rebuild
from ctxdask.batch.submission import Submitter
from ctxdask.product_id import InvalidProductIdError
from ctxdask.settings import BatchSection
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
    """Mosaic tasks built without params gave the later steps their summing (None), so remaking a lost
    pc_align rendered an image chain for the pair id (InvalidProductIdError)."""
    recipe = build_recipe(stereo_mode="tiled", pc_align=True, lowres_dem="/dem.tif")
    chain = Chain(recipe, ("fetch", "validate"), tuple(s.name for s in (*recipe.pair_steps, *recipe.mosaic_steps)))
    state = RunState()
    state.summing = {LEFT: 1, RIGHT: 2}
    ctx = BatchContext(recipe=recipe, source=None)
    sub = Submitter(_Client(), state, _Sink(), 1, chain=chain, context=ctx, settings=BatchSection.from_config(),
                    done_keys=set(), known_summing={})
    sub.start(_Sink())
    pair = Pair(LEFT, RIGHT)
    calls = recipe.pair_calls("-", "-", left_id=LEFT, right_id=RIGHT, mola="/mola.csv")
    mosaic = recipe.mosaic_steps[0]
    key = mosaic.key_for({"left": LEFT, "right": RIGHT})
    mine = StepTask(key=key, step=mosaic.name, kind="recipe", scope="pair", subject=PAIR, timeout=1.0,
                    params={"summing": ((LEFT, 1), (RIGHT, 2))})
    state.tracked[key] = Tracked(mine, ())
    later = [c for c in calls if c.step in ("pc_align", "point2dem_aligned")]
    assert later
    sub.later[PAIR] = later
    sub.submit_mosaics(pair, [mosaic.render({"left": LEFT, "right": RIGHT}, {})], [])
    for call in later:
        assert state.tracked[call.key].task.params["summing"] == ((LEFT, 1), (RIGHT, 2))


class _Holders:
    """A cluster where worker ``w1`` holds some finished steps (steps.Elsewhere), recording what is asked."""

    def __init__(self, held):
        self.held, self.found, self.staged, self.guarded = dict(held), [], [], []

    def find(self, call, upstream):
        from ctxdask.tools.tasks import expected_result

        if call.key not in self.held:
            return None
        expected = expected_result(call, *upstream)  # what the holder checks against its manifest
        self.found.append(call.key)
        return dataclasses.replace(expected, outputs={r: f"/w1/{call.key}/{r}" for r in expected.outputs}), "w1"

    def stage(self, result, holder):
        self.staged.append((result.key, holder))
        return result

    def guard(self, call):
        import contextlib

        self.guarded.append(call.key)
        return contextlib.nullcontext()


def test_a_lost_step_is_made_from_what_live_workers_hold_and_nothing_they_hold_is_made_again(tmp_path):
    """ctxevenodd's worker died; w1 still holds spiceinit (and nothing else of the chain).

    mroctx2isis is upstream of spiceinit but nowhere: it is not made, its fingerprint suffices
    to find spiceinit on w1. spiceinit is copied (ctxcal, made here, reads it), ctxcal and
    ctxevenodd are made here, each under the guard.
    """
    from ctxdask.tools.tasks import RunOptions, StepResult

    edr = tmp_path / f"{LEFT}.IMG"
    edr.write_bytes(b"EDR" * 100)
    made = []

    def runner(call, *upstream, options):
        made.append((call.key, [u.key for u in upstream]))
        return StepResult(key=call.key, step=call.step, program=call.program, workdir=str(tmp_path / call.key),
                          outputs={r: str(tmp_path / call.key / r) for r in call.outputs}, log_path="", returncode=0,
                          duration=0.0, started="", host="", cached=False, fingerprint=f"fp-{call.key}")

    recipe = build_recipe(calibration="isis")
    ctx = BatchContext(recipe=recipe, source=lambda pid, scratch: str(edr), runner=runner,
                       options=RunOptions.from_config(work_dir=str(tmp_path / "work")),
                       image_steps=tuple(s.name for s in recipe.image_steps))
    holders = _Holders({f"spiceinit-{LEFT}": "w1"})
    lost = Outcome(key=f"ctxevenodd-{LEFT}", step="ctxevenodd", subject=LEFT, status="done", info={"summing": 1})
    keys: list[str] = []
    result = rebuild(lost, ctx, "tcp://127.0.0.9:1", keys, holders)
    assert result.key == f"ctxevenodd-{LEFT}"
    assert made == [(f"ctxcal-{LEFT}", [f"spiceinit-{LEFT}"]), (f"ctxevenodd-{LEFT}", [f"ctxcal-{LEFT}"])]
    assert holders.staged == [(f"spiceinit-{LEFT}", "w1")]
    assert holders.guarded == [f"ctxevenodd-{LEFT}", f"ctxcal-{LEFT}"]
    assert f"mroctx2isis-{LEFT}" not in keys  # never made, never copied: nothing of it to clean here
