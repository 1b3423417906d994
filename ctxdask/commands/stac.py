"""``ctxdask stac DIR``: rebuild a batch folder's STAC catalog from its pairs' items.

Reads ``DIR/pairs/*/*.stac.json``, writes ``DIR/catalog.json`` and
``DIR/collection.json`` (self-contained, relative links) and validates
every object offline (:func:`ctxdask.quality.stac.validate`).
"""

from __future__ import annotations

import argparse
import pathlib
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask stac`` to ``parser``."""
    parser.add_argument("target", metavar="DIR", help="a batch output folder (with pairs/<pair>/<pair>.stac.json)")
    parser.add_argument("--collection-id", default=None, help="id of the batch's collection (default: the folder name)")
    parser.add_argument("--no-validate", action="store_true", help="skip validation against the STAC schemas")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask stac`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    import pystac
    from pystac.errors import STACValidationError

    from ctxdask.quality.stac import rebuild_catalog, validate

    target = pathlib.Path(args.target)
    if not target.is_dir():
        from ctxdask.commands import check_input_folder

        check_input_folder(target, "the batch folder")  # one line on stderr, exit 1 (a bad input)
    from ctxdask.tracking import DEFAULT_NAME
    from ctxdask.tracking.grades import stac_grades

    database = target / DEFAULT_NAME
    if not database.is_file() and not any(target.glob("pairs/*/*.stac.json")):
        # any folder is not a batch: writing catalog.json into it would only litter it
        print(f"ctxdask stac: {target}: not a batch output folder (no {DEFAULT_NAME}, no pairs/*/*.stac.json); "
              "nothing written", file=sys.stderr)
        return 1
    # the items carry the pairs' and images' current grades, automatic and manual (ctxdask serve)
    extra = stac_grades(database) if database.is_file() else None
    path, count = rebuild_catalog(target, collection_id=args.collection_id, extra_properties=extra)
    print(f"{path}: catalog with 1 collection and {count} items")
    if count == 0:
        print(f"ctxdask stac: no items found under {target / 'pairs'}")
    if args.no_validate:
        return 0
    catalog = pystac.Catalog.from_file(str(path))
    bad = 0
    for obj in [catalog, *catalog.get_collections(), *catalog.get_items(recursive=True)]:
        try:
            validate(obj)
        except STACValidationError as exc:
            bad += 1
            print(f"invalid {type(obj).__name__} {obj.id}: {str(exc).splitlines()[0]}")
    print("all valid (STAC core, ssys, projection, processing, raster schemas; offline)" if not bad
          else f"{bad} invalid objects")
    return 1 if bad else 0
