"""``ctxdask batch``: run a stereo-pair list on a dask cluster, tracked in a database."""

from __future__ import annotations

import argparse
import re
import sys

from ctxdask.commands import positive_int

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds of ``"90"``, ``"90s"``, ``"15m"``, ``"2h"`` or ``"1h30m"``.

    Examples
    --------
    >>> parse_duration("1h30m"), parse_duration("45"), parse_duration("2.5m")
    (5400.0, 45.0, 150.0)
    """
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text.strip().lower())
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smhd]?)", "", text.strip().lower()).strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90, 90s, 15m, 2h, 1h30m)")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a deadline must be positive")
    return seconds


def _timeout(text: str) -> tuple[str, float]:
    step, sep, duration = text.partition("=")
    if not sep or not step:
        raise argparse.ArgumentTypeError(f"{text!r}: expected STEP=DURATION, e.g. parallel_stereo=6h")
    return step.strip(), parse_duration(duration)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask batch`` to ``parser``."""
    parser.add_argument("pairs", help="pair list: 'LEFT RIGHT' per line, or CSV with a left,right header")
    parser.add_argument("--out", required=True, help="output folder (products and, by default, the database)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--edr-dir", help="folder of EDRs: <PRODUCT_ID>.IMG in any case, or .IMG.bz2/.gz")
    source.add_argument("--url-list", help="download EDRs (catalog downloader): a file with one product URL a line")
    # every option below is a setting (named in its help): the command line only builds settings
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running dask scheduler (tcp://host:8786; batch.scheduler)")
    where.add_argument("--local", metavar="N", type=positive_int,
                       help="start a LocalCluster of N worker processes (batch.local-workers)")
    parser.add_argument("--db", help="tracking database: a path or sqlite:/// URL (default: in --out; "
                                     "batch.database)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run failed and timed-out steps again (batch.retry-failed)")
    parser.add_argument("--steps", nargs="+", metavar="STEP",
                        help="run the chain only up to the last of these steps (e.g. validate; batch.steps)")
    parser.add_argument("--timeout", action="append", type=_timeout, default=[], metavar="STEP=DURATION",
                        help="deadline of a step, e.g. parallel_stereo=6h (repeatable; tools.timeouts, or "
                             "batch.timeouts for fetch, validate and the quality steps)")
    parser.add_argument("--calibration", choices=("isis", "native"),
                        help="image calibration: ctxdask's native one (the default, tools.calibration: it matches "
                             "ISIS ctxcal) or the ISIS programs mroctx2isis, ctxcal, ctxevenodd")
    parser.add_argument("--deliver", nargs="+", metavar="STEP",
                        help="steps whose raw outputs come home (batch.deliver)")
    parser.add_argument("--delivery", choices=("transfer", "shared"),
                        help="transfer over the dask connection, or copy into a shared output folder "
                             "(batch.delivery)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (batch.progress)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (pairs to run, done, held, rejected) and every program's command "
                             "line, then stop: no cluster, nothing written")
    parser.add_argument("--include-rejected", action="store_true",
                        help="also process pairs and images failed by hand (ctxdask serve); default: skip them "
                             "(batch.include-rejected)")


def settings_from(args: argparse.Namespace):
    """The settings of a ``ctxdask batch`` command line: the configuration, changed by its options.

    A ``--timeout`` of an in-process step (``batch.timeouts``: fetch, validate,
    quality ...) sets that deadline; any other step's is ``tools.timeouts``.
    """
    from ctxdask.settings import current

    settings = current()
    changes = {
        "batch.scheduler": args.scheduler, "batch.local-workers": args.local, "batch.database": args.db,
        "batch.steps": [s for item in args.steps for s in item.split(",") if s] if args.steps else None,
        "batch.deliver": args.deliver, "batch.delivery": args.delivery, "tools.calibration": args.calibration,
        "batch.retry-failed": args.retry_failed or None, "batch.include-rejected": args.include_rejected or None,
        "batch.progress": False if args.no_progress else None,
    }
    for step, seconds in args.timeout:
        section = "batch" if step in settings.batch.timeouts else "tools"
        changes[f"{section}.timeouts.{step}"] = seconds
    return settings.override({key: value for key, value in changes.items() if value is not None})


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask batch`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.batch import run_batch
    from ctxdask.batch.planning import StepSelectionError
    from ctxdask.commands import (
        EXIT_ERROR,
        EXIT_INTERRUPTED,
        EXIT_OK,
        UsageError,
        check_input,
        check_input_folder,
        check_output_folder,
    )
    from ctxdask.exceptions import CTXError

    check_input(args.pairs, "the pair list")
    check_output_folder(args.out, "the output folder (--out)")
    if args.url_list:
        check_input(args.url_list, "the URL list (--url-list)")
    if args.edr_dir:
        check_input_folder(args.edr_dir, "the EDR folder (--edr-dir)")
    source = args.edr_dir
    if args.url_list:
        from ctxdask.batch.sources import CatalogSource
        from ctxdask.catalog.lookup import ProductLocator

        source = CatalogSource(ProductLocator.from_url_list(args.url_list))
    try:
        if args.dry_run:
            from ctxdask.batch import dry_run

            for line in dry_run(args.pairs, args.out, settings=settings_from(args), source=source).lines():
                print(line)
            return EXIT_OK
        summary = run_batch(args.pairs, args.out, settings=settings_from(args), source=source)
    except StepSelectionError as exc:
        raise UsageError(f"--steps: {exc}") from None
    except CTXError:
        raise
    except (ValueError, RuntimeError) as exc:
        # the batch's own refusals (a database another driver holds, a bad pair list, ...): one line
        print(f"ctxdask batch: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR
    print(summary)
    for line in skipped_lines(summary.database):
        print(line)
    if summary.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_ERROR


def skipped_lines(database: str) -> list[str]:
    """What the batch skipped and why, one line per step, with the ``ctxdask doctor`` hint.

    Steps skipped because their program is not installed give their own reason;
    steps skipped because an earlier one did not succeed are counted together.
    """
    from ctxdask.tracking import BatchView

    with BatchView(database) as view:
        rows = view.skipped_steps()
    if not rows:
        return []
    reasons: dict[str, tuple[int, str]] = {}
    downstream: dict[str, int] = {}
    for row in rows:
        reason = " ".join((row["error"] or "").split())
        if row["blocked_by"]:
            downstream[row["step"]] = downstream.get(row["step"], 0) + 1
        else:
            count, first = reasons.get(row["step"], (0, reason))
            reasons[row["step"]] = (count + 1, first)
    lines = [f"skipped: {len(rows)} steps did not run"]
    for step, (count, reason) in reasons.items():
        lines.append(f"  {step} ({count}x): {reason or 'no reason recorded'}")
    if downstream:
        listed = ", ".join(f"{step} ({n}x)" for step, n in downstream.items())
        lines.append(f"  {listed}: not run because an earlier step of theirs did not succeed")
    if reasons:
        lines.append("  run `ctxdask doctor` to see which ISIS/ASP programs are installed and what the batch "
                     "can do without the others")
    return lines
