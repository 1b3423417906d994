"""``ctxdask report``: a static HTML report of a batch (see :mod:`ctxdask.report`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask report`` to ``parser``."""
    parser.add_argument("target", metavar="DIR", help="a batch output folder")
    parser.add_argument("--out", metavar="REPORT_DIR", default=None,
                        help="report folder (default DIR/report); new, empty, or an earlier report")
    parser.add_argument("--db", default=None,
                        help="tracking database, a path or sqlite:/// URL (default DIR/ctxdask-batch.sqlite)")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask report`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.report import build_report

    page = build_report(args.target, db=args.db, dest=args.out)
    print(f"report written: {page}")
    print(f"open it offline: {page.resolve().as_uri()}")
    return 0
