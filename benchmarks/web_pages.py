"""Page load times of ``ctxdask serve`` on a batch of 1,540 pairs / 2,524 images (generated database).

The database is written through the real :class:`ctxdask.tracking.TrackingDB`
(images, pairs, 9 steps per image and 4 per pair, QA rows with real metric
keys and a 256-bin histogram, pair geometry, manual grades), then a real
``ctxdask serve`` process is started on 127.0.0.1 and each page is fetched over
HTTP, best of ``--repeat``. Baseline measured in the same run: the time to
fetch ``/static/app.js`` (a page with no database work), i.e. the HTTP floor.
Target: overview and table pages each under 1 s.

Run::

    .venv/bin/python benchmarks/web_pages.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import subprocess
import sys
import tempfile
import time
import urllib.request

STEPS_IMAGE = ("fetch", "validate", "quality", "mroctx2isis", "spiceinit", "ctxcal", "ctxevenodd", "cam2map",
               "thumbnail")
STEPS_PAIR = ("bundle_adjust", "parallel_stereo", "point2dem", "pair_quality")


def product_id(i: int) -> str:
    orbit = 1000 + i * 7
    return f"B{(orbit // 2000) % 100:02d}_{orbit:06d}_{1000 + i % 800:04d}_XN_{i % 80:02d}N{i % 360:03d}W"


def make_database(out: pathlib.Path, n_images: int = 2524, n_pairs: int = 1540, seed: int = 0) -> pathlib.Path:
    """A tracking database of a big batch half-way through (done, failed, running, pending work)."""
    from ctxdask.batch.pairlist import Pair
    from ctxdask.tracking import TrackingDB, grades, now

    rng = random.Random(seed)
    ids = [product_id(i) for i in range(n_images)]
    pairs, seen = [], set()
    while len(pairs) < n_pairs:
        a, b = sorted(rng.sample(range(n_images), 2))
        if (a, b) not in seen:
            seen.add((a, b))
            pairs.append(Pair(ids[a], ids[b], len(pairs) + 1))
    path = out / "ctxdask-batch.sqlite"
    with TrackingDB(path) as db:
        db.register(pairs, ids)
        run = db.start_run(pairs_file=str(out / "pairs.txt"), out=str(out))
        stamp = now()
        with db.transaction():
            for pid in ids:
                fate = rng.random()
                status = "done" if fate < 0.8 else "failed" if fate < 0.85 else "running" if fate < 0.87 else "pending"
                for k, step in enumerate(STEPS_IMAGE):
                    s = status if k == len(STEPS_IMAGE) - 1 or status == "done" else "done"
                    db.upsert_step(f"{step}-{pid}", scope="image", subject=pid, step=step, status=s, run_id=run,
                                   worker="tcp://10.0.0.2:4000", started=stamp, ended=stamp if s != "running" else None,
                                   duration=rng.uniform(1, 300), error="exit code 1: cannot open cube" if s == "failed"
                                   else None)
                db.set_subject("images", pid, status)
                metrics = {"snr": rng.uniform(5, 80), "valid_fraction": rng.uniform(0.9, 1), "lost_line_count": 0,
                           "saturated_fraction": rng.uniform(0, 0.01), "dark_level": 20.0, "dark_noise": 1.0,
                           "even_odd_relative": 0.01, "contrast": 0.2, "haze": 0.1,
                           "histogram": [rng.randint(0, 5000) for _ in range(256)]}
                db.set_quality(pid, grade=rng.choice(("pass", "pass", "warn", "fail")), reasons=[], metrics=metrics,
                               thumbnail=None)
            for p in pairs:
                status = rng.choice(("done", "done", "failed", "pending"))
                for step in STEPS_PAIR:
                    db.upsert_step(f"{step}-{p.pair_id}", scope="pair", subject=p.pair_id, step=step, status=status,
                                   run_id=run, started=stamp)
                db.set_subject("pairs", p.pair_id, status)
        db.conn.executemany("INSERT INTO pair_geometry VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [(p.pair_id, rng.random(), rng.uniform(0.3, 1), 100.0, rng.uniform(10, 60), 0.5, 0.1, 1.0)
                             for p in pairs])
        db.conn.executemany("INSERT INTO image_geometry VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(pid, "2010-01-01T00:00:00", int(pid[4:10]), rng.uniform(30, 80), rng.uniform(0, 30),
                              50.0, 6.0, lat, lon,
                              f"{lon},{lat} {lon + 0.3},{lat} {lon + 0.3},{lat + 1} {lon},{lat + 1}")
                             for pid in ids for lat, lon in [(rng.uniform(-60, 60), rng.uniform(-180, 179))]])
    for pid in rng.sample(ids, 200):
        grades.add_grade(path, "image", pid, rng.choice(grades.GRADES), "generated", who="bench")
    return path


def fetch(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()
        assert r.status == 200, (url, r.status)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctxdask-web-bench-") as tmp:
        out = pathlib.Path(tmp)
        t0 = time.perf_counter()
        make_database(out)
        print(f"generated database: 1540 pairs, 2524 images in {time.perf_counter() - t0:.1f} s")
        server = subprocess.Popen([sys.executable, "-m", "ctxdask", "serve", str(out), "--port", "0"],
                                  stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            line = server.stdout.readline()
            base = line.split(" at ")[1].strip()
            pages = {"floor (/static/app.js)": "static/app.js", "overview": "", "overview JSON": "api/overview",
                     "images table (sorted by SNR)": "images?sort=snr&direction=desc",
                     "images table, page 20, filtered": "images?where=snr+%3E+20+and+incidence+%3C+70&page=20",
                     "pairs table": "pairs",
                     "pairs table, filtered": "pairs?where=convergence+between+15+and+45+and+grade+%21%3D+fail",
                     "image page": f"image/{product_id(5)}", "map": "map", "selection": "select?where=status+%3D+done"}
            fetch(base)  # warm up
            results = {}
            for name, rel in pages.items():
                times = [fetch(base + rel) for _ in range(args.repeat)]
                results[name] = min(times)
                print(f"{name:38s} best {min(times) * 1000:7.1f} ms   worst {max(times) * 1000:7.1f} ms")
            ok = all(results[k] < 1.0 for k in results if "table" in k or "overview" in k)
            print(json.dumps({"target_met": ok}))
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
