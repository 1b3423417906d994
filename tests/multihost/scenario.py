"""What the multi-host batch tests share (tests/multihost/test_batch*.py): the pairs, the marks,
checks run all together, waiting on a running batch."""

from __future__ import annotations

import time

import pytest

from .checks import done_steps, done_tiles, executions, query
from .conftest import IDS

# unshare and mount: skipped where missing, failed in CI (.ci/run installs and requires them)
MARKS = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(1200), pytest.mark.requires_tool("unshare"),
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


def kill_driver_after_tiles_came_home(mh) -> dict:
    """Start the driver, SIGKILL it once tiles are home for a pair not yet mosaicked; what it left."""
    mh.start_driver()
    pending = wait_for(lambda: tiles_home_without_mosaic(mh, 6), 420, "6 tiles home", mh)
    mh.kill_driver()
    # what the dead driver's workers were running ends (or is stopped) before we look
    mh.wait_programs_gone(timeout=60)
    return {"pending": pending, "runs": executions(mh), "steps": done_steps(mh), "tiles": done_tiles(mh),
            "live": mh.live_addresses()}
