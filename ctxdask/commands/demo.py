"""``ctxdask demo``: the main job, a stereo-pair batch, on sample data it makes itself.

Generates synthetic CTX EDRs in every summing/first-pixel mode (one with lost
lines and a wrong checksum, one truncated as by an interrupted download) and a
pair list (with a junk line, like the real lists), validates the EDRs, then runs
:func:`ctxdask.batch.run_batch` on a multi-process LocalCluster with the SQLite
tracking database: fetch, validate and native calibration (with each image's
quality grade, metrics and thumbnail, in the same pass) run everywhere; the
ISIS/ASP steps run where those programs are installed and are recorded as
skipped, with the reason, where they are not. Test stand-ins are never used.
"""

from __future__ import annotations

import argparse
import os
import pathlib

from ctxdask.commands import positive_int

#: (product id, summing, first pixel, lines, defects): the images of two real stereo pairs
#: (../shared/reference/pairs/CTX_stereo_pair.txt lines 2 and 4), one in each summing/first-pixel mode
SAMPLES = [
    ("B01_009894_1665_XI_13S042W", 1, 0, 2048, {}),
    ("B02_010606_1666_XN_13S042W", 1, 480, 1024, {}),
    ("B01_009906_2226_XN_42N016W", 2, 0, 1024, {"lost_lines": range(300, 316), "checksum": "wrong"}),
    ("B01_010196_2227_XN_42N016W", 2, 512, 1024, {"saturated_fraction": 0.001}),
]
#: an EDR cut short, as by an interrupted download: the batch records it as failed (a real partner of the
#: first site, line 102 of the same list)
TRUNCATED = "B07_012439_1666_XN_13S042W"
PAIRS = [
    ("B01_009894_1665_XI_13S042W", "B02_010606_1666_XN_13S042W"),
    ("B01_009906_2226_XN_42N016W", "B01_010196_2227_XN_42N016W"),
    ("B01_009894_1665_XI_13S042W", TRUNCATED),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask demo`` to ``parser``."""
    parser.add_argument("--out", default="ctxdask-demo", help="output folder (default: ./ctxdask-demo)")
    parser.add_argument("--workers", type=positive_int, default=2, help="LocalCluster worker processes (default 2)")


def _make_samples(edr_dir: pathlib.Path) -> list[pathlib.Path]:
    from ctxdask.testing import make_edr, plausible_start_time

    paths = []
    for seed, (product_id, summing, first_pixel, lines, defects) in enumerate(SAMPLES):
        path = edr_dir / f"{product_id}.IMG"
        if not path.exists():
            make_edr(path, lines=lines, summing=summing, first_pixel=first_pixel, seed=seed,
                     start_time=plausible_start_time(product_id), **defects)
        paths.append(path)
    bad = edr_dir / f"{TRUNCATED}.IMG"
    if not bad.exists():
        make_edr(bad, lines=256, seed=9, start_time=plausible_start_time(TRUNCATED))
        with open(bad, "r+b") as f:
            f.truncate(os.path.getsize(bad) * 2 // 3)
    return [*paths, bad]


def _real_programs_path(recipe) -> str:
    """PATH without folders holding ctxdask's test stand-ins (the demo must not use them)."""
    from ctxdask.tools.discovery import find_program

    drop = set()
    for program in recipe.programs():
        info = find_program(program, timeout=10)
        if info.found and info.standin:
            drop.add(os.path.dirname(info.path))
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p not in drop)


def _wrap(text: str, indent: str, more: str = "      ") -> str:
    """``text`` whole, wrapped at word boundaries (a message is never cut), continued at ``more``."""
    import textwrap

    return textwrap.fill(" ".join(text.split()), width=100, initial_indent=indent, subsequent_indent=more,
                         break_long_words=False, break_on_hyphens=False)


def _print_quality(db, results: pathlib.Path) -> None:
    """Grades (with every reason) and thumbnails of the images, DEM products of the pairs."""
    import json

    print("\nimage quality (computed with the native calibration, in the same pass):")
    for row in db.image_quality().values():
        reasons = json.loads(row["reasons"] or "[]")
        print(f"  {row['grade']:4s} {row['product_id']}{'' if reasons else ': all metrics within limits'}")
        for reason in reasons:  # every reason, not only the worst
            print(_wrap(reason, "       ", "         "))
        print(f"       thumbnail {results / row['thumbnail']}" if row["thumbnail"] else "       no thumbnail")
    for row in db.pair_quality().values():
        print(f"  pair {row['pair_id']}: STAC item {results / row['stac']}")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask demo`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.batch import run_batch
    from ctxdask.commands.batch import skipped_lines
    from ctxdask.exceptions import OutputPathError
    from ctxdask.settings import current
    from ctxdask.tools.recipe import build_recipe
    from ctxdask.validation import validate

    out = pathlib.Path(args.out).resolve()
    if out.exists() and not out.is_dir():
        raise OutputPathError(args.out, "is a file; --out needs a folder (new, or an earlier demo's)")
    edr_dir = out / "edr"
    print(f"ctxdask demo: sample EDRs in {edr_dir}")
    paths = _make_samples(edr_dir)
    pair_list = out / "pairs.txt"
    pair_list.write_text("# sample stereo pairs (LEFT RIGHT); the 'M' line is junk, as in real lists\n"
                         + "".join(f"{left} {right}\n" for left, right in PAIRS) + "M\n")

    print("\nvalidation:")
    for path in paths:
        report = validate(path)
        print(_wrap(report.summary(), f"  {path.name}: "))
        for finding in report.warnings:
            print(_wrap(finding.message, f"      warning {finding.check}: "))

    settings = current().override({
        "tools.calibration": "native", "batch.local-workers": args.workers,
        "batch.deliver": ["calibrate", "point2dem", "point2dem_aligned", "dem_geoid"]})
    settings = settings.override({"tools.env.PATH": _real_programs_path(build_recipe(settings))})
    recipe = build_recipe(settings)
    print(f"\nbatch of {len(PAIRS)} pairs on a LocalCluster with {args.workers} worker processes "
          f"(recipe {recipe}):")
    summary = run_batch(pair_list, out / "results", settings=settings, source=edr_dir)
    print(summary)
    from ctxdask.tracking import BatchView

    with BatchView(summary.database) as db:
        problems = db.unfinished_steps()
        if problems:
            print("\nsteps that did not succeed (ctxdask status shows the same at any time):")
        for row in problems:
            first = (row["error"] or "").strip().splitlines()[:1]
            print(f"  {row['status']} {row['key']}:")
            print(_wrap(first[0] if first else "no message recorded", "      "))
        _print_quality(db, out / "results")
    skipped = skipped_lines(summary.database)
    if skipped:
        print()
        for line in skipped:
            print(_wrap(line, "  " if line.startswith("  ") else "", "      "))

    from ctxdask.report import build_report

    page = build_report(out / "results")
    print(f"\ndone: results in {out / 'results'}")
    print(f"      tracking database {summary.database}")
    print(f"      HTML report {page} (open it offline: {page.resolve().as_uri()})")
    print(f"      ctxdask status {out / 'results'}")
    return 0
