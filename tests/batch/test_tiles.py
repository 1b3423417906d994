"""Tiled stereo: retry by failure kind, the pair's verdict, and batches on a multi-process LocalCluster.

The cluster tests run ``run_batch`` in tiled mode on stand-in EDRs with the
ASP 3.7 stand-ins (``tests/standins/asp37``); faults reach ``stereo_tile``
through the recipe's environment (``CTXDASK_STANDIN_TILE_FAULTS``), attempts
are counted across processes in a counter folder.
"""

from __future__ import annotations

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings

import dask
import numpy as np
import pytest
import rasterio

from ctxdask.batch.tiles import PairTiles, TilePolicy, decide
from ctxdask.batch.work import Outcome
from ctxdask.tools.tiling import Tile

from .tiled import LEFT, RIGHT, ROOT, local_cluster, pair_end, prepare, run_tiled, tiled_path

PAIR = f"{LEFT}-{RIGHT}"


# ------------------------------------------------------------- pure policy
def _outcome(index: int, status: str = "done", kind: str | None = None, worker: str = "w1") -> Outcome:
    info = {"index": index} | ({"failure_kind": kind} if kind else {})
    return Outcome(key=f"t{index}", step="stereo_tile", subject="p", status=status, worker=worker,
                   error=None if status == "done" else f"{kind} happened; log /x; last lines:\n...", info=info)


def test_policy_retries_transient_failures_only():
    tiles = [Tile(i, 16 * i, 0, 16, 16, 4) for i in range(4)]
    state = PairTiles("p", tiles, TilePolicy(retries=2, min_fraction=0.5))
    assert [t.index for t in state.to_run()] == [0, 1, 2, 3]
    for t in tiles:
        state.start(t.index)
    assert state.record(_outcome(0)) == "done"
    assert state.record(_outcome(1, "timeout", "timeout")) == "retry"
    assert state.avoid(1) == ["w1"]
    assert state.record(_outcome(2, "failed", "error")) == "final"  # ASP explained it: no retry
    for _ in range(3):  # a crash every time: 1 + 2 retries, then final
        verdict = state.record(_outcome(3, "failed", "signal"))
        if verdict == "retry":
            state.start(3)
    assert verdict == "final" and state.tries[3] == 3
    state.start(1)
    assert state.record(_outcome(1)) == "done"
    assert state.finished
    decision = state.decision()
    assert decision.ok and decision.done == (0, 1) and set(decision.holes) == {2, 3}
    assert decision.holes[2] == "error: error happened" and "holes at tiles 2, 3" in decision.message


def test_an_asp_error_moves_the_tile_to_the_next_parameter_set():
    tiles = [Tile(i, 16 * i, 0, 16, 16, 4) for i in range(2)]
    state = PairTiles("p", tiles, TilePolicy(retries=1, sets=("asp_mgm", "asp_sgm", "asp_bm")))
    for t in tiles:
        state.start(t.index)
    assert state.record(_outcome(0, "failed", "error")) == "retry" and state.param[0] == 1
    state.start(0)
    # a transient failure retries the same set (up to retries), then it is final: no fallback for a mad tile
    assert state.record(_outcome(0, "timeout", "timeout")) == "retry" and state.param[0] == 1
    state.start(0)
    assert state.record(_outcome(0, "failed", "error")) == "retry" and state.param[0] == 2
    state.start(0)
    assert state.record(_outcome(0)) == "done" and state.param[0] == 2
    # every set failing: a hole whose reason says so
    for expected in ("retry", "retry", "final"):
        assert state.record(_outcome(1, "failed", "error")) == expected
        state.start(1)
    assert state.param[1] == 2 and state.tries[1] == 4
    assert state.reason[1] == "error: error happened (every parameter set failed: asp_mgm; asp_sgm; asp_bm)"
    decision = state.decision()
    assert decision.done == (0,) and decision.holes == {1: state.reason[1]}
    timed = PairTiles("p", tiles[:1], TilePolicy(retries=0, sets=("a", "b")))
    timed.start(0)
    assert timed.record(_outcome(0, "timeout", "timeout")) == "final" and timed.param[0] == 0


def test_below_min_fraction_the_pair_fails_listing_tiles():
    tiles = [Tile(i, 16 * i, 0, 16, 16, 4) for i in range(4)]
    state = PairTiles("p", tiles, TilePolicy(retries=0, min_fraction=0.9))
    for t in tiles:
        state.start(t.index)
        state.record(_outcome(t.index) if t.index == 3 else _outcome(t.index, "failed", "error"))
    decision = state.decision()
    assert not decision.ok and decision.fraction == 0.25
    assert "3 of 4 tiles failed" in decision.message
    assert all(f"tile {i} ({tiles[i].name}): error" in decision.message for i in (0, 1, 2))


def test_earlier_runs_done_and_failed_tiles():
    tiles = [Tile(i, 16 * i, 0, 16, 16, 4) for i in range(3)]
    previous = {0: {"status": "done"}, 1: {"status": "failed", "error": "error: bad"}, 2: {"status": "interrupted"}}
    plain = PairTiles("p", tiles, TilePolicy(), previous=previous)
    assert [t.index for t in plain.to_run()] == [2]
    again = PairTiles("p", tiles, TilePolicy(), previous=previous, retry_failed=True)
    assert [t.index for t in again.to_run()] == [1, 2]


def test_decide_is_a_function_of_how_the_tiles_ended():
    tiles = {i: Tile(i, 16 * i, 0, 16, 16, 4) for i in range(10)}
    ends = {i: ("done", "done") for i in range(10)}
    assert decide(tiles, ends, TilePolicy(min_fraction=0.9)).message == "all 10 tiles done"
    ends[4] = ("timeout", "timeout: 30 s")
    holed = decide(tiles, ends, TilePolicy(min_fraction=0.9))
    assert holed.ok and holed.done == (0, 1, 2, 3, 5, 6, 7, 8, 9) and holed.holes == {4: "timeout: 30 s"}
    assert holed.message == "9/10 tiles done; DEM with holes at tiles 4"
    ends[5] = ("failed", "error: no matches")
    short = decide(tiles, ends, TilePolicy(min_fraction=0.9))
    assert not short.ok and short.fraction == 0.8
    assert short.message.startswith("2 of 10 tiles failed, fewer than batch.min-tile-fraction 0.9 succeeded: ")
    assert f"tile 5 ({tiles[5].name}): error: no matches" in short.message
    # a tile with no end at all is a hole, never a good tile; a pair without tiles gets no DEM
    del ends[9]
    assert 9 in decide(tiles, ends, TilePolicy(min_fraction=0.0)).holes
    assert not decide({}, {}, TilePolicy(min_fraction=0.0)).ok


# --------------------------------------------------------------- cluster
@pytest.fixture(scope="module")
def tiled_client():
    """A 2-process LocalCluster (stereo=1 each) whose workers see the ASP 3.7 stand-ins."""
    from distributed import Client

    old = os.environ["PATH"]
    os.environ["PATH"] = tiled_path()
    sys.path.insert(0, ROOT)
    try:
        with local_cluster(2) as cluster, Client(cluster) as client:
            yield client
    finally:
        os.environ["PATH"] = old
        sys.path.remove(ROOT)


def _run(client, tmp: pathlib.Path, faults: str = "", *, size: str = "64x48", tile_timeout: float = 30.0,
         policy: TilePolicy | None = None, retry_failed: bool = False, extra_env: dict | None = None,
         settings: dict | None = None):
    """A tiled batch of the pair (``run_batch``); how the pair ended, from the database."""
    env = {"CTXDASK_STANDIN_TILE_FAULTS": faults, "CTXDASK_STANDIN_TILE_COUNTS": str(tmp / "counts"),
           "CTXDASK_STANDIN_MAP_SIZE": size, "CTXDASK_STANDIN_TILE_STARTED": str(tmp / "started.txt"),
           **(extra_env or {})}
    policy = policy or TilePolicy(retries=2, min_fraction=0.9)
    run_tiled(client, tmp, env=env, tile_timeout=tile_timeout, retries=policy.retries,
              min_fraction=policy.min_fraction, retry_failed=retry_failed, settings=settings)
    return pair_end(tmp / "out", PAIR)


def _db(tmp: pathlib.Path):
    from ctxdask.tracking import TrackingDB

    return TrackingDB(tmp / "out" / "ctxdask-batch.sqlite", readonly=True)


def tile_rows(db, pair_id: str) -> list[dict]:
    """The tiles of a pair with their attempts."""
    attempts: dict[int, list[dict]] = {}
    for row in db.tile_attempts(pair_id):
        attempts.setdefault(row["tile_index"], []).append(row)
    return [{**row, "attempt_rows": attempts.get(row["tile_index"], [])} for row in db.tiles(pair_id)]


def test_twelve_tiles_one_mad_once_one_crashing_always(tiled_client, tmp_path, capsys):
    # the deadline leaves healthy stand-in tiles (~2 s on a loaded 2-core machine) ample room
    pair = _run(tiled_client, tmp_path, "5:hang@1,7:crash", tile_timeout=8.0)
    assert pair.status == "done", pair.error
    assert pair.total == 12 and len(pair.done) == 11 and set(pair.holes) == {7}
    with _db(tmp_path) as db:
        rows = {r["tile_index"]: r for r in tile_rows(db, PAIR)}
        table = "\n".join(str((a["tile_index"], a["attempt"], a["worker"], a["status"], a["failure_kind"],
                                a["duration"])) for r in rows.values() for a in r["attempt_rows"])
        five = rows[5]["attempt_rows"]
        assert [(a["status"], a["failure_kind"]) for a in five] == [("timeout", "timeout"), ("done", None)], table
        # the retry is sent to the other worker with a loose restriction (a strict one would wait forever for a
        # worker that left), so the scheduler may still place it back; CI saw that once under load (session 9)
        if five[0]["worker"] == five[1]["worker"]:
            warnings.warn(f"tile 5's retry ran on the worker it timed out on:\n{table}", stacklevel=1)
        seven = rows[7]["attempt_rows"]
        assert [(a["status"], a["failure_kind"], a["exit_code"]) for a in seven] == [("failed", "signal", -11)] * 3
        assert rows[7]["status"] == "failed" and "SIGSEGV" in rows[7]["error"]
        assert all(len(r["attempt_rows"]) == 1 for i, r in rows.items() if i not in (5, 7)), table
        workers = {a["worker"] for r in rows.values() for a in r["attempt_rows"]}
        assert len(workers) == 2, "the tiles of one pair ran on both workers"
        assert db.rows("SELECT status FROM pairs")[0]["status"] == "done"
        # every done tile's outputs are home, checksummed
        products = {r["path"]: r["sha256"] for r in db.rows("SELECT path, sha256 FROM products")}
        for r in rows.values():
            for rel in r["outputs"].values():
                assert r["sha256"][rel] == products[rel] and (tmp_path / "out" / rel).is_file()
    # the mosaic has the hole where tile 7 is (stand-in tile DEMs hold -1500 - index)
    dem = tmp_path / "out" / "pairs" / PAIR / "results" / "out-DEM.tif"
    with rasterio.open(dem) as src:
        data = src.read(1)
        values = set(np.unique(data[data != src.nodata]).tolist())
        assert values == {-1500.0 - i for i in range(12) if i != 7}
        row, col = src.index(*(src.xy(0, 0)))  # the upper-left tile is there
        assert data[row, col] == -1500.0
    # and the tile map shows it
    from ctxdask.report.tilemap import tile_map_for_pair
    from ctxdask.tracking import BatchView

    with BatchView(tmp_path / "out" / "ctxdask-batch.sqlite") as view:
        png = tile_map_for_pair(view, tmp_path / "out", PAIR, tmp_path / "map.png", size=400)
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    # tile 7 is the last of the middle row of a 4 x 3 grid: its centre is red-hatched
    h, w = 3 * 100, 4 * 100
    centre = image[10 + h // 2 - 20: 10 + h // 2 + 20, 10 + w - 70: 10 + w - 30].reshape(-1, 3)
    assert (centre[:, 0] > 180).mean() > 0.9 and (centre[:, 1] < 200).mean() > 0.5
    # the static report shows it beside the pair
    from ctxdask.report import build_report

    html = build_report(tmp_path / "out").read_text()
    assert "tile map" in html and f"{PAIR}_tiles.png" in html
    assert (tmp_path / "out" / "report" / "files" / "thumbs" / f"{PAIR}_tiles.png").is_file()
    # the pair's record says where the holes are
    from ctxdask.cli import main

    assert main(["status", str(tmp_path / "out")]) == 0
    assert f"{PAIR}: DEM from 11/12 tiles (holes recorded)" in capsys.readouterr().out


def test_three_of_four_tiles_failing_fails_the_pair(tiled_client, tmp_path):
    with dask.config.set({"ctxdask.tools.asp.tile-fallbacks": []}):  # no fallback: an ASP error is final
        pair = _run(tiled_client, tmp_path, "0:fail,1:fail,2:fail", size="32x32")
    assert pair.status == "failed"
    assert "3 of 4 tiles failed" in pair.error
    for i, name in ((0, "0_0_16_16"), (1, "16_0_16_16"), (2, "0_16_16_16")):
        assert f"tile {i} ({name}): error" in pair.error
    with _db(tmp_path) as db:
        attempts = db.rows("SELECT tile_index, count(*) AS n FROM tile_attempts GROUP BY tile_index")
        assert {r["tile_index"]: r["n"] for r in attempts} == {0: 1, 1: 1, 2: 1, 3: 1}  # errors are not retried
        assert db.rows("SELECT status, error FROM pairs")[0]["status"] == "failed"
    assert not (tmp_path / "out" / "pairs" / PAIR / "results").exists()


def test_a_tile_mgm_cannot_correlate_is_made_by_the_next_parameter_set(tiled_client, tmp_path):
    # tile 1 fails under MGM only (ASP's "ERROR: ... Not enough valid matches", exit 1); tile 2 under every algorithm
    calls = tmp_path / "calls.jsonl"
    pair = _run(tiled_client, tmp_path, "1:fail/asp_mgm,2:fail", size="32x32",
                policy=TilePolicy(retries=0, min_fraction=0.7), extra_env={"CTXDASK_STANDIN_CALLS": str(calls)})
    assert pair.status == "done", pair.error
    assert pair.done == (0, 1, 3) and set(pair.holes) == {2}
    assert pair.holes[2].startswith("error: ") and pair.holes[2].endswith(
        "(every parameter set failed: asp_mgm; asp_sgm, corr-kernel 7 7; asp_bm, corr-kernel 35 35, subpixel-mode 3)")
    with _db(tmp_path) as db:
        rows = {r["tile_index"]: r for r in tile_rows(db, PAIR)}
    assert (rows[1]["param_set"], rows[1]["param_label"]) == (1, "asp_sgm, corr-kernel 7 7")
    assert [(a["param_set"], a["status"], a["failure_kind"]) for a in rows[1]["attempt_rows"]] == \
        [(0, "failed", "error"), (1, "done", None)]
    assert [(a["param_set"], a["status"]) for a in rows[2]["attempt_rows"]] == [(0, "failed"), (1, "failed"),
                                                                               (2, "failed")]
    assert rows[0]["param_set"] == rows[3]["param_set"] == 0 and len(rows[0]["attempt_rows"]) == 1
    # each set reached stereo_tile as its own options, replacing the configured ones
    import json

    argvs = [c["argv"] for c in map(json.loads, calls.read_text().splitlines()) if c["program"] == "stereo_tile"
             and c["argv"][c["argv"].index("--tile-index") + 1] == "2"]
    assert [(a[a.index("--stereo-algorithm") + 1], a[a.index("--subpixel-mode") + 1],
             a[a.index("--corr-kernel") + 1] if "--corr-kernel" in a else None) for a in argvs] == \
        [("asp_mgm", "9", None), ("asp_sgm", "9", "7"), ("asp_bm", "3", "35")]
    # the DEM has no hole at tile 1 (stand-in tile DEMs hold -1500 - index), one at tile 2
    with rasterio.open(tmp_path / "out" / "pairs" / PAIR / "results" / "out-DEM.tif") as src:
        data = src.read(1)
        assert set(np.unique(data[data != src.nodata]).tolist()) == {-1500.0, -1501.0, -1503.0}
    # the provenance says which set made each tile
    record = json.loads((tmp_path / "out" / "pairs" / PAIR / "provenance.json").read_text())
    assert {t["index"]: (t["status"], t["param_set"]) for t in record["tiles"]} == \
        {0: ("done", 0), 1: ("done", 1), 2: ("failed", 2), 3: ("done", 0)}
    assert record["tiles"][1]["param_label"] == "asp_sgm, corr-kernel 7 7"
    # the tile map colours tile 1 by its set (purple), tile 0 as done first try (green)
    from PIL import Image

    from ctxdask.report.tilemap import tile_map_for_pair
    from ctxdask.tracking import BatchView

    with BatchView(tmp_path / "out" / "ctxdask-batch.sqlite") as view:
        png = tile_map_for_pair(view, tmp_path / "out", PAIR, tmp_path / "map.png", size=400)
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    (_, g0, b0), (r1, g1, b1) = image[10 + 150, 10 + 100], image[10 + 150, 10 + 300]
    assert g0 - b0 > 15 and b1 - g1 > 15 and r1 - g1 > 15, (image[160, 110], image[160, 310])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_straggling_tile_is_hedged_and_its_duplicate_wins(tiled_client, tmp_path):
    # tile 3 is slow on its first attempt only (well inside its deadline); a duplicate on the other worker wins
    pids = tmp_path / "pids.txt"
    pair = _run(tiled_client, tmp_path, "3:slow=80@1", size="32x32", extra_env={"CTXDASK_STANDIN_PIDFILE": str(pids)},
                tile_timeout=100.0, settings={"batch.hedge-factor": 2.0, "batch.hedge-after-seconds": 1.0})
    assert pair.status == "done" and pair.done == (0, 1, 2, 3), pair
    with _db(tmp_path) as db:
        rows = {r["tile_index"]: r for r in tile_rows(db, PAIR)}
        products = db.rows("SELECT path, key FROM products WHERE path LIKE ?", (f"pairs/{PAIR}/tiles/003/%",))
    three = rows[3]["attempt_rows"]
    assert [(a["status"], "-003-hedge-" in a["dask_key"]) for a in three] == \
        [("superseded", False), ("done", True)], three
    assert three[0]["worker"] != three[1]["worker"] and "finished first" in three[0]["error"]
    assert all(len(r["attempt_rows"]) == 1 for i, r in rows.items() if i != 3)
    # done once, delivered once: the files home are the duplicate's
    assert rows[3]["status"] == "done" and products and {p["key"] for p in products} == {
        f"stereo_tile-{PAIR}-003-hedge"}
    # the tile was made well before its slow first attempt would have ended (20 s)
    import datetime

    stamp = datetime.datetime.fromisoformat
    assert (stamp(three[1]["ended"]) - stamp(three[0]["started"])).total_seconds() < 30, three
    # the loser's stereo_tile was stopped: no stand-in process of the run is left
    started = {tuple(line.split()[:2]): int(line.split()[2]) for line in (tmp_path / "started.txt").read_text()
               .splitlines()}
    assert ("3", "1") in started and ("3", "2") in started
    # left alone, the slow attempt would still be sleeping now (and its slot would have held the mosaics back)
    assert time.time() - stamp(three[0]["started"]).timestamp() < 75, "the run waited for the superseded attempt"
    every = [int(line.split()[1]) for line in pids.read_text().splitlines()] + list(started.values())
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in every) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in every if _alive(p)]


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_worker_killed_mid_tile_reruns_only_that_tile(tiled_client, tmp_path):
    import threading

    started = tmp_path / "started.txt"
    hung: list[int] = []

    def kill_worker_of_tile_2():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = started.read_text().split("\n") if started.exists() else []
            hit = [ln.split() for ln in lines if ln.startswith("2 1 ")]
            if hit:
                pid = int(hit[0][2])
                hung.append(pid)
                time.sleep(0.5)
                os.kill(_ppid(pid), signal.SIGKILL)  # the worker process that ran stereo_tile
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_worker_of_tile_2, daemon=True)
    killer.start()
    try:
        pair = _run(tiled_client, tmp_path, "2:hang@1", size="32x32", tile_timeout=60.0)
    finally:
        killer.join(5)
        for pid in hung:  # the hung stand-in outlived its worker (the runner's orphan watchdog is elsewhere)
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
    assert hung and pair.status == "done", pair.error
    runs = [ln.split()[:2] for ln in started.read_text().splitlines()]
    assert sorted(runs) == [["0", "1"], ["1", "1"], ["2", "1"], ["2", "2"], ["3", "1"]]
    with _db(tmp_path) as db:
        two = db.tile_attempts(PAIR, 2)
        assert [a["status"] for a in two] == ["lost", "done"]
        assert "left while the tile ran" in two[0]["error"]
        assert all(len(db.tile_attempts(PAIR, i)) == 1 for i in (0, 1, 3))


DRIVER = textwrap.dedent("""
    import sys, pathlib
    sys.path.insert(0, {root!r})
    from distributed import Client
    from tests.batch.tiled import local_cluster, run_tiled
    if __name__ == "__main__":
        tmp = pathlib.Path({tmp!r})
        env = {{"CTXDASK_STANDIN_TILE_SLEEP": "1.5", "CTXDASK_STANDIN_TILE_STARTED": str(tmp / "started.txt"),
               "CTXDASK_STANDIN_MAP_SIZE": "64x48"}}
        with local_cluster(2) as cluster, Client(cluster) as client:
            run_tiled(client, tmp, env=env)
""")


def test_driver_killed_mid_pair_rerun_does_not_redo_done_tiles(tiled_client, tmp_path):
    prepare(tmp_path)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(root=ROOT, tmp=str(tmp_path)))
    db_path = tmp_path / "out" / "ctxdask-batch.sqlite"
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PATH": tiled_path()},
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        done_before: list[int] = []
        while time.monotonic() < deadline and len(done_before) < 3:
            time.sleep(0.2)
            if db_path.exists():
                try:
                    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
                        done_before = [r[0] for r in conn.execute("SELECT tile_index FROM tiles WHERE status = 'done'")]
                except sqlite3.OperationalError:
                    pass
        assert len(done_before) >= 3, "the first driver did not get far enough"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        done_before = sorted(r[0] for r in conn.execute("SELECT tile_index FROM tiles WHERE status = 'done'"))
    assert len(done_before) < 12
    pair = _run(tiled_client, tmp_path)
    assert pair.status == "done" and len(pair.done) == 12, pair.error
    with _db(tmp_path) as db:
        for i in done_before:  # done and delivered before the kill: not run again
            assert [a["status"] for a in db.tile_attempts(PAIR, i)] == ["done"]
        statuses = {a["status"] for i in range(12) if i not in done_before for a in db.tile_attempts(PAIR, i)}
        assert statuses <= {"interrupted", "done"}
        assert db.rows("SELECT count(*) AS n FROM runs")[0]["n"] == 2


def test_retry_failed_reruns_failed_tiles_only(tiled_client, tmp_path):
    with dask.config.set({"ctxdask.tools.asp.tile-fallbacks": []}):  # one failed attempt, not one per set
        first = _run(tiled_client, tmp_path, "1:fail", size="32x32", policy=TilePolicy(min_fraction=0.5))
    assert first.status == "done" and set(first.holes) == {1}
    again = _run(tiled_client, tmp_path, "", size="32x32")  # a plain rerun leaves the failed tile alone
    assert set(again.holes) == {1}
    fixed = _run(tiled_client, tmp_path, "", size="32x32", retry_failed=True)
    assert fixed.status == "done" and not fixed.holes
    with _db(tmp_path) as db:
        counts = {i: [a["status"] for a in db.tile_attempts(PAIR, i)] for i in range(4)}
    assert counts == {0: ["done"], 1: ["failed", "done"], 2: ["done"], 3: ["done"]}


def test_status_shows_tile_progress_of_running_pairs(tmp_path, capsys):
    from ctxdask.batch.pairlist import Pair
    from ctxdask.cli import main
    from ctxdask.tracking import TrackingDB

    tiles = [Tile(i, 16 * i, 0, 16, 16, 4) for i in range(4)]
    with TrackingDB(tmp_path / "ctxdask-batch.sqlite") as db, db.transaction():
        db.register([Pair(LEFT, RIGHT), Pair(RIGHT, LEFT)], [LEFT, RIGHT])
        db.set_subject("pairs", PAIR, "running")
        db.set_subject("pairs", f"{RIGHT}-{LEFT}", "done")
        db.register_tiles(PAIR, tiles)
        db.register_tiles(f"{RIGHT}-{LEFT}", tiles)
        row = db.start_tile_attempt(PAIR, tiles[0], run_id=1, dask_key="k0", worker="tcp://w1:1")
        db.end_tile_attempt(row, "done")
        db.set_tile(PAIR, 0, "done", outputs={"dem": "a.tif"}, sha256={"a.tif": "0" * 64})
        db.start_tile_attempt(PAIR, tiles[1], run_id=1, dask_key="k1", worker="tcp://w2:1")
        for i in range(3):
            db.set_tile(f"{RIGHT}-{LEFT}", i, "done")
        db.set_tile(f"{RIGHT}-{LEFT}", 3, "failed", error="error: no matches")
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"tiles of running pairs:\n  {PAIR}: 1/4 done, 2 pending, 1 running" in out
    assert f"{RIGHT}-{LEFT}: DEM from 3/4 tiles (holes recorded)" in out
    with TrackingDB(tmp_path / "ctxdask-batch.sqlite", readonly=True) as db:
        assert db.tiles(PAIR)[0]["outputs"] == {"dem": "a.tif"} and db.tiles(PAIR)[1]["attempts"] == 1
