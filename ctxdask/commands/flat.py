"""``ctxdask flat EDRS... | --from-batch DIR --out FLAT [--by month|all] [--min-images N]``.

Builds CTX detector flats from a stack of EDRs with
:func:`ctxdask.radiometry.flatbuild.build_flat` (one pass per image, bounded
memory), writes them with :func:`ctxdask.radiometry.flatio.write_flat`
(``.cub``, ``.tif``, ``.npy``, ``.json``) and a QA page ``index.html`` with a
plot per flat (:mod:`ctxdask.radiometry.flatqa`).

``--by all`` writes ``FLAT.cub`` etc. (``FLAT`` a path; a folder gets
``flat_all.*``); ``--by month`` writes ``flat_YYYY-MM.*`` into the folder
``FLAT``, the layout setting ``ctxdask.flat.dir`` and ``calibrate(flat=FOLDER)``
read. Runs on local threads, a LocalCluster (``--local N``) or a scheduler.
Exit status 1 when no flat could be built.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import sys
import time

from ctxdask.commands import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask flat`` to ``parser``."""
    parser.add_argument("edrs", nargs="*", metavar="EDR", help="CTX EDRs (paths)")
    parser.add_argument("--from-batch", metavar="DIR", help="use the images of a batch output folder")
    parser.add_argument("--edr-dir", metavar="DIR",
                        help="where the batch's EDRs are, as PRODUCT_ID.IMG (default: where the batch read them, "
                             "else the download cache)")
    parser.add_argument("--out", required=True, metavar="FLAT",
                        help="output path without suffix (--by all) or folder (--by month)")
    parser.add_argument("--by", choices=("all", "month"), default="all",
                        help="one flat from all images (default) or one per month of START_TIME")
    parser.add_argument("--min-images", type=positive_int, default=None, metavar="N",
                        help="images needed per CCD pixel and per flat (default: ctxdask.flat.build.min-images)")
    parser.add_argument("--method", choices=("median", "clipped-mean"), default=None,
                        help="per-pixel combination (default: ctxdask.flat.build.method)")
    parser.add_argument("--format", default="cub,tif,npy", help="pixel files to write (default: cub,tif,npy)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler (default: local threads)")
    where.add_argument("--local", metavar="N", type=positive_int, help="start a LocalCluster of N worker processes")


def batch_edrs(folder: str | pathlib.Path, edr_dir: str | pathlib.Path | None = None) -> list[str]:
    """EDR paths of the images in a batch's tracking database.

    Found in ``edr_dir``, else where the batch's latest run read them (its EDR
    folder, or its download cache), else in the download cache. Images whose
    EDR is not there are returned as the path they would have, so the build
    records them as unreadable instead of silently leaving them out.
    """
    from ctxdask.catalog.download import cache_dir
    from ctxdask.exceptions import MissingFileError
    from ctxdask.tracking import BatchView, TrackingDB, database_path

    path = database_path(None, folder)
    if not path.is_file():
        raise MissingFileError(path, "no batch tracking database here (give the batch's --out folder)")
    with TrackingDB(path, readonly=True) as db:
        ids = db.product_ids()
    if not edr_dir:
        with BatchView(path) as view:
            recorded = [r["settings"] for r in view.runs() if isinstance(r.get("settings"), dict)]
        edr_dir = next((s.get("edr_dir") or s.get("edr_cache") for s in recorded
                        if s.get("edr_dir") or s.get("edr_cache")), None)
    where = pathlib.Path(edr_dir) if edr_dir else cache_dir()
    out = []
    for pid in ids:
        found = [p for p in (where / f"{pid}.IMG", where / f"{pid}.img") if p.is_file()]
        out.append(str(found[0] if found else where / f"{pid}.IMG"))
    return out


@contextlib.contextmanager
def _cluster(args):
    if args.scheduler or args.local:
        from ctxdask.cluster import connect

        client = connect(args.scheduler, n_workers=args.local, threads_per_worker=2) if args.local else \
            connect(args.scheduler)
        try:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
            yield client
        finally:
            client.close()
    else:
        yield None


#: suffixes of --out taken as the flat's pixel format, not as part of its name (as write_flat does)
_PIXEL_SUFFIXES = (".cub", ".tif", ".npy")


def _destinations(args, formats: list[str]) -> pathlib.Path | None:
    """Check where the flats go before any work: the folder (``--by month``, or ``--out DIR/``), or None.

    The output-folder rule of every ctxdask writer: the folder an output goes
    into must exist (``--by month`` creates the one flat folder itself, in an
    existing parent).
    """
    from ctxdask.exceptions import OutputPathError
    from ctxdask.io.atomic import check_destination

    out = pathlib.Path(args.out)
    if args.by == "month" or out.is_dir() or args.out.endswith(("/", "\\")):
        if out.exists() and not out.is_dir():
            raise OutputPathError(out, "is a file; --by month writes a folder of flats")
        if not out.exists():
            check_destination(out, folder=True)
        return out
    for suffix in (*(f".{f}" for f in formats), ".json"):
        check_destination(out.with_suffix(suffix) if out.suffix in _PIXEL_SUFFIXES else
                          out.with_name(out.name + suffix))
    return None


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask flat`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.commands import UsageError
    from ctxdask.radiometry.flatbuild import build_flat
    from ctxdask.radiometry.flatio import FORMATS, write_flat
    from ctxdask.radiometry.flatqa import write_qa_page

    edrs = list(args.edrs)
    if args.from_batch:
        edrs += batch_edrs(args.from_batch, args.edr_dir)
    if not edrs:
        if args.from_batch:
            print(f"ctxdask flat: {args.from_batch}: the batch has no images", file=sys.stderr)
            return 1
        raise UsageError("no EDRs given (list them or use --from-batch DIR)")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise UsageError(f"--format: unknown {unknown}; choose from {', '.join(FORMATS)}")
    folder = _destinations(args, formats)
    started = time.perf_counter()
    with _cluster(args):
        built = build_flat(edrs, by=args.by, method=args.method, min_images=args.min_images)
    results = list(built.values()) if isinstance(built, dict) else [built]
    out = pathlib.Path(args.out)
    # a folder of flats is theirs alone; one flat written among other files gets a page of its own name,
    # the name its files have (--out flat1.cub writes flat1.cub, flat1.json and flat1.qa.html)
    stem = out.with_suffix("").name if out.suffix in _PIXEL_SUFFIXES else out.name
    names = {} if folder is not None else {"page_name": f"{stem}.qa.html", "plot_prefix": f"{stem}.qa_"}
    if folder is not None:
        folder.mkdir(exist_ok=True)
        bases = {r.key: folder / f"flat_{r.key}" for r in results}
    else:
        folder, bases = out.parent, {results[0].key: out}
    files = {r.key: write_flat(r, bases[r.key], formats) for r in results}
    page = write_qa_page(results, folder, files=files, **names)
    rejected = {i.get("source"): i["rejected"] for r in results for i in r.rejected}
    for source, reason in rejected.items():  # one line each: the file and why
        print(f"ctxdask flat: rejected {source}: {reason}", file=sys.stderr)
    for r in results:
        state = f"{len(r.accepted)} images, {len(r.rejected)} rejected" + ("" if r.ok else f": no flat, {r.problem}")
        print(f"flat {r.key}: {state}" + (f" -> {files[r.key][0]}" if r.ok else ""))
    print(f"QA page: {page} ({time.perf_counter() - started:.1f} s)")
    return 0 if any(r.ok for r in results) else 1
