"""The ``ctxdask`` command line.

Each sub-command lives in the module that owns its feature; this file only
lists them and dispatches. A command module provides ``add_arguments(parser)``
and ``run(args) -> int`` (the exit code). Modules are imported only when their
command runs, so ``ctxdask --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ctxdask import __version__
from ctxdask.exceptions import CTXError

# command name -> (module, one-line help). Add a command with one line here.
_COMMANDS: dict[str, tuple[str, str]] = {
    "batch": ("ctxdask.commands.batch", "run a stereo-pair list on a dask cluster, tracked in a database"),
    "calibrate": ("ctxdask.commands.calibrate", "decompand and calibrate an EDR to an ISIS cube, GeoTIFF or zarr"),
    "demo": ("ctxdask.commands.demo", "run the main job on sample data it generates (LocalCluster)"),
    "doctor": ("ctxdask.tools.doctor", "report the ISIS/ASP programs found and what the batch can do"),
    "fetch": ("ctxdask.commands.fetch", "download CTX EDRs politely into a cache, resumed and verified"),
    "info": ("ctxdask.commands.info", "summarise CTX EDRs from their labels"),
    "pairs": ("ctxdask.commands.pairs", "find and rank stereo pairs in a PDS cumulative index"),
    "report": ("ctxdask.commands.report", "write a static HTML report of a batch: summary, pairs, QA thumbnails"),
    "select": ("ctxdask.commands.select", "write the pairs of a batch chosen by rules as a pair list"),
    "serve": ("ctxdask.commands.serve", "a live web view of a batch: progress, tables, map, manual grades"),
    "status": ("ctxdask.commands.status", "summarise a batch's tracking database and its failures"),
    "validate": ("ctxdask.commands.validate", "check CTX EDRs: label, size, checksum, lost lines"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="ctxdask",
        description="Mass processing of MRO CTX images with Dask.",
    )
    parser.add_argument("--version", action="version", version=f"ctxdask {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except CTXError as exc:
        # an expected, explained failure: one clear line, no traceback
        print(f"ctxdask {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ctxdask {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
