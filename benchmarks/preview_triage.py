"""Benchmark: the preview pass's triage and its cost, on a batch of 8 pairs of which 2 are doomed.

In the stand-in world (tests/standins) stereo takes time in proportion to the
pixels it correlates: the ``parallel_stereo`` stand-in sleeps
``--seconds-per-megapixel`` x the megapixels of its left image
(``CTXDASK_STANDIN_SECONDS_PER_MEGAPIXEL``); map images are
``--map-size`` pixels at full resolution and ``--preview-factor`` times
coarser in the preview (``tools.asp.preview-factor``). The pairs with image
``IDS[4]`` (two of the eight) are doomed (``CTXDASK_STANDIN_DOOMED``): their
stereo correlates almost nothing, so their preview DEM is 10 % valid.

Three runs of :func:`ctxdask.batch.run_batch` (monolithic stereo on images
mapprojected onto a low-resolution DEM, 2 LocalCluster workers, ``stereo=1`` each):

1. with the preview (``tools.asp.preview: true``): every pair's preview, then the
   full pass of the 6 that pass; the 2 doomed pairs are held after their preview;
2. a rerun: the 2 stay held (the measured reason is printed);
3. both released by a ``pass`` grade: their full pass runs, reusing their preview.

Without the preview every pair makes its full pass once: the batch's full-stereo
time is that of run 1's six good pairs plus run 3's two released ones (the same
steps, measured). Figures (from the tracking database's step durations, which
include each stand-in's ~1 s of Python start-up; and the modelled correlation,
seconds-per-megapixel x pixels, which does not):

* correlation time saved by triage: the doomed pairs' full ``parallel_stereo``
  time, less their previews' stereo, absolute and as a share of the batch's
  full-stereo time without the preview;
* preview cost per good pair as a fraction of its full stereo: the preview's
  ``parallel_stereo`` over the full ``parallel_stereo``, and the whole preview
  pass (its grid, two mapprojects, stereo, point2dem, QA) over the whole full
  pass (the seed's hole filling, grid, two mapprojects, stereo, point2dem).

Run: ``python benchmarks/preview_triage.py [--map-size 1200x800] [--seconds-per-megapixel 40]``
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sqlite3
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctxdask.batch import run_batch  # noqa: E402
from ctxdask.tools.recipe import build_recipe  # noqa: E402
from ctxdask.tools.recipe.preview import PREVIEW_STEPS  # noqa: E402
from ctxdask.tracking.grades import add_grade  # noqa: E402
from tests.batch.tiled import local_cluster, prepare, tiled_path  # noqa: E402

IDS = ["P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W", "B10_013341_1010_XN_79S172W",
       "D10_031011_1864_XI_06N201W", "P01_001472_2212_XI_41N009W", "P01_001473_2479_XI_67N185W"]
#: 8 pairs; IDS[4] is in exactly two of them (the doomed ones)
PAIRS = [(IDS[a], IDS[b]) for a, b in ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (0, 2), (1, 3))]
DOOMED = IDS[4]
FULL = ("preview_seed", "mapproject_grid", "mapproject_left", "mapproject_right", "parallel_stereo", "point2dem")


def durations(db: pathlib.Path) -> dict[tuple[str, str], float]:
    """(step, pair id) -> duration of every pair step recorded done."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {(step, subject): float(d) for step, subject, d in conn.execute(
            "SELECT step, subject, duration FROM steps WHERE scope = 'pair' AND status = 'done'")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--map-size", default="1200x800", help="full-resolution map image, pixels (default 1200x800)")
    p.add_argument("--seconds-per-megapixel", type=float, default=40.0)
    p.add_argument("--preview-factor", type=float, default=4.0)
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.map_size.lower().split("x"))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])  # the workers'
    from distributed import Client

    with tempfile.TemporaryDirectory(prefix="ctxdask-preview-") as tmp, local_cluster(2, 1) as cluster, \
            Client(cluster) as client:
        folder = pathlib.Path(tmp)
        inputs = prepare(folder, PAIRS)
        env = {"PATH": tiled_path(), "CTXDASK_STANDIN_MAP_SIZE": args.map_size,
               "CTXDASK_STANDIN_SECONDS_PER_MEGAPIXEL": str(args.seconds_per_megapixel),
               "CTXDASK_STANDIN_DOOMED": DOOMED}
        recipe = build_recipe(preview=True, preview_factor=args.preview_factor, lowres_dem=inputs["dem"],
                              stereo_mode="monolithic", bundle_adjust=False, pc_align=False, dem_geoid=False, env=env)
        out, settings = folder / "out", {"batch.progress": False, "batch.quality": False}
        db = out / "ctxdask-batch.sqlite"

        def run(label: str):
            t0 = time.monotonic()
            s = run_batch(inputs["pairs"], out, source=inputs["edr"], client=client, recipe=recipe,
                          settings=settings)
            print(f"run {label}: {time.monotonic() - t0:.1f} s wall, pairs {s.pairs}"
                  + (f", held {len(s.held)}" if s.held else ""))
            return s

        first = run("1 (with the preview)")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            held = dict(conn.execute("SELECT pair_id, error FROM pairs WHERE status = 'skipped'").fetchall())
        for pair_id, reason in sorted(held.items()):
            print(f"  held {pair_id}: {reason}")
        second = run("2 (rerun)")
        for h in second.held:
            print(f"  still held {h.text}: {h.reason}")
        after_1 = durations(db)
        for pair_id in held:
            add_grade(db, "pair", pair_id, "pass", "benchmark: release", who="benchmark")
        run("3 (released by a pass grade)")
        after_3 = durations(db)

    pair_ids = ["-".join(pr) for pr in PAIRS]
    doomed = [pid for pid in pair_ids if DOOMED in pid]
    good = [pid for pid in pair_ids if pid not in doomed]
    assert sorted(held) == sorted(doomed) and first.pairs.get("done") == len(good), (held, first.pairs)
    assert all(("parallel_stereo", pid) not in after_1 for pid in doomed)

    def total(steps, pids, table=after_3):  # steps the recipe does not have (pc_align's) count 0
        return sum(table.get((s, pid), 0.0) for s in steps for pid in pids)

    full_all = total(["parallel_stereo"], pair_ids)
    full_doomed = total(["parallel_stereo"], doomed)
    preview_doomed = total(["preview_stereo"], doomed)
    saved = full_doomed - preview_doomed
    mp_full = width * height / 1e6
    mp_preview = round(width / args.preview_factor) * round(height / args.preview_factor) / 1e6
    print(f"\n8 pairs, 2 doomed; full map {width}x{height} px, preview x{args.preview_factor:g} coarser; "
          f"{args.seconds_per_megapixel:g} s per megapixel")
    print("correlation time saved by triage (the doomed pairs' full parallel_stereo, less their previews' stereo):")
    print(f"  measured steps: {full_doomed:.1f} s - {preview_doomed:.1f} s = {saved:.1f} s "
          f"({saved / len(doomed):.1f} s per doomed pair), {100 * saved / full_all:.0f} % of the batch's "
          f"{full_all:.1f} s of full stereo without the preview")
    corr_full, corr_preview = args.seconds_per_megapixel * mp_full, args.seconds_per_megapixel * mp_preview
    print(f"  modelled correlation: {corr_full:.2f} s - {corr_preview:.2f} s = {corr_full - corr_preview:.2f} s "
          f"per doomed pair (of {corr_full:.2f} s per pair); 2 of 8 pairs: "
          f"{100 * 2 * (corr_full - corr_preview) / (8 * corr_full):.0f} % of the batch's correlation")
    print("preview cost per good pair as a fraction of its full stereo:")
    ratios = [after_3[("preview_stereo", pid)] / after_3[("parallel_stereo", pid)] for pid in good]
    passes = [total(PREVIEW_STEPS, [pid]) / total(FULL, [pid]) for pid in good]
    print(f"  preview parallel_stereo / full parallel_stereo (measured): mean {sum(ratios) / len(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"  whole preview pass / whole full pass (measured): mean {sum(passes) / len(passes):.3f}")
    print(f"  modelled correlation: {mp_preview / mp_full:.4f} (1 / factor^2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
