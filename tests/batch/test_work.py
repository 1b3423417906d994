"""A step recorded done is reused wherever it was made (issue 19, break 6).

Two workers on two loopback addresses with their own scratch (no shared
filesystem); the default native calibration without ISIS (``spiceinit`` not
installed), so every pair is skipped. The rerun's image tasks can only run on
the other worker: the finished calibration is pulled from the worker that
holds it, never made again.
"""

from __future__ import annotations

import functools

import pytest

from ctxdask.batch import run_batch
from ctxdask.exceptions import ToolNotFoundError
from ctxdask.tools.recipe import build_recipe
from ctxdask.tools.tasks import run_step

from ..tools.conftest import standin_path
from .conftest import IDS, make_images, query, two_host_client, write_pairs

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

PAIRS = [(IDS[0], IDS[1])]


def _without(call, *upstream, options, missing=()):
    """run_step, except that the programs of the steps in ``missing`` are not installed."""
    if call.step in missing:
        raise ToolNotFoundError(call.program, "program not found on PATH (test)", command=[call.program])
    return run_step(call, *upstream, options=options)


def test_a_pair_skipped_for_a_missing_program_redoes_nothing_done_wherever_it_was_made(tmp_path):
    edr = make_images(tmp_path / "edr", IDS[:2])
    pairs = write_pairs(tmp_path / "pairs.txt", PAIRS)
    out = tmp_path / "out"
    db = out / "ctxdask-batch.sqlite"
    no_isis = functools.partial(_without, missing=("spiceinit",))
    with two_host_client(tmp_path, standin_path(), ({"cal_a": 1, "stereo": 1}, {"cal_b": 1, "stereo": 1})) as client:
        # run 1: the images are calibrated on a (the only worker with cal_a)
        first = run_batch(pairs, out, source=edr, client=client, runner=no_isis,
                          recipe=build_recipe(calibration="native", resources={"calibrate": {"cal_a": 1}}),
                          settings={"batch.progress": False})
        before = dict(query(db, "SELECT key, attempts FROM steps WHERE step = 'calibrate'"))
        where = set(query(db, "SELECT DISTINCT substr(worker, 7, 9) FROM steps WHERE step = 'calibrate'"))
        # run 2, the same pair list: the image tasks can only run on b (same keys, same fingerprints)
        second = run_batch(pairs, out, source=edr, client=client, runner=no_isis,
                           recipe=build_recipe(calibration="native", resources={"calibrate": {"cal_b": 1}}),
                           settings={"batch.progress": False})
        spice = query(db, "SELECT substr(worker, 7, 9), attempts FROM steps WHERE step = 'spiceinit'")
    assert first.pairs == {"skipped": 1}, first
    assert len(before) == 2 and set(before.values()) == {1} and where == {("127.0.0.1",)}
    assert second.pairs == {"skipped": 1}, second
    # the rerun tried spiceinit again, on b, but made no calibration again: pulled from a, its row untouched
    assert {w for w, _ in spice} == {"127.0.0.2"}
    assert dict(query(db, "SELECT key, attempts FROM steps WHERE step = 'calibrate'")) == before
    assert set(query(db, "SELECT DISTINCT substr(worker, 7, 9) FROM steps WHERE step = 'calibrate'")) == where
