"""``ctxdask calibrate IN.IMG OUT.(cub|tif|zarr) [--flat F] [--units iof|rate] [--even-odd]``.

Decompands and calibrates one EDR as ISIS mroctx2isis + ctxcal (+ ctxevenodd)
would, and writes it chunk by chunk with a progress bar. Runs on local threads,
or on a dask cluster with ``--scheduler``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN.IMG", help="CTX EDR (path or URL)")
    parser.add_argument("output", metavar="OUT", help="output: .cub (ISIS level 1), .tif (GeoTIFF) or .zarr")
    parser.add_argument("--flat", help="flat field: ISIS cube, GeoTIFF or .npy (default: unity, with a warning)")
    parser.add_argument("--units", choices=("iof", "rate"), default="iof", help="I/F (default) or DN/ms")
    parser.add_argument("--even-odd", action="store_true", help="apply ctxevenodd (summing 1 images only)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler address (default: local threads)")
    parser.add_argument("--chunk-lines", type=int, default=None, help="lines per chunk (default: ctxdask.chunk-lines)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ctxdask.backend import open_edr
    from ctxdask.exceptions import UnityFlatWarning
    from ctxdask.io import write
    from ctxdask.radiometry.calibrate import calibrate

    started = time.perf_counter()
    chunks = {"line": args.chunk_lines} if args.chunk_lines else {}
    ds = open_edr(args.input, chunks=chunks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnityFlatWarning)
        result = calibrate(ds, flat=args.flat, units=args.units, even_odd=args.even_odd)
    for w in caught:
        print(f"warning: {w.message}")
    with _executor(args) as progress:
        with progress:
            path = write(result, args.output)
    attrs = result.image.attrs
    print(
        f"{ds.attrs.get('PRODUCT_ID', args.input)}: {ds.sizes['line']} x {ds.sizes['sample']} -> {path} "
        f"({attrs['calibration']}, {attrs['units']}, flat {attrs['flat_source']}) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


@contextlib.contextmanager
def _executor(args):
    """Yield a progress context for the chosen scheduler.

    Locally, dask's ProgressBar follows the threaded scheduler. On a cluster,
    progress is on the dashboard, whose link is printed.
    """
    if args.scheduler:
        from distributed import Client

        with Client(args.scheduler) as client:
            print(f"dask dashboard (progress): {client.dashboard_link}")
            yield contextlib.nullcontext()
    else:
        from dask.diagnostics import ProgressBar

        yield contextlib.nullcontext() if args.no_progress else ProgressBar(dt=0.5)
