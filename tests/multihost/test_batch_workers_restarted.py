"""``ctxdask batch`` across hosts: the driver SIGKILLed after tiles came home, then every worker restarted and run again
(checks: test_batch.py)."""

from __future__ import annotations

from functools import partial

from .checks import assert_no_program_left, assert_pairs_done, assert_scratch_empty, done_tiles, executions, remade
from .conftest import WORKERS
from .scenario import MARKS, P1, P2, P3, kill_driver_after_tiles_came_home, once_per_live_worker, verify

pytestmark = MARKS


def test_driver_killed_every_worker_restarted_then_rerun(multihost):
    pairs = [P1, P2, P3]
    mh = multihost(pairs, env={"CTXDASK_STANDIN_TILE_SLEEP": "1"})
    before = kill_driver_after_tiles_came_home(mh)
    for name, ip in WORKERS.items():
        mh.kill_worker(name)
        mh.start_worker(name, ip, fresh=True)
    code = mh.run_driver(timeout=420)

    def rerun_finished():
        assert code == 0, mh.driver_log()[-3000:]
        assert before["pending"], "the driver was not killed between tiles and mosaic"

    def tiles_home_not_made_again():
        # their makers are gone, but the tiles are home: the mosaic's worker pulls them from the driver
        again = remade(before["runs"], executions(mh), before["tiles"])
        assert again == {}, f"tiles delivered before the driver died were made again: {again}"
        after = done_tiles(mh)
        changed = {k: (v, after.get(k)) for k, v in before["tiles"].items() if after.get(k) != v}
        assert changed == {}, f"tiles recorded done were recorded again (attempts, attempt rows): {changed}"

    verify(rerun_finished, partial(assert_pairs_done, mh, pairs), tiles_home_not_made_again,
           partial(once_per_live_worker, mh), partial(assert_no_program_left, mh), partial(assert_scratch_empty, mh))
