"""``ctxdask batch`` across hosts: a worker SIGKILLed mid-tile is replaced (checks: test_batch.py)."""

from __future__ import annotations

import time
from functools import partial

from .checks import assert_no_program_left, assert_pairs_done, assert_scratch_empty, query
from .conftest import WORKERS
from .scenario import MARKS, P1, P2, once_per_live_worker, verify, wait_for

pytestmark = MARKS


def test_worker_killed_mid_tile_is_replaced(multihost):
    mh = multihost([P1, P2], env={"CTXDASK_STANDIN_TILE_SLEEP": "2"})
    mh.start_driver()
    victim = mh.workers["w2"]
    wait_for(victim.tiles_started, 420, "a tile to start on w2", mh)
    time.sleep(0.5)  # the tile is correlating (it sleeps 2 s)
    mh.kill_worker("w2")
    replacement = mh.start_worker("w2", WORKERS["w2"], fresh=True)
    code = mh.wait_driver(420)

    def killed_mid_tile():
        assert code == 0, mh.driver_log()[-3000:]
        cut = query(mh.database, "SELECT status FROM tile_attempts WHERE worker = ?", (victim.address,))
        assert any(status != "done" for status, in cut), f"no tile attempt was cut on the victim: {cut}"
        assert replacement.address != victim.address

    verify(killed_mid_tile, partial(assert_pairs_done, mh, [P1, P2]), partial(once_per_live_worker, mh),
           partial(assert_no_program_left, mh), partial(assert_scratch_empty, mh))
