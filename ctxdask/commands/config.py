"""``ctxdask config``: the settings in force, each with where it came from."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prefix", nargs="?", default="",
                        help="only the settings under this key, e.g. tools.asp or batch.retries")
    parser.add_argument("--json", action="store_true", help="print {key: {value, source}} as JSON")


def run(args: argparse.Namespace) -> int:
    from ctxdask.settings import origins

    prefix = args.prefix.removeprefix("ctxdask.").replace("_", "-")
    shown = {k: v for k, v in origins().items()
             if not prefix or k == prefix or k.startswith(prefix + ".")}
    if not shown:
        print(f"ctxdask config: no setting {args.prefix!r} (ctxdask config lists them all)")
        return 1
    if args.json:
        print(json.dumps({k: {"value": v, "source": s} for k, (v, s) in shown.items()}, indent=1, default=str))
        return 0
    width = max(len(k) for k in shown)
    for key, (value, source) in shown.items():
        print(f"{key:{width}s} = {json.dumps(value, default=str)}  ({source})")
    return 0
