"""The ``ctxdask`` command line.

Each sub-command lives in the module that owns its feature; this file only
lists them and dispatches. A command module provides ``add_arguments(parser)``
and ``run(args) -> int`` (the exit code, see :mod:`ctxdask.commands`).

No traceback reaches the user: an expected failure (a ``CTXError``) is one line
naming the file and the problem; any other exception is one line too, with a
hint to rerun with ``--debug`` (or ``CTXDASK_DEBUG=1``) for the traceback.
Results go to stdout; warnings, progress and errors to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import sys
import warnings

from ctxdask import __version__
from ctxdask.commands import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from ctxdask.exceptions import CTXError
from ctxdask.extras import MissingExtraError, extra_providing, missing, require

# command name -> (module, the extra it needs or None, one-line help). Add a command with one line here.
_COMMANDS: dict[str, tuple[str, str | None, str]] = {
    "batch": ("ctxdask.commands.batch", "batch", "run a stereo-pair list on a dask cluster, tracked in a database"),
    "calibrate": ("ctxdask.commands.calibrate", None,
                "decompand and calibrate an EDR to an ISIS cube, GeoTIFF or zarr"),
    "config": ("ctxdask.commands.config", None, "print the settings in force and where each comes from"),
    "demo": ("ctxdask.commands.demo", "batch", "run the main job on sample data it generates (LocalCluster)"),
    "doctor": ("ctxdask.tools.doctor", "batch", "report the ISIS/ASP programs found and what the batch can do"),
    "fetch": ("ctxdask.commands.fetch", "batch", "download CTX EDRs politely into a cache, resumed and verified"),
    "flat": ("ctxdask.commands.flat", "batch", "build detector flat fields from a stack of EDRs (per month or all)"),
    "info": ("ctxdask.commands.info", None, "summarise CTX EDRs from their labels"),
    "pairs": ("ctxdask.commands.pairs", "batch", "find and rank stereo pairs in a PDS cumulative index"),
    "report": ("ctxdask.commands.report", "batch",
                "write a static HTML report of a batch: summary, pairs, QA thumbnails"),
    "select": ("ctxdask.commands.select", None, "write the pairs of a batch chosen by rules as a pair list"),
    "serve": ("ctxdask.commands.serve", "web", "a live web view of a batch: progress, tables, map, manual grades"),
    "stac": ("ctxdask.commands.stac", "products",
                "rebuild a batch folder's STAC catalog (self-contained) and validate it offline"),
    "status": ("ctxdask.commands.status", None, "summarise a batch's tracking database and its failures"),
    "validate": ("ctxdask.commands.validate", None, "check CTX EDRs: label, size, checksum, lost lines"),
}

_DEBUG_HELP = "show the full traceback of an unexpected error (also: CTXDASK_DEBUG=1)"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="ctxdask",
        description="Mass processing of MRO CTX images with Dask.",
        epilog="exit codes: 0 ok, 1 a bad input or a failed step, 2 a wrong command line, 130 interrupted",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"ctxdask {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, extra, help_text) in _COMMANDS.items():
        # no abbreviations: '--unit' must not quietly mean '--units', nor break when another option is added
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if extra and missing(extra):
            # listed all the same: running it says which extra to install (main)
            p.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(_module=None, _extra=extra, _parser=p)
            continue
        module = importlib.import_module(module_name)
        module.add_arguments(p)
        # also after the sub-command; SUPPRESS keeps a --debug given before it
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
        p.set_defaults(_module=module, _extra=extra, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    try:
        parser = build_parser()
    except Exception as exc:  # noqa: BLE001  (a broken installation: still one line)
        if _debug_env():
            raise
        print(f"ctxdask: error: the commands cannot be loaded: {_describe(exc)} "
              "(run with CTXDASK_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_ERROR
    args, extras = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    command = args._parser
    if extras:
        command.error(_unrecognized(extras, command))  # exits 2 with this sub-command's usage
    debug = args.debug or _debug_env()
    prefix = f"ctxdask {args.command}"
    with _one_line_warnings():
        try:
            if args._module is None:
                require(args._extra, prefix)
            return int(args._module.run(args) or 0)
        except KeyboardInterrupt:
            print(f"{prefix}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except UsageError as exc:
            if debug:
                raise
            command.print_usage(sys.stderr)
            print(f"{prefix}: error: {_one_line(str(exc))}", file=sys.stderr)
            return EXIT_USAGE
        except MissingExtraError as exc:
            if debug:
                raise
            print(_one_line(str(exc)), file=sys.stderr)
            return EXIT_ERROR
        except ModuleNotFoundError as exc:
            # an optional dependency the command reached only now (calibrate --scheduler: distributed)
            extra = extra_providing(exc.name or "")
            if debug or extra is None:
                raise
            print(f"{prefix} needs the '{extra}' extra: pip install 'ctxdask[{extra}]' (not installed: {exc.name})",
                  file=sys.stderr)
            return EXIT_ERROR
        except CTXError as exc:
            # an expected, explained failure: one clear line, no traceback
            if debug:
                raise
            print(f"{prefix}: error: {_one_line(str(exc))}", file=sys.stderr)
            return EXIT_ERROR
        except OSError as exc:
            if debug:
                raise
            # a file the command could not read or write (disk full, permission...): the OS says which
            hint = "" if exc.filename is not None else " (run with --debug for the traceback)"
            print(f"{prefix}: error: {_describe(exc)}{hint}", file=sys.stderr)
            return EXIT_ERROR
        except Exception as exc:  # noqa: BLE001  (the last guard: never a traceback without --debug)
            if debug:
                raise
            print(f"{prefix}: error: {_describe(exc)} (run with --debug for the traceback)", file=sys.stderr)
            return EXIT_ERROR


def _debug_env() -> bool:
    return os.environ.get("CTXDASK_DEBUG", "").lower() in ("1", "true", "yes")


def _unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> str:
    """argparse's message for unknown arguments, with the nearest option when one is close."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    options = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    for extra in extras:
        if extra.startswith("-"):
            close = difflib.get_close_matches(extra.split("=", 1)[0], options, n=1, cutoff=0.6)
            if close:
                message += f" (did you mean {close[0]}?)"
                break
    return message


def _describe(exc: BaseException) -> str:
    """One line for an unexpected exception, naming the file when the exception knows it."""
    if isinstance(exc, OSError) and exc.filename is not None:
        what = (exc.strerror or type(exc).__name__).lower()
        return f"{os.fsdecode(exc.filename)}: {what}"
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def _one_line_warnings():
    """Show warnings as ``warning: message`` lines on stderr, without source lines."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {_one_line(str(message))}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
