"""What a multi-host batch must leave, read from its database and files (tests/multihost)."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import sqlite3

from .harness import HOME, MultiHost

#: the products every done pair delivers (ctxdask/batch/dem_products.py OUTPUT_ROLES, ctxdask/quality/pair.py)
PAIR_RASTERS = ("{pid}-DEM.tif", "{pid}-DRG.tif", "{pid}-IntersectionErr.tif", "{pid}-hillshade.tif",
                "{pid}-colour-relief.tif")
PAIR_JSON = ("qa_metrics.json", "provenance.json", "{pid}.stac.json")


def query(db: pathlib.Path, sql: str, params=()) -> list[tuple]:
    """Rows of a query on the tracking database (read-only, while a driver may be writing)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def pair_id(pair) -> str:
    return f"{pair[0]}-{pair[1]}"


def outside(mh: MultiHost, path: str) -> pathlib.Path:
    """A path the driver recorded (absolute in its namespace, or relative to --out) seen from the test."""
    inside = str(HOME / "out")
    if os.path.isabs(path):
        assert path == inside or path.startswith(inside + os.sep), f"{path}: not in the driver's output folder"
        return mh.out / os.path.relpath(path, inside)
    return mh.out / path


def sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assert_pairs_done(mh: MultiHost, pairs) -> None:
    """Every pair done, its DEM products delivered and valid, every file of its folder in the database.

    Rasters must open and hold valid georeferenced pixels, JSON must parse, and
    each file must match the size and sha256 the database recorded.
    """
    import numpy as np
    import rasterio

    db = mh.database
    status = dict(query(db, "SELECT pair_id, status FROM pairs"))
    wanted = {pair_id(p): "done" for p in pairs}
    assert {p: status.get(p) for p in wanted} == wanted, (
        query(db, "SELECT pair_id, status, error FROM pairs"), mh.driver_log()[-3000:])
    for pid in wanted:
        folder = mh.out / "pairs" / pid
        listed = {}
        for path, size, digest in query(db, "SELECT path, size, sha256 FROM products WHERE subject = ?", (pid,)):
            listed[outside(mh, path)] = (size, digest)
        on_disk = {p for p in folder.rglob("*") if p.is_file()}
        unlisted = sorted(str(p.relative_to(mh.out)) for p in on_disk - set(listed))
        assert unlisted == [], f"{pid}: files the database does not list: {unlisted}"
        for path, (size, digest) in listed.items():
            assert path.is_file(), f"{path}: recorded as delivered but missing"
            assert (path.stat().st_size, sha256(path)) == (size, digest), f"{path}: not what was recorded"
        for name in PAIR_RASTERS:
            path = folder / name.format(pid=pid)
            assert path in listed, f"{pid}: no {path.name} delivered"
            with rasterio.open(path) as src:
                assert src.crs is not None, f"{path}: no CRS"
                band = src.read(1, masked=True)
                assert band.count() > 0 and np.isfinite(band.compressed()).all(), f"{path}: no valid pixels"
        for name in PAIR_JSON:
            path = folder / name.format(pid=pid)
            assert path in listed, f"{pid}: no {path.name} delivered"
            json.loads(path.read_text())


def executions(mh: MultiHost) -> dict[str, list[tuple[str, str]]]:
    """Step key -> ``(host area, work dir)`` of every run of it by a stand-in, on every host ever started.

    A step runs in its own ``<key>.tmp-<random>`` work dir, so distinct work
    dirs are distinct runs (a step's sub-programs share its work dir).
    """
    runs: dict[str, set[tuple[str, str]]] = {}
    for host in mh.all_hosts():
        for call in host.calls():
            name = os.path.basename(call["cwd"])
            if ".tmp-" not in name:  # not a step (e.g. ctxdask doctor asking a program its version)
                continue
            runs.setdefault(name.split(".tmp-")[0], set()).add((host.area.name, name))
    return {key: sorted(v) for key, v in runs.items()}


def done_steps(mh: MultiHost) -> dict[str, tuple]:
    """Steps recorded done: key -> (worker, started, attempts)."""
    return {key: (worker, started, attempts) for key, worker, started, attempts in
            query(mh.database, "SELECT key, worker, started, attempts FROM steps WHERE status = 'done'")}


def done_tiles(mh: MultiHost) -> dict[str, tuple]:
    """Tiles recorded done: their step key (``stereo_tile-<pair>-<index>``) -> (attempts, attempt rows)."""
    rows = query(mh.database, "SELECT t.pair_id, t.tile_index, t.attempts, count(a.id) FROM tiles t "
                              "LEFT JOIN tile_attempts a USING (pair_id, tile_index) WHERE t.status = 'done' "
                              "GROUP BY t.pair_id, t.tile_index")
    return {f"stereo_tile-{p}-{i:03d}": (n, rows_) for p, i, n, rows_ in rows}


def remade(before: dict[str, list], after: dict[str, list], keys) -> dict[str, list]:
    """Of ``keys``, those run again between two :func:`executions` snapshots, with the new runs."""
    return {key: sorted(set(after.get(key, ())) - set(before.get(key, ()))) for key in keys
            if set(after.get(key, ())) - set(before.get(key, ()))}


def summarize(found: dict[str, list], shown: int = 6) -> dict[str, str]:
    """Lists of paths, shortened for a failure message: how many, and the first few."""
    return {k: f"{len(v)}: {v[:shown]}{' ...' if len(v) > shown else ''}" for k, v in found.items()}


def assert_no_program_left(mh: MultiHost) -> None:
    left = mh.wait_programs_gone()
    assert left == [], f"programs left running: {[' '.join(p.cmdline())[:200] for p in left]}"


def assert_scratch_empty(mh: MultiHost) -> None:
    """Every live worker's scratch (and every kept one) holds nothing of the batch's."""
    import time

    live = [h for h in mh.workers.values() if h.alive]
    deadline = time.monotonic() + 10  # clean-ups the driver sent as it ended may still be running
    while True:
        left = {h.area.name: h.scratch_files() for h in live}
        left = {k: v for k, v in left.items() if v}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert left == {}, f"scratch not emptied after the batch: {summarize(left)}"
