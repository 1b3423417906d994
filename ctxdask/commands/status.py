"""``ctxdask status``: what a batch's tracking database says."""

from __future__ import annotations

import argparse
import json
import pathlib

from ctxdask.commands import count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask status`` to ``parser``."""
    parser.add_argument("target", metavar="DIR", help="a batch output folder, or the database file itself")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.add_argument("--failures", type=count, default=20, help="failures to list (default 20; 0: all)")


def _fmt(counts: dict) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask status`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.tracking import DEFAULT_NAME, BatchView, open_existing

    target = pathlib.Path(args.target)
    # the same problems, messages and exit codes as `ctxdask report`
    path = open_existing(target / DEFAULT_NAME if target.is_dir() else target)
    with BatchView(path) as view:
        report = view.status_report(failures=args.failures or None)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
        return 0
    run = report["last_run"]
    print(f"database {report['database']}: {report['runs']} runs")
    if run:
        print(f"last run {run['id']}: {run['status']}, started {run['started']}, ended {run['ended'] or '-'}"
              f" on {run['host']} (pid {run['pid']})")
    print(f"pairs:  {_fmt(report['pairs'])}")
    print(f"images: {_fmt(report['images'])}")
    for step, counts in report["steps"].items():
        print(f"  {step:18s} {_fmt(counts)}")
    tiles = report.get("tiles") or {}
    running = {p: t for p, t in tiles.items() if t["pair"] == "running"}
    if running:
        print("tiles of running pairs:")
    for pair_id, t in running.items():
        others = {s: n for s, n in t.items() if s not in ("pair", "total", "done")}
        print(f"  {pair_id}: {t.get('done', 0)}/{t['total']} done" + (f", {_fmt(others)}" if others else ""))
    holed = {p: t for p, t in tiles.items() if t["pair"] == "done" and t.get("done", 0) < t["total"]}
    for pair_id, t in holed.items():
        print(f"  {pair_id}: DEM from {t.get('done', 0)}/{t['total']} tiles (holes recorded)")
    for scope, counts in report["manual_grades"].items():
        print(f"manual grades ({scope}s): {_fmt(counts)}")
    for subject, reason in report["manually_rejected"].items():
        print(f"  manually failed {subject}: {reason}")
    for pair_id, reason in report.get("held_previews", {}).items():
        print(f"pair {pair_id} {reason} (grade it pass or warn to release it)")
    products = report["products"]
    print(f"delivered: {products['files']} files, {products['bytes'] / 1e6:.1f} MB")
    for r in report["rejected"]:
        print(f"pair list line {r['line']} skipped: {r['reason']}")
    if report["failure_count"]:
        print(f"{report['failure_count']} steps failed, timed out or were interrupted:")
    for f in report["failures"]:
        lines = (f["error"] or "").strip().splitlines()
        print(f"  {f['status']:11s} {f['key']}: {lines[0] if lines else ''}")
        if f["log_path"]:
            print(f"              log {f['log_path']}")
    return 0
