"""``ctxdask validate FILE... [--json]``: integrity checks of EDRs.

Exit code 0 when every file is valid, 1 when any is invalid.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask validate`` to ``parser``."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="EDR .IMG files (or detached .LBL labels, or URLs)")
    parser.add_argument("--json", action="store_true", help="print one JSON document with every report")
    parser.add_argument(
        "--checksum", choices=("warn", "reject"), default=None,
        help="what a CHECKSUM mismatch is (default: ctxdask.validate.checksum, 'warn')",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also print informational findings")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask validate`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.validation import validate

    reports = [validate(path, checksum=args.checksum) for path in args.files]
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for report in reports:
            print(report)
            if args.verbose:
                for f in report.findings:
                    if f.severity == "info":
                        print(f"  INFO    {f.check}: {f.message}")
        bad = sum(not r.ok for r in reports)
        print(f"{len(reports) - bad} valid, {bad} invalid")
    return 0 if all(r.ok for r in reports) else 1
