"""``ctxdask calibrate IN.IMG OUT.(cub|tif|zarr) [--flat F] [--units iof|rate] [--even-odd]``.

Decompands and calibrates one EDR as ISIS mroctx2isis + ctxcal (+ ctxevenodd)
would, and writes it chunk by chunk with a progress bar. Runs on local threads,
or on a dask cluster with ``--scheduler``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings

from ctxdask.commands import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask calibrate`` to ``parser``."""
    parser.add_argument("input", metavar="IN.IMG", help="CTX EDR (path or URL)")
    parser.add_argument("output", metavar="OUT", help="output: .cub (ISIS level 1), .tif (GeoTIFF) or .zarr")
    parser.add_argument("--flat", help="flat field: ISIS cube, GeoTIFF or .npy (default: unity, with a warning)")
    parser.add_argument("--units", choices=("iof", "rate"), default="iof", help="I/F (default) or DN/ms")
    parser.add_argument("--even-odd", action="store_true", help="apply ctxevenodd (summing 1 images only)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler address (default: local threads)")
    parser.add_argument("--chunk-lines", type=positive_int, default=None,
                        help="lines per chunk (default: ctxdask.chunk-lines)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask calibrate`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.backend import open_edr
    from ctxdask.commands import check_input
    from ctxdask.exceptions import UnityFlatWarning
    from ctxdask.io import check_output, write
    from ctxdask.radiometry.calibrate import calibrate

    started = time.perf_counter()
    chunks = {"line": args.chunk_lines} if args.chunk_lines else {}
    ds = open_edr(args.input, chunks=chunks)
    check_output(args.output)  # before any work: a wrong output path fails at once
    if args.flat:
        check_input(args.flat, "the flat field (--flat)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnityFlatWarning)
        result = calibrate(ds, flat=args.flat, units=args.units, even_odd=args.even_odd)
    for w in caught:
        print(f"warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    with _executor(args) as progress:
        with progress:
            path = write(result, args.output)
    print(summary_line(ds, result, path, time.perf_counter() - started, fallback=args.input))
    return 0


def summary_line(raw, result, path, seconds: float, *, fallback: str = "") -> str:
    """What was written, every value named.

    Example: ``B10_013341_1010_XN_79S172W: 2048 lines x 5000 samples -> out.cub
    (I/F, unitless; flat: unity; even/odd: applied; Sun distance 1.52 AU) in 3.1 s``.
    """
    attrs = result.image.attrs
    units = {"iof": "I/F, unitless reflectance", "rate": "DN/ms, counts per millisecond"}.get(
        attrs.get("calibration"), f"{attrs.get('calibration')} ({attrs.get('units')})")
    flat = attrs.get("flat_source") or "unity"
    parts = [units, f"flat field: {flat}"]
    if attrs.get("even_odd") == "applied":
        parts.append("even/odd correction: applied")
    distance = attrs.get("sun_distance_km")
    if distance:
        parts.append(f"Sun-Mars distance {float(distance) / 149_597_870.7:.3f} AU")
    product = raw.attrs.get("PRODUCT_ID", fallback)
    return (f"{product}: {raw.sizes['line']} lines x {raw.sizes['sample']} samples -> {path} "
            f"({'; '.join(parts)}) in {seconds:.1f} s")


@contextlib.contextmanager
def _executor(args):
    """Yield a progress context for the chosen scheduler.

    Locally, dask's ProgressBar follows the threaded scheduler. On a cluster,
    progress is on the dashboard, whose link is printed.
    """
    if args.scheduler:
        from distributed import Client

        with Client(args.scheduler) as client:
            print(f"dask dashboard (progress): {client.dashboard_link}", file=sys.stderr)
            yield contextlib.nullcontext()
    else:
        from dask.diagnostics import ProgressBar

        yield contextlib.nullcontext() if args.no_progress else ProgressBar(dt=0.5, out=sys.stderr)
