"""Benchmark: peak scratch per worker during a tiled batch, against the bytes of the tiles in flight.

A tiled batch of ``--pairs`` pairs x 16 tiles (map-projected images of 64 x 64
pixels, 16-pixel tiles; the ASP 3.7 stand-ins of tests/standins/asp37) runs on
the multi-host harness of ``tests/multihost/harness.py``: a ``dask
scheduler``, three ``dask worker --nanny`` (``stereo=1``: one tile at a time
each) and the ``ctxdask batch`` driver, each in its own mount namespace with a
private scratch folder, EDRs over HTTP. A thread samples every worker's scratch
every ``--interval`` seconds from outside and sorts what it finds under
``ctxdask-steps``: running tile work dirs (``stereo_tile-*.tmp-*``), finished
tile work dirs, staged copies (``staged/``) and the rest (image and prep steps).

Figures per worker: peak scratch bytes; peak bytes of tiles (their work dirs
and the copies of tile outputs staged for a mosaic) against the bytes of the
tiles in flight (most running at once x one tile's work dir, the largest seen);
the most finished tile dirs held at once; peak staged copies; scratch left when
the batch ended. Baseline: the bytes of every tile of the batch, what the
workers hold if no tile work dir is removed.

Target (issue 19, break 4): scratch bounded by the tiles in flight, not by the
pair count: at no sample does a worker hold more finished tile dirs than two per
stereo slot (a tile whose outputs are on their way home, and the next), and no
scratch is left at the end. Exits 1 when missed.

Needs root and util-linux's ``unshare`` (mount namespaces), like the tests.

Run: ``python benchmarks/tile_scratch.py [--pairs 4] [--interval 0.1]``
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.multihost.harness import IDS, MultiHost, base_config, unavailable  # noqa: E402

TILES_PER_PAIR = 16
SLOTS = 1  # stereo=1 per worker


def _size(path: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


def sample(scratch: pathlib.Path) -> dict:
    """What one worker's scratch holds now, sorted by kind: bytes, and tile work dirs by state.

    ``tile`` bytes are the tiles' own: their work dirs (running or finished)
    and the copies of tile outputs staged for a mosaic (``staged/stereo_tile-*``).
    """
    found = {"bytes": 0, "tile": 0, "running": 0, "finished": 0, "tile_dirs": [], "staged": 0, "other": 0}
    for steps in scratch.glob("dask-scratch-space/worker-*/ctxdask-steps"):
        try:
            names = os.listdir(steps)
        except FileNotFoundError:
            continue
        for name in names:
            path = os.path.join(steps, name)
            if name == "staged":
                for staged in (os.listdir(path) if os.path.isdir(path) else []):
                    size = _size(os.path.join(path, staged))
                    found["staged"] += size
                    found["tile" if staged.startswith("stereo_tile-") else "other"] += size
                    found["bytes"] += size
                continue
            size = _size(path)
            found["bytes"] += size
            if name.startswith("stereo_tile-"):
                found["running" if ".tmp-" in name else "finished"] += 1
                found["tile"] += size
                found["tile_dirs"].append(size)
            else:
                found["other"] += size
    return found


class Sampler(threading.Thread):
    """Samples every worker's scratch until stopped."""

    def __init__(self, mh: MultiHost, interval: float):
        super().__init__(daemon=True)
        self.mh, self.interval = mh, interval
        self.samples: dict[str, list[dict]] = {name: [] for name in mh.workers}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for name, host in self.mh.workers.items():
                self.samples[name].append(sample(host.scratch))
            self.stop.wait(self.interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--tile-seconds", type=float, default=0.5, help="each stand-in tile's correlation sleep")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"tile_scratch: {reason}", file=sys.stderr)
        return 2
    pairs = [(IDS[i], IDS[i + 1]) for i in range(args.pairs)]
    root = pathlib.Path(tempfile.mkdtemp(prefix="ctxdask-tile-scratch-"))
    mh = MultiHost(root, config=base_config(tiled=True),
                   env={"CTXDASK_STANDIN_MAP_SIZE": "64x64", "CTXDASK_STANDIN_TILE_SLEEP": str(args.tile_seconds)})
    try:
        mh.start_all(pairs)
        sampler = Sampler(mh, args.interval)
        sampler.start()
        t0 = time.monotonic()
        code = mh.run_driver(timeout=1800)
        wall = time.monotonic() - t0
        time.sleep(2)  # clean-ups sent as the driver ended
        sampler.stop.set()
        sampler.join()
        end = {name: sample(host.scratch) for name, host in mh.workers.items()}
    finally:
        mh.close()
        shutil.rmtree(root, ignore_errors=True)
    return report(sampler.samples, end, pairs=len(pairs), code=code, wall=wall, tail=mh.driver_log()[-2000:])


def report(samples: dict[str, list[dict]], end: dict[str, dict], *, pairs: int, code: int, wall: float,
           tail: str) -> int:
    print(f"tiled batch: {pairs} pairs x {TILES_PER_PAIR} tiles on {len(samples)} workers (stereo={SLOTS}); "
          f"driver exit {code} in {wall:.1f} s; bytes sampled in each worker's private scratch")
    if code != 0:
        print(tail)
    per_tile = max((b for s in samples.values() for x in s for b in x["tile_dirs"]), default=0)
    head = (f"{'worker':<7}{'peak scratch':>13}{'peak tile B':>12}{'in flight B':>12}{'tile/flight':>12}"
            f"{'max running':>12}{'max done held':>14}{'peak staged':>12}{'end B':>10}{'end tile dirs':>14}")
    print(head)
    print("-" * len(head))
    ok = code == 0
    for name, series in samples.items():
        peak = max((x["bytes"] for x in series), default=0)
        peak_tile = max((x["tile"] for x in series), default=0)
        running = max((x["running"] for x in series), default=0)
        held = max((x["finished"] for x in series), default=0)
        staged = max((x["staged"] for x in series), default=0)
        flight = max(running, SLOTS) * per_tile
        left = end[name]
        ratio = peak_tile / flight if flight else float("nan")
        print(f"{name:<7}{peak:>13,}{peak_tile:>12,}{flight:>12,}{ratio:>12.1f}{running:>12}{held:>14}"
              f"{staged:>12,}{left['bytes']:>10,}{left['running'] + left['finished']:>14}")
        ok = ok and held <= 2 * SLOTS and left["bytes"] == 0
    print(f"one tile's work dir: {per_tile:,} B; baseline (every tile's work dir kept): {pairs * TILES_PER_PAIR} "
          f"tiles x {per_tile:,} B = {pairs * TILES_PER_PAIR * per_tile:,} B over the workers")
    print("target: tile bytes bounded by the tiles in flight (finished tile dirs held <= 2 per stereo slot at "
          "every sample) and no scratch left at the end: " + ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
