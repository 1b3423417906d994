"""Benchmark: opening a full-size CTX EDR (5056 x 52,224, ~264 MB).

Target (issue 2): ``open_edr`` under 0.5 s and under 50 MB of extra memory.
Each measurement runs in a fresh Python process (imports done before the clock
starts) and is compared with two baselines measured in the same run:

* label floor: read and parse the PDS3 label only (the least any open can do);
* naive read: ``np.fromfile`` of the whole file (what an eager reader costs).

Run: ``python benchmarks/open_edr.py [--dir DIR] [--repeat N]``
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

LINES, LINE_SAMPLES = 52_224, 5056

_MEASURE = r"""
import json, resource, sys, time, gc
import psutil
path, what = sys.argv[1], sys.argv[2]
import numpy as np, xarray, dask.array, pvl
import ctxdask, ctxdask.edr, ctxdask.pds3, ctxdask.backend
proc = psutil.Process()
gc.collect()
rss0 = proc.memory_info().rss
t0 = time.perf_counter()
if what == "open_edr":
    obj = ctxdask.open_edr(path)
elif what == "label":
    obj = ctxdask.pds3.read_label(path)
elif what == "naive":
    obj = np.fromfile(path, dtype=np.uint8)
elapsed = time.perf_counter() - t0
rss1 = proc.memory_info().rss
print(json.dumps({"seconds": elapsed, "extra_mb": (rss1 - rss0) / 2**20}))
"""


def measure(path: pathlib.Path, what: str, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(path), what], capture_output=True, text=True,
                             check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"seconds": min(r["seconds"] for r in runs), "extra_mb": max(r["extra_mb"] for r in runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to write the synthetic EDR (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best time, worst memory)")
    args = parser.parse_args()

    from ctxdask.testing import make_edr

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = pathlib.Path(tmp) / "B10_013341_1010_XN_79S172W.IMG"
        t0 = time.perf_counter()
        make_edr(path, lines=LINES, line_samples=LINE_SAMPLES)
        print(f"wrote {path.stat().st_size / 1e6:.1f} MB synthetic EDR in {time.perf_counter() - t0:.1f} s")
        results = {what: measure(path, what, args.repeat) for what in ("label", "open_edr", "naive")}

    print(f"{'measurement':12s} {'seconds':>9s} {'extra MB':>9s}")
    for what, r in results.items():
        print(f"{what:12s} {r['seconds']:9.4f} {r['extra_mb']:9.1f}")
    ours, floor, naive = results["open_edr"], results["label"], results["naive"]
    print(f"open_edr vs label floor: {ours['seconds'] / floor['seconds']:.1f}x time; "
          f"vs naive read: {naive['seconds'] / ours['seconds']:.0f}x faster, "
          f"{naive['extra_mb'] - ours['extra_mb']:.0f} MB less")
    ok = ours["seconds"] < 0.5 and ours["extra_mb"] < 50
    print(f"target (< 0.5 s, < 50 MB extra): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
