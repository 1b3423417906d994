"""``ctxdask fetch ID... --to DIR``: polite, verified downloads of CTX EDRs.

Product ids come from the command line and/or ``--list`` files (one id per
line, or "LEFT RIGHT" pair lists: every id on every line is fetched once).
URLs come from a PDS cumulative index (``--index``) or a URL list
(``--urls``). With ``--scheduler`` the downloads run as tasks on that dask
cluster, sharing its download semaphore.

Exit code 0 when every product is in the cache, verified; 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from ctxdask.commands import positive_int, positive_number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask fetch`` to ``parser``."""
    parser.add_argument("ids", nargs="*", metavar="ID", help="product ids (full, or short PPP_NNNNNN)")
    parser.add_argument("--to", dest="cache", metavar="DIR", default=None,
                        help="cache folder (default: ctxdask.catalog.cache-dir, else ~/.cache/ctxdask/edr)")
    parser.add_argument("--list", dest="lists", action="append", default=[], metavar="FILE",
                        help="file of ids, one or more per line (a 'LEFT RIGHT' pair list works); repeatable")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", metavar="LABEL", help="PDS cumulative index label (cumindex.lbl), path or URL")
    source.add_argument("--urls", metavar="FILE", help="text file with one product URL per line")
    parser.add_argument("--base", metavar="URL", default=None,
                        help="root of the volumes for --index (default: ctxdask.catalog.base-url)")
    parser.add_argument("--md5", metavar="FILE", default=None, help="md5sum-style manifest to check files against")
    parser.add_argument("--checksum", choices=("warn", "reject"), default=None,
                        help="what a CHECKSUM mismatch is (default: catalog.download.checksum, else validate.checksum)")
    parser.add_argument("--max-concurrent", type=positive_int, default=None, metavar="N",
                        help="downloads at once, cluster-wide (default: catalog.download.max-concurrent)")
    parser.add_argument("--rate", type=positive_number, default=None, metavar="R",
                        help="requests started per second (default: catalog.download.requests-per-second)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run the downloads on this dask scheduler (tcp://host:8786)")


def read_id_lists(paths: list[str]) -> tuple[list[str], list[str]]:
    """Ids from list files, and a message per unusable token (with file and line)."""
    from ctxdask.product_id import InvalidProductIdError, normalize_product_id

    ids: list[str] = []
    problems: list[str] = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                for token in line.split("#", 1)[0].split():
                    try:
                        ids.append(normalize_product_id(token, allow_short=True, source=f"{path}:{number}"))
                    except InvalidProductIdError as exc:
                        problems.append(str(exc))
    return ids, problems


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask fetch`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.catalog.download import DownloadSettings, cache_dir, fetch_many, read_md5_manifest
    from ctxdask.catalog.lookup import ProductLocator
    from ctxdask.commands import EXIT_ERROR, EXIT_OK, UsageError, check_input, check_output_folder

    if args.cache:
        check_output_folder(args.cache, "the cache folder (--to)")
    for path in args.lists:
        check_input(path, "the id list (--list)")
    for path, what in ((args.urls, "the URL list (--urls)"), (args.index, "the index label (--index)"),
                       (args.md5, "the md5 manifest (--md5)")):
        if path:
            check_input(path, what)
    ids, problems = read_id_lists(args.lists)
    ids = list(args.ids) + ids
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not ids:
        raise UsageError("no product ids given (arguments or --list)")
    if args.index:
        locator = ProductLocator.from_index(args.index, base=args.base)
    else:
        locator = ProductLocator.from_url_list(args.urls)
        for bad in locator.skipped:
            print(f"skipped: {args.urls}:{bad.line}: {bad.reason}", file=sys.stderr)
    settings = DownloadSettings.from_config(checksum=args.checksum, max_concurrent=args.max_concurrent,
                                            requests_per_second=args.rate)
    md5s = read_md5_manifest(args.md5) if args.md5 else None

    client = None
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
    try:
        results = fetch_many(ids, locator=locator, cache=cache_dir(args.cache), md5s=md5s, settings=settings,
                             client=client)
    finally:
        if client is not None:
            client.close()
    failed = 0
    for result in results:
        if isinstance(result, Exception):
            failed += 1
            print(f"FAILED {' '.join(str(result).split())}", file=sys.stderr)
        else:
            print(result.summary())
    print(f"{len(results) - failed} in the cache, {failed} failed")
    return EXIT_ERROR if failed or problems else EXIT_OK
