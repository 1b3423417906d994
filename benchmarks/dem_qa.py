"""Benchmark: QA of a 20,000 x 10,000 float32 DEM against 100,000 MOLA shots in bounded memory.

Target (issue 15): :func:`ctxdask.quality.dem_qa.measure_dem` (heights at the
shots, CTX - MOLA statistics, tilt, valid fraction, holes; one dask pass over
the DEM) with a peak memory far below the DEM's 800 MB, in a time close to
reading the DEM once. Each figure comes from a fresh Python process (peak RSS
from ``getrusage``, i.e. the whole process including imports) and is compared
with baselines measured in the same run:

* read once: ``open_dem(...).sum().compute()`` over the same chunks (the least
  any pass over the file costs);
* eager: ``rasterio`` reading the whole DEM into memory (what a naive QA holds).

The DEM (deflate-free tiled GeoTIFF, 800 MB, with a few holes) and the MOLA
CSV are written once into ``--dir`` (default: a temporary folder, removed at
the end). The machine is shared: timings are noisy.

Run: ``python benchmarks/dem_qa.py [--dir DIR] [--repeat N] [--rows R --cols C --points N]``
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

_MEASURE = r"""
import json, resource, sys, time
dem, mola, what, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
import numpy as np, dask, rasterio
import ctxdask
from ctxdask.quality.dem import open_dem
from ctxdask.quality.dem_qa import measure_dem
from ctxdask.quality.alignment import read_mola_csv
dask.config.set(scheduler="threads")
t0 = time.perf_counter()
if what == "qa":
    points = read_mola_csv(mola, "1:lon 2:lat 3:radius_km")
    qa, _ = measure_dem(dem, points, chunks={"x": chunk, "y": chunk})
    extra = {"count": qa.metrics["after_alignment"]["count"], "holes": qa.metrics["holes"]["count"]}
elif what == "read":
    float(open_dem(dem, chunks={"x": chunk, "y": chunk}).sum().compute())
    extra = {}
elif what == "eager":
    with rasterio.open(dem) as src:
        float(np.nansum(src.read(1)))
    extra = {}
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, **extra}))
"""


def make_inputs(folder: pathlib.Path, rows: int, cols: int, points: int) -> tuple[pathlib.Path, pathlib.Path]:
    """A synthetic Mars DEM (hills, a few holes) written in row windows, and MOLA shots of it."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    radius, res = 3396190.0, 20.0
    x0, y0 = 1_000_000.0, 200_000.0
    crs = "+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"
    nodata = -3.40282265508890445e38

    def surface(x, y):
        return -1500.0 + 250.0 * np.sin(2 * np.pi * x / 4000.0) * np.cos(2 * np.pi * y / 3000.0)

    dem = folder / "bench-DEM.tif"
    profile = dict(driver="GTiff", width=cols, height=rows, count=1, dtype="float32", crs=crs, nodata=nodata,
                   transform=from_origin(x0, y0, res, res), tiled=True, blockxsize=512, blockysize=512,
                   BIGTIFF="IF_SAFER")
    xs = x0 + (np.arange(cols) + 0.5) * res
    with rasterio.open(dem, "w", **profile) as dst:
        step = 512
        for r0 in range(0, rows, step):
            n = min(step, rows - r0)
            ys = y0 - (np.arange(r0, r0 + n) + 0.5) * res
            z = surface(xs[None, :], ys[:, None]).astype(np.float32)
            if r0 // step % 7 == 3:  # a failed tile every few rows of tiles
                z[:, 2048:2560] = nodata
            dst.write(z, 1, window=Window(0, r0, cols, n))
    rng = np.random.default_rng(0)
    px = rng.uniform(x0, x0 + cols * res, points)
    py = rng.uniform(y0 - rows * res, y0, points)
    lon, lat = np.degrees(px / radius), np.degrees(py / radius)
    mola = folder / "bench-mola.csv"
    np.savetxt(mola, np.column_stack([lon, lat, (surface(px, py) + radius) / 1000.0]), delimiter=",",
               fmt="%.10f")
    return dem, mola


def measure(dem: pathlib.Path, mola: pathlib.Path, what: str, chunk: int, repeat: int, cache_mb: int) -> dict:
    runs = []
    # GDAL's block cache (default 5 % of RAM) would count in every figure's RSS
    env = dict(os.environ, GDAL_CACHEMAX=str(cache_mb))
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(dem), str(mola), what, str(chunk)],
                             capture_output=True, text=True, check=True, env=env)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "peak_mb": max(r["peak_mb"] for r in runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to write the DEM and MOLA CSV (default: temp, removed)")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--cols", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=2048, help="dask chunk side in pixels")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best time, worst memory)")
    parser.add_argument("--gdal-cache", type=int, default=64, help="GDAL_CACHEMAX in MB for every measurement")
    args = parser.parse_args()
    folder = pathlib.Path(args.dir) if args.dir else pathlib.Path(tempfile.mkdtemp(prefix="ctxdask-demqa-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        dem, mola = make_inputs(folder, args.rows, args.cols, args.points)
        size_mb = dem.stat().st_size / 2**20
        print(f"DEM {args.rows} x {args.cols} float32 ({size_mb:.0f} MB on disk), {args.points} MOLA shots, "
              f"chunks {args.chunk} px, GDAL_CACHEMAX {args.gdal_cache} MB, best of {args.repeat} (time) / worst "
              "(memory), fresh process each")
        print("(shared 2-core machine: timings are noisy)")
        settings = (args.chunk, args.repeat, args.gdal_cache)
        rows = [("read the DEM once (dask sum)", measure(dem, mola, "read", *settings)),
                ("eager read into memory (rasterio)", measure(dem, mola, "eager", *settings)),
                ("DEM QA against MOLA (measure_dem)", measure(dem, mola, "qa", *settings))]
        print(f"{'measurement':40s} {'seconds':>8s} {'peak RSS MB':>12s}")
        for name, r in rows:
            print(f"{name:40s} {r['seconds']:8.2f} {r['peak_mb']:12.0f}")
        qa, read = rows[2][1], rows[0][1]
        print(f"QA / read-once time: {qa['seconds'] / read['seconds']:.2f}x; shots on valid pixels {qa['count']}, "
              f"holes {qa['holes']}")
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
