"""Benchmark: bytes on the wire per pair of a tiled batch, against the least the work needs (issue 22, item 2).

A tiled batch of ``--pairs`` pairs (map-projected images of 64 x 64 pixels,
16-pixel tiles; the ASP 3.7 stand-ins) runs on the multi-host harness of
``tests/multihost/harness.py``, started as ``benchmarks/tile_scratch.py`` does:
a ``dask scheduler``, three ``dask worker --nanny`` in their own mount
namespaces with private scratch, the ``ctxdask batch`` driver, EDRs over HTTP.
Every host reads ``batch.cleanup-scratch: false`` (the settings file the
harness writes into each host's home), so what crossed is still there at the
end and is counted from outside:

* **staged**: every file under a worker's ``ctxdask-steps/staged/<key>/``,
  its size from the ``.staged.json`` stamp beside it (pulled from another
  worker by :mod:`ctxdask.batch.staging`, or pushed by the driver by
  :mod:`ctxdask.batch.push`: tile outputs for a mosaic). One stamp = one
  crossing; a worker pulls a given file at most once (the stamp), so a file
  can cross to the same worker twice only by another route (sent home, then
  pushed back to the worker that made it).
* **delivered**: the batch database's ``products`` table (sum of ``size``):
  every file brought home, tiles' files included.
* **least needed**: each product home once (the products table again: a
  product crosses once by construction), plus each staged input once per
  worker that ran a step reading it. "Reading it" is taken from the step work
  dirs left on that worker: a step links its inputs into its work dir
  (``tools.tasks._stage``), so a symlink into ``staged/<key>/`` is a read. A
  staged file with no step of its worker linking it is not needed there; a
  tile output pushed to the worker that made the tile is not needed either
  (that worker had it). Two figures: **whole** (each needed file whole) and
  **window** (a tile needs only its window of the pair's map-projected images:
  the tile rectangle plus its padding, clipped to the image, summed over the
  tiles that worker ran and capped at the file, in the file's bytes per pixel;
  other inputs whole).

Files are attributed to a pair by the step's subject in the ``steps`` table;
image steps (shared between pairs) are their own rows. Files that crossed more
than once to the same worker, or to a worker where no step read them, are
listed.

Needs root and util-linux's ``unshare`` (mount namespaces), like the tests.

Run: ``python benchmarks/wire_bytes.py [--pairs 1] [--keep]``
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import shutil
import sqlite3
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.multihost.harness import IDS, SCRATCH, WORKERS, MultiHost, base_config, unavailable  # noqa: E402

STAMP = ".staged.json"


def staged_files(scratch: pathlib.Path) -> dict[str, dict]:
    """Staged copies in one worker's scratch: path inside the worker -> key, relative name, size."""
    found = {}
    for steps in scratch.glob("dask-scratch-space/worker-*/ctxdask-steps"):
        for stamp in (steps / "staged").rglob("*" + STAMP):
            target = pathlib.Path(str(stamp)[:-len(STAMP)])
            rel = target.relative_to(steps / "staged")
            inside = SCRATCH / target.relative_to(scratch)
            found[str(inside)] = {"key": rel.parts[0], "name": str(rel), "size": json.loads(stamp.read_text())["size"],
                                  "outside": target}
    return found


def readers(scratch: pathlib.Path) -> dict[str, set[str]]:
    """Which step work dirs on one worker link each path (inside the worker): path -> step keys."""
    links: dict[str, set[str]] = collections.defaultdict(set)
    for steps in scratch.glob("dask-scratch-space/worker-*/ctxdask-steps"):
        for work in steps.iterdir():
            if work.name == "staged" or not work.is_dir():
                continue
            for folder, _dirs, files in os.walk(work):
                for name in files:
                    path = os.path.join(folder, name)
                    if os.path.islink(path):
                        links[os.readlink(path)].add(work.name.split(".tmp-")[0])
    return links


def made_keys(scratch: pathlib.Path) -> set[str]:
    """Keys of the step work dirs on one worker (what it made itself)."""
    return {w.name for steps in scratch.glob("dask-scratch-space/worker-*/ctxdask-steps")
            for w in steps.iterdir() if w.name != "staged" and w.is_dir()}


def raster_shape(path: pathlib.Path) -> tuple[int, int] | None:
    """(height, width) of a raster file, or None when it is not one GDAL opens."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            return src.height, src.width
    except Exception:  # noqa: BLE001 - not a raster: needed whole
        return None


def window_pixels(tile: dict, shape: tuple[int, int]) -> int:
    """Pixels of a tile's padded window inside an image of ``shape``."""
    pad = tile["padding"]
    x0, y0 = max(tile["x"] - pad, 0), max(tile["y"] - pad, 0)
    x1, y1 = min(tile["x"] + tile["width"] + pad, shape[1]), min(tile["y"] + tile["height"] + pad, shape[0])
    return max(x1 - x0, 0) * max(y1 - y0, 0)


def measure(mh: MultiHost) -> dict:
    """Everything that crossed, per worker and per subject, read from the hosts' areas and the batch database."""
    db = sqlite3.connect(mh.database)
    db.row_factory = sqlite3.Row
    subject = {r["key"]: r["subject"] for r in db.execute("SELECT key, subject FROM steps")}
    products = [dict(r) for r in db.execute("SELECT path, key, subject, size FROM products")]
    tiles = {(r["pair_id"], r["tile_index"]): dict(r) for r in db.execute("SELECT * FROM tiles")}
    # the worker (host address) that ran each finished tile attempt
    attempts = [dict(r) for r in db.execute("SELECT pair_id, tile_index, worker, dask_key FROM tile_attempts "
                                            "WHERE status = 'done'")]
    db.close()
    # tile steps are not rows of ``steps``: their key names their pair
    subjects = set(subject.values()) | {pair for pair, _index in tiles}
    ip_of = {host.ip: name for name, host in mh.workers.items()}
    tiles_on = collections.defaultdict(list)
    for a in attempts:
        host = (a["worker"] or "").split("://")[-1].rsplit(":", 1)[0]
        tiles_on[ip_of.get(host, host)].append(tiles[(a["pair_id"], a["tile_index"])])
    rows, odd = [], []
    for name, host in mh.workers.items():
        staged, links, mine = staged_files(host.scratch), readers(host.scratch), made_keys(host.scratch)
        for inside, f in staged.items():
            key, who = f["key"], links.get(inside, set())
            subj = subject.get(key) or _subject_in(key, subjects)
            back = key in mine  # pushed back to the worker that made it (a tile sent home, then to its mosaic)
            needed = f["size"] if who and not back else 0
            window = needed
            # only the map-projected images are windowed: a tile reads its rectangle of them
            shape = raster_shape(f["outside"]) if key.startswith("mapproject_") and needed else None
            if shape and who and all(k.startswith("stereo_tile") for k in who):
                pixels = sum(window_pixels(t, shape) for t in tiles_on[name] if t["pair_id"] == subj)
                window = min(f["size"], f["size"] * pixels // (shape[0] * shape[1]))
            rows.append({"worker": name, "subject": subj, "file": f["name"], "size": f["size"], "needed": needed,
                         "window": window, "readers": sorted(who)})
            if not who or back:
                odd.append((name, f["name"], f["size"], "made on this worker, sent home, pushed back" if back
                            else "no step on this worker read it"))
    return {"staged": rows, "products": products, "odd": odd, "subject": subject}


def _subject_in(key: str, subjects: set[str]) -> str:
    """The longest subject (pair or image id) that a step key names, else ``?``."""
    return max((s for s in subjects if s and s in key), key=len, default="?")


def report(m: dict, *, code: int, wall: float, pairs: int) -> None:
    """Print the per-subject table, the per-worker table and the files that crossed needlessly."""
    load = os.getloadavg()
    print(f"tiled batch: {pairs} pairs on {len(WORKERS)} workers, driver exit {code} in {wall:.1f} s; "
          f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    by = collections.defaultdict(lambda: collections.Counter())
    for r in m["staged"]:
        c = by[r["subject"]]
        c["staged"] += r["size"]
        c["need_whole"] += r["needed"]
        c["need_window"] += r["window"]
    for p in m["products"]:
        c = by[p["subject"] or "(run)"]
        c["delivered"] += p["size"]
        c["need_whole"] += p["size"]
        c["need_window"] += p["size"]
    head = (f"{'subject':<30}{'staged B':>11}{'delivered B':>13}{'wire B':>11}{'least whole':>13}"
            f"{'ratio':>7}{'least window':>14}{'ratio':>7}")
    print(head)
    print("-" * len(head))
    total = collections.Counter()
    for subj in sorted(by):
        c = by[subj]
        total.update(c)
        _row(subj, c)
    print("-" * len(head))
    _row("all", total)
    print("\nstaged per worker (B): " + ", ".join(
        f"{w} {sum(r['size'] for r in m['staged'] if r['worker'] == w):,}" for w in WORKERS))
    kinds = collections.Counter()
    for r in m["staged"]:
        kinds[r["file"].split("/")[0].split("-")[0]] += r["size"]
    print("staged by producing step (B): " + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common()))
    print(f"\nfiles that crossed to a worker that did not need them ({len(m['odd'])}, "
          f"{sum(o[2] for o in m['odd']):,} B):")
    for why, n in collections.Counter(o[3] for o in m["odd"]).items():
        print(f"  {n} files, {sum(o[2] for o in m['odd'] if o[3] == why):,} B: {why}")
    for worker, name, size, why in sorted(m["odd"]):
        print(f"  {worker} {name} {size:,} B: {why}")
    extra = [r for r in m["staged"] if r["needed"] and r["window"] < r["size"]]
    print(f"\nwhole files staged for tiles where the windows need less ({len(extra)} copies, "
          f"{sum(r['size'] - r['window'] for r in extra):,} B beyond the windows):")
    for r in sorted(extra, key=lambda r: (r["worker"], r["file"])):
        print(f"  {r['worker']} {r['file']} {r['size']:,} B, windows {r['window']:,} B, read by "
              f"{len(r['readers'])} tile(s)")


def _row(subj: str, c: collections.Counter) -> None:
    wire = c["staged"] + c["delivered"]
    whole = wire / c["need_whole"] if c["need_whole"] else float("nan")
    window = wire / c["need_window"] if c["need_window"] else float("nan")
    print(f"{subj[:29]:<30}{c['staged']:>11,}{c['delivered']:>13,}{wire:>11,}{c['need_whole']:>13,}{whole:>7.2f}"
          f"{c['need_window']:>14,}{window:>7.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--tile-seconds", type=float, default=0.1, help="each stand-in tile's correlation sleep")
    parser.add_argument("--keep", action="store_true", help="keep the harness folder (printed) for inspection")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"wire_bytes: {reason}", file=sys.stderr)
        return 2
    pairs = [(IDS[i], IDS[i + 1]) for i in range(args.pairs)]
    config = base_config(tiled=True)
    # keep every staged copy and work dir, so what crossed is counted at the end and not sampled in a race
    config["ctxdask"]["batch"]["cleanup-scratch"] = False
    root = pathlib.Path(tempfile.mkdtemp(prefix="ctxdask-wire-bytes-"))
    mh = MultiHost(root, config=config,
                   env={"CTXDASK_STANDIN_MAP_SIZE": "64x64", "CTXDASK_STANDIN_TILE_SLEEP": str(args.tile_seconds)})
    try:
        mh.start_all(pairs)
        t0 = time.monotonic()
        code = mh.run_driver(timeout=1800)
        wall = time.monotonic() - t0
        if code != 0:
            print(mh.driver_log()[-3000:])
        m = measure(mh)
    finally:
        mh.close()
        if args.keep:
            print(f"harness folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(m, code=code, wall=wall, pairs=len(pairs))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
