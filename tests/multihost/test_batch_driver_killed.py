"""``ctxdask batch`` across hosts: the driver SIGKILLed after tiles came home, then run again with every worker still alive
(checks: test_batch.py)."""

from __future__ import annotations

from functools import partial

from .checks import (
    assert_no_program_left,
    assert_pairs_done,
    assert_scratch_empty,
    done_steps,
    done_tiles,
    executions,
    remade,
)
from .scenario import MARKS, P1, P2, P3, kill_driver_after_tiles_came_home, verify

pytestmark = MARKS


def test_driver_killed_after_tiles_came_home_then_rerun(multihost):
    pairs = [P1, P2, P3]
    mh = multihost(pairs, env={"CTXDASK_STANDIN_TILE_SLEEP": "1"})
    before = kill_driver_after_tiles_came_home(mh)
    code = mh.run_driver(timeout=420)  # the same command again; every worker and its scratch still alive

    def rerun_finished():
        assert code == 0, mh.driver_log()[-3000:]
        assert before["pending"], "the driver was not killed between tiles and mosaic"

    def nothing_done_made_again():
        kept = [k for k, (worker, _, _) in before["steps"].items() if worker in before["live"]]
        again = remade(before["runs"], executions(mh), [*kept, *before["tiles"]])
        assert again == {}, f"steps and tiles recorded done were made again while their workers lived: {again}"
        after_steps, after_tiles = done_steps(mh), done_tiles(mh)
        changed = {k: (before["steps"][k], after_steps.get(k)) for k in kept if after_steps.get(k) != before["steps"][k]}
        changed.update({k: (v, after_tiles.get(k)) for k, v in before["tiles"].items() if after_tiles.get(k) != v})
        assert changed == {}, f"done steps or tiles recorded again (worker, started, attempts): {changed}"

    verify(rerun_finished, partial(assert_pairs_done, mh, pairs), nothing_done_made_again,
           partial(assert_no_program_left, mh), partial(assert_scratch_empty, mh))
