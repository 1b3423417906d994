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

import time
from functools import partial

import pytest

from .checks import (
    assert_no_program_left,
    assert_pairs_done,
    assert_scratch_empty,
    done_steps,
    done_tiles,
    executions,
    query,
    remade,
)
from .conftest import IDS, WORKERS

# unshare and mount: skipped where missing, failed in CI (.ci/run installs and requires them)
pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(1200), pytest.mark.requires_tool("unshare"),
              pytest.mark.requires_tool("mount")]

P1, P2, P3 = (IDS[0], IDS[1]), (IDS[1], IDS[2]), (IDS[2], IDS[3])


def verify(*checks) -> None:
    """Run every check; fail listing each one that failed."""
    failures = []
    for check in checks:
        try:
            check()
        except AssertionError as exc:
            name = getattr(check, "func", check).__name__
            failures.append(f"{name}: {exc}")
    assert not failures, "\n\n".join(failures)


def wait_for(condition, timeout: float, what: str, mh):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if mh.driver.proc is not None and mh.driver.proc.poll() is not None:
            raise AssertionError(f"the driver ended (exit {mh.driver.proc.returncode}) before {what}:\n"
                                 + mh.driver_log()[-3000:])
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def once_per_live_worker(mh) -> None:
    """No step made again by a worker that made it, nor by another while its maker lived.

    Runs on workers alive at the end (and repeated runs on any one worker) are
    allowed only as far as the database records attempts that did not succeed:
    ``steps.attempts`` of a step, the attempt rows of a tile.
    """
    live = {h.area.name for h in mh.workers.values() if h.alive}
    attempts = dict(query(mh.database, "SELECT key, attempts FROM steps"))
    for pair, index, count in query(mh.database, "SELECT pair_id, tile_index, count(*) FROM tile_attempts "
                                                 "GROUP BY pair_id, tile_index"):
        attempts[f"stereo_tile-{pair}-{index:03d}"] = count
    twice = {}
    for key, runs in executions(mh).items():
        areas = [area for area, _ in runs]
        repeated = len(areas) - len(set(areas)) + max(0, sum(a in live for a in set(areas)) - 1)
        if repeated and len(runs) > max(1, attempts.get(key, 1)):
            twice[key] = runs
    assert twice == {}, f"steps made again while the worker that made them lived: {twice}"


def tiles_home_without_mosaic(mh, minimum: int):
    """Pairs with at least one tile home and no mosaic yet, once ``minimum`` tiles are home."""
    try:
        rows = query(mh.database, "SELECT t.pair_id, count(*) FROM tiles t JOIN pairs p USING (pair_id) "
                                  "WHERE t.status = 'done' AND p.status != 'done' GROUP BY t.pair_id")
        home = query(mh.database, "SELECT count(*) FROM tiles WHERE status = 'done'")[0][0]
    except Exception:  # noqa: BLE001 - the database is not made yet
        return None
    return rows if home >= minimum and rows else None


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


def _kill_driver_after_tiles_came_home(mh) -> dict:
    """Start the driver, SIGKILL it once tiles are home for a pair not yet mosaicked; what it left."""
    mh.start_driver()
    pending = wait_for(lambda: tiles_home_without_mosaic(mh, 6), 420, "6 tiles home", mh)
    mh.kill_driver()
    # what the dead driver's workers were running ends (or is stopped) before we look
    mh.wait_programs_gone(timeout=60)
    return {"pending": pending, "runs": executions(mh), "steps": done_steps(mh), "tiles": done_tiles(mh),
            "live": mh.live_addresses()}


def test_driver_killed_after_tiles_came_home_then_rerun(multihost):
    pairs = [P1, P2, P3]
    mh = multihost(pairs, env={"CTXDASK_STANDIN_TILE_SLEEP": "1"})
    before = _kill_driver_after_tiles_came_home(mh)
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


def test_driver_killed_every_worker_restarted_then_rerun(multihost):
    pairs = [P1, P2, P3]
    mh = multihost(pairs, env={"CTXDASK_STANDIN_TILE_SLEEP": "1"})
    before = _kill_driver_after_tiles_came_home(mh)
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
