"""``ctxdask batch`` on machines that share no filesystem (issue 19, breaks 4, 5 and 6).

A ``dask scheduler``, three ``dask worker --nanny`` and the driver, each in its
own mount namespace with a private ``/tmp``, home and scratch (the same paths,
other contents) on its own loopback address; EDRs only over HTTP
(tests/multihost/harness.py). Every test ends with the same four checks, all
made even when one fails so a failure names everything that went wrong:

1. every pair is done with valid DEM products, each file as the database records it;
2. no step or tile recorded done was made again while the worker that made it lived
   (the stand-ins' call logs: a step's run is its own ``<key>.tmp-*`` work dir);
3. no stand-in program is left running;
4. every live worker's scratch is empty again.
"""

from __future__ import annotations

from functools import partial

import pytest

from .checks import assert_no_program_left, assert_pairs_done, assert_scratch_empty, executions, query
from .scenario import MARKS, P1, P2, verify

# the fault scenarios are in test_batch_worker_killed.py and test_batch_driver_killed.py (files of their
# own, so that pytest-xdist --dist loadfile spreads them over its workers)
pytestmark = MARKS


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "monolithic"])
def test_clean_run(multihost, tiled):
    mh = multihost([P1, P2], tiled=tiled)
    code = mh.run_driver(timeout=420)

    def ran_as_asked():
        assert code == 0, mh.driver_log()[-3000:]
        tiles = query(mh.database, "SELECT status, count(*) FROM tiles GROUP BY status")
        assert tiles == ([("done", 16)] if tiled else []), tiles
        hosts = {area for runs in executions(mh).values() for area, _ in runs}
        assert len(hosts) >= 2, f"the work ran on {hosts} only"
        fetched = {path.strip("/") for method, path, _ in mh.server.log if method == "GET"}
        assert fetched == {f"{i}.IMG" for i in {*P1, *P2}}, f"EDRs not fetched over HTTP: {fetched}"

    def nothing_made_twice():
        twice = {k: v for k, v in executions(mh).items() if len(v) > 1}
        assert twice == {}, f"steps made twice in a clean run: {twice}"

    verify(ran_as_asked, partial(assert_pairs_done, mh, [P1, P2]), nothing_made_twice,
           partial(assert_no_program_left, mh), partial(assert_scratch_empty, mh))
