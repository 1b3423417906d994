"""``ctxdask config``: the settings in force, each with where it came from."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask config`` to ``parser``."""
    parser.add_argument("prefix", metavar="KEY", nargs="?", default="",
                        help="only the settings under this key, e.g. tools.asp or batch.retries")
    parser.add_argument("--json", action="store_true", help="print {key: {value, source}} as JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask config`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.commands import UsageError
    from ctxdask.settings import origins

    prefix = args.prefix.removeprefix("ctxdask.").replace("_", "-")
    shown = {k: v for k, v in origins().items()
             if not prefix or k == prefix or k.startswith(prefix + ".")}
    if not shown:
        raise UsageError(f"KEY {args.prefix!r}: no such setting (ctxdask config lists them all)")
    if args.json:
        print(json.dumps({k: {"value": v, "source": s} for k, (v, s) in shown.items()}, indent=1, default=str))
        return 0
    width = max(len(k) for k in shown)
    for key, (value, source) in shown.items():
        print(f"{key:{width}s} = {json.dumps(value, default=str)}  ({source})")
    return 0
