"""The driver's tile bookkeeping (batch/tilework.py) without a cluster: attempts, retries, the verdict.

The submitter and the deliverer are stand-ins that record what they are
asked; the database is a real one.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import pathlib
import shutil

import dask
import pytest

from ctxdask.batch.delivery import Delivered
from ctxdask.batch.model import Outcome, StepTask
from ctxdask.batch.pairlist import Pair
from ctxdask.batch.state import RunState, Tracked
from ctxdask.batch.tiles import TilePlan, TilePlanTask
from ctxdask.batch.tilework import TileWork
from ctxdask.settings import BatchSection
from ctxdask.tools.recipe import build_recipe
from ctxdask.tools.tasks import RunOptions, StepResult
from ctxdask.tools.tiling import Tile
from ctxdask.tracking import TrackingDB

from .conftest import IDS

LEFT, RIGHT = IDS[0], IDS[1]
PAIR = f"{LEFT}-{RIGHT}"
TILES = tuple(Tile(i, 16 * i, 0, 16, 16, 4) for i in range(4))


class _Submitter:
    def __init__(self, recipe):
        self.recipe, self.run_tag, self.later = recipe, "run1", {}
        self.tiles, self.mosaics = [], []

    def submit_tile(self, task, avoid=(), workers=None):
        self.tiles.append((task, list(avoid)))
        self.placed = getattr(self, "placed", {}) | {task.dask_key: workers}

    def submit_mosaics(self, pair, calls, upstream):
        self.mosaics.append((pair.pair_id, [c.key for c in calls], [o.key for o in upstream]))


class _Deliverer:
    """Copies a tile's files into the output folder at once."""

    def submit(self, outcome, dest):
        future = concurrent.futures.Future()
        landed = []
        for path in outcome.result.outputs.values():
            target = dest / pathlib.Path(path).relative_to(outcome.result.workdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
            landed.append(Delivered(str(target), target.stat().st_size,
                                    hashlib.sha256(target.read_bytes()).hexdigest()))
        future.set_result(landed)
        return future


@pytest.fixture
def work(tmp_path):
    recipe = build_recipe(stereo_mode="tiled", lowres_dem="/dem.tif")
    state = RunState()
    pair = Pair(LEFT, RIGHT)
    state.open_pairs([pair])
    for step in recipe.mosaic_steps:  # tracked from the pair's submission, not sent
        key = step.key_for({"left": LEFT, "right": RIGHT})
        state.tracked[key] = Tracked(StepTask(key=key, step=step.name, kind="recipe", scope="pair", subject=PAIR,
                                              timeout=60.0), ())
        state.subject_keys.setdefault(PAIR, set()).add(key)
    db = TrackingDB(tmp_path / "db.sqlite")
    db.register([pair], pair.images)
    deliveries: dict = {}

    def make(min_fraction: float, fallbacks: list | None = None) -> TileWork:
        """TileWork of the pair; without ``fallbacks`` (parameter sets) an ASP error is final."""
        with dask.config.set({"ctxdask.batch.min-tile-fraction": min_fraction, "ctxdask.batch.tile-retries": 1,
                              "ctxdask.tools.asp.tile-fallbacks": fallbacks or []}):
            tiled = build_recipe(stereo_mode="tiled", lowres_dem="/dem.tif")
            return TileWork(None, state, db, 1, out=tmp_path / "out", submitter=_Submitter(tiled),
                            deliverer=_Deliverer(), deliveries=deliveries, settings=BatchSection.from_config(),
                            options=RunOptions(work_dir=str(tmp_path / "scratch")))

    with db.transaction():  # as the driver's loop writes: one transaction per pass
        yield make, state, db, tmp_path
    db.close()


def _attempt(tw: TileWork, state: RunState, tmp_path, index: int, status: str = "done", kind: str | None = None,
             task=None):
    """The last submitted attempt of tile ``index`` (or ``task``) ends with ``status``; returns what the handler
    returned."""
    task = task or next(t for t, _ in reversed(tw.submitter.tiles) if t.tile.index == index)
    workdir = tmp_path / "scratch" / f"{task.step.key}"
    dem = workdir / f"{task.tile.prefix()}-DEM.tif"
    dem.parent.mkdir(parents=True, exist_ok=True)
    dem.write_bytes(b"dem %d" % index)
    result = StepResult(key=task.step.key, step="stereo_tile", program="stereo_tile", workdir=str(workdir),
                        outputs={"dem": str(dem)}, log_path="", returncode=0, duration=1.0, started="", host="h",
                        cached=False, fingerprint="f")
    info = {"index": index} | ({"failure_kind": kind} if kind else {})
    outcome = Outcome(key=task.step.key, step="stereo_tile", subject=PAIR, status=status, worker=f"w{task.attempt}",
                      result=result if status == "done" else None, info=info,
                      error=None if status == "done" else f"{kind}: it broke")
    state.tiles[task.dask_key] = Tracked(task, ())
    ended = tw.attempt_done(state.tiles[task.dask_key], outcome)
    for cf, key in list(tw.deliveries.items()):
        del tw.deliveries[cf]
        ended += tw.delivered(state.tiles[key], cf)
    return ended


def _plan(tw: TileWork) -> list[Outcome]:
    return tw.planned(TilePlanTask("tile_plan-x", PAIR), TilePlan(TILES, None, 12.0, worker="w0"))


def test_enough_good_tiles_send_the_mosaics_with_the_tiles_home(work):
    make, state, db, tmp = work
    tw = make(0.7)
    assert _plan(tw) == [] and [t.tile.index for t, _ in tw.submitter.tiles] == [0, 1, 2, 3]
    assert _attempt(tw, state, tmp, 0) == []
    assert _attempt(tw, state, tmp, 1, "timeout", "timeout") == []  # transient: tried again
    retry, avoid = tw.submitter.tiles[-1]
    assert retry.tile.index == 1 and retry.attempt == 2 and avoid == ["w1"]
    assert retry.dask_key.endswith("-run1-try2")
    assert _attempt(tw, state, tmp, 2, "failed", "error") == []  # ASP explained it: final
    assert _attempt(tw, state, tmp, 1) == [] and _attempt(tw, state, tmp, 3) == []
    ((pair, mosaics, upstream),) = tw.submitter.mosaics
    assert pair == PAIR and sorted(mosaics) == sorted(state.tracked)
    assert upstream == [f"stereo_tile-{PAIR}-{i:03d}" for i in (0, 1, 3)]
    rows = {r["tile_index"]: r for r in db.tiles(PAIR)}
    assert [rows[i]["status"] for i in range(4)] == ["done", "done", "failed", "done"]
    assert all((tmp / "out" / p).is_file() for i in (0, 1, 3) for p in rows[i]["outputs"].values())
    assert [a["status"] for a in db.tile_attempts(PAIR, 1)] == ["timeout", "done"]
    # the done tiles' work dirs go as soon as they are home; the failed attempt's stays with the pair
    assert sorted(state.to_clean) == ["w1", "w2"]
    assert state.loose_copies[PAIR] == {f"stereo_tile-{PAIR}-001", f"stereo_tile-{PAIR}-002"}


def test_an_asp_error_sends_the_tile_again_with_the_next_parameter_set(work):
    make, state, db, tmp = work
    tw = make(0.7, fallbacks=[{"stereo-algorithm": "asp_sgm", "corr-kernel": [7, 7]}])
    _plan(tw)
    for i in (0, 1, 3):
        _attempt(tw, state, tmp, i)
    assert _attempt(tw, state, tmp, 2, "failed", "error") == []
    again, _ = tw.submitter.tiles[-1]
    argv = list(again.step.call.argv)
    assert (again.tile.index, again.attempt, again.param_set) == (2, 2, 1)
    assert argv[argv.index("--stereo-algorithm") + 1: argv.index("--stereo-algorithm") + 5] == \
        ["asp_sgm", "--corr-kernel", "7", "7"]
    assert again.step.key == f"stereo_tile-{PAIR}-002"  # the tile's own work dir and key
    assert _attempt(tw, state, tmp, 2) == [] and len(tw.submitter.mosaics) == 1
    row = next(r for r in db.tiles(PAIR) if r["tile_index"] == 2)
    assert (row["status"], row["param_set"], row["param_label"]) == ("done", 1, "asp_sgm, corr-kernel 7 7")
    assert [(a["param_set"], a["status"]) for a in db.tile_attempts(PAIR, 2)] == [(0, "failed"), (1, "done")]


class _Future:
    cancelled = False

    def cancel(self):
        self.cancelled = True


def _running(tw: TileWork, state: RunState, task, worker: str) -> _Future:
    """``task`` was sent and its worker announced it."""
    future = state.tiles.setdefault(task.dask_key, Tracked(task, ())).future = _Future()
    tw.started({"dask_key": task.dask_key, "worker": worker, "host": "h", "started": None})
    return future


def test_a_hedged_tile_is_done_once_and_its_twin_superseded(work):
    make, state, db, tmp = work
    tw = make(0.7)
    _plan(tw)
    originals = {t.tile.index: t for t, _ in tw.submitter.tiles}
    _attempt(tw, state, tmp, 0)
    stopped = {i: _running(tw, state, originals[i], "w1") for i in (1, 2)}
    for i in (1, 2):
        tw._duplicate(originals[i], "w2")
    twins = {t.tile.index: t for t, _ in tw.submitter.tiles[-2:]}
    assert all(t.step.key == f"stereo_tile-{PAIR}-00{i}-hedge" and tw.submitter.placed[t.dask_key] == ["w2"]
               for i, t in twins.items())
    for i in (1, 2):
        _running(tw, state, twins[i], "w2")
    # tile 1: the duplicate finishes first; the original is stopped (its future released) and superseded
    assert _attempt(tw, state, tmp, 1, task=twins[1]) == []
    assert stopped[1].cancelled and originals[1].dask_key not in state.tiles
    assert [(a["status"], a["worker"]) for a in db.tile_attempts(PAIR, 1)] == [("superseded", "w1"), ("done", "w2")]
    assert f"stereo_tile-{PAIR}-001" in state.loose_copies[PAIR]  # what the loser left goes with the pair
    # tile 2: the original times out while its duplicate runs: the tile is the duplicate's, which then fails too
    assert _attempt(tw, state, tmp, 2, "timeout", "timeout", task=originals[2]) == []
    assert tw.pairs[PAIR].state[2] == "running" and len(tw.submitter.tiles) == 6  # nothing sent again
    assert _attempt(tw, state, tmp, 2, "failed", "crash", task=twins[2]) == []
    assert tw.submitter.tiles[-1][0].tile.index == 2 and not stopped[2].cancelled  # a retry, not a duplicate
    _attempt(tw, state, tmp, 2)
    _attempt(tw, state, tmp, 3)
    assert len(tw.submitter.mosaics) == 1
    assert [r["status"] for r in db.tiles(PAIR)] == ["done"] * 4
    assert [a["status"] for a in db.tile_attempts(PAIR, 2)] == ["timeout", "failed", "done"]


def test_too_few_good_tiles_end_the_mosaics_failed_listing_them(work):
    make, state, db, tmp = work
    tw = make(0.9)
    _plan(tw)
    ended = []
    for i in range(4):
        ended += _attempt(tw, state, tmp, i, *(("done",) if i == 0 else ("failed", "error")))
    assert tw.submitter.mosaics == []
    assert sorted(o.key for o in ended) == sorted(state.tracked)
    assert {o.status for o in ended} == {"failed"}
    assert all("3 of 4 tiles failed" in o.error and f"tile 2 ({TILES[2].name}): error" in o.error for o in ended)


def test_a_prep_step_that_failed_skips_the_mosaics(work):
    make, state, db, tmp = work
    tw = make(0.9)
    blocked = TilePlan((), None, 0.0, blocked_by=f"stereo_parse-{PAIR}", blocked_status="failed")
    ended = tw.planned(TilePlanTask("tile_plan-x", PAIR), blocked)
    assert {(o.status, o.blocked_by) for o in ended} == {("skipped", f"stereo_parse-{PAIR}")}
    assert tw.submitter.tiles == [] and db.tiles(PAIR) == []
    failed = tw.planned(TilePlanTask("tile_plan-x", PAIR), RuntimeError("boom"))
    assert {o.status for o in failed} == {"failed"} and "planning the tiles failed: boom" in failed[0].error
