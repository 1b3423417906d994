"""``ctxdask select``: pairs of a batch chosen by rules, written as a pair list ``ctxdask batch`` reads."""

from __future__ import annotations

import argparse
import pathlib
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask select`` to ``parser``."""
    parser.add_argument("target", metavar="DIR", help="a batch output folder")
    parser.add_argument("--where", default="", help='the rule, e.g. "status = done and not any.manual = fail and '
                                                    'convergence between 15 and 45": on pairs, manual is the pair\'s '
                                                    'own grade, any.manual either image\'s; != keeps what has no '
                                                    'value yet (see ctxdask.tracking.selection)')
    parser.add_argument("--db", default=None, help="tracking database (default DIR/ctxdask-batch.sqlite)")
    parser.add_argument("-o", "--out", default=None, metavar="FILE", help="write the pair list here (default stdout)")
    parser.add_argument("--scores", default=None, metavar="CSV", help="pair-finder scores to import first")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask select`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.tracking import BatchView, database_path, geometry, open_existing, selection

    out = pathlib.Path(args.target).resolve()
    db = open_existing(database_path(args.db, out))
    if args.scores:
        geometry.import_scores(db, args.scores)
    with BatchView(db) as view:
        try:
            rows = view.select_pairs(args.where)
        except selection.SelectionError as exc:
            print(f"ctxdask select: error: {exc}", file=sys.stderr)
            return 2
    text = selection.pair_list_text(rows, where=args.where, source=str(out))
    if args.out:
        pathlib.Path(args.out).write_text(text)
        print(f"{len(rows)} pairs -> {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
