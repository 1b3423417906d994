"""``ctxdask pairs INDEX``: find and rank stereo pairs in a PDS cumulative index.

Writes the ranked pair list ("LEFT RIGHT" per line, the format the batch
reads) and the scores as CSV beside it. Criteria default to
``ctxdask.catalog.pairs`` (see :class:`ctxdask.catalog.pairs.PairCriteria`).
"""

from __future__ import annotations

import argparse

from ctxdask.commands import positive_int

_CRITERIA = {
    "min_overlap": "least intersection over union of the footprints",
    "min_convergence": "least convergence angle (degrees)",
    "max_convergence": "largest convergence angle (degrees)",
    "max_emission": "largest emission angle of either image (degrees)",
    "max_incidence": "largest incidence angle of either image (degrees)",
    "max_gsd_ratio": "largest ratio of the two pixel scales",
    "max_solar_longitude_difference": "largest season difference (degrees of Ls)",
    "max_shadow_tip_distance": "largest shadow-tip distance (illumination difference)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask pairs`` to ``parser``."""
    parser.add_argument("index", metavar="INDEX", help="cumulative index label (cumindex.lbl), path or URL")
    parser.add_argument("--bbox", nargs=4, type=float, metavar=("MIN_LON", "MIN_LAT", "MAX_LON", "MAX_LAT"),
                        help="only images meeting this box; longitudes as the index counts them "
                             "(positive west for CTX); MIN_LON > MAX_LON wraps through 0")
    parser.add_argument("-o", "--out", default="pairs.txt", metavar="FILE",
                        help="pair list to write (default: pairs.txt); scores go to FILE with .csv")
    parser.add_argument("--scores", default=None, metavar="CSV", help="where to write the scores instead")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N", help="keep the N best pairs")
    parser.add_argument("--east", action="store_true", help="the index counts longitude positive east")
    for name, help_text in _CRITERIA.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None, dest=name,
                            help=f"{help_text} (default: ctxdask.catalog.pairs)")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask pairs`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.catalog.pairs import PairCriteria, find_pairs, write_pairs
    from ctxdask.commands import check_input

    check_input(args.index, "the cumulative index")

    criteria = PairCriteria.from_config(**{name: getattr(args, name) for name in _CRITERIA})
    pairs = find_pairs(args.index, criteria=criteria, bbox=args.bbox, limit=args.limit,
                       longitude_direction="east" if args.east else "west")
    listing, scores = write_pairs(pairs, args.out, scores_path=args.scores)
    print(f"{len(pairs)} pairs -> {listing} (scores: {scores})")
    print(_funnel_text(pairs.attrs.get("funnel"), explain=pairs.empty))
    for row in pairs.head(5).itertuples():
        print(f"  {row.left} {row.right}  score {row.score:.3f}  IoU {row.iou:.2f}  "
              f"convergence {row.convergence:.1f}  p/h {row.parallax_height:.2f}")
    return 0


def _funnel_text(funnel: dict | None, *, explain: bool) -> str:
    """How the index became the list; with ``explain``, what each criterion (option) rejected."""
    if not funnel:
        return ""
    text = (f"  from {funnel['images']} images, {funnel['usable_images']} usable; "
            f"{funnel['overlapping_pairs']} overlapping pairs ({funnel['same_orbit']} of one orbit)")
    if explain:
        rejects = [("images", funnel["image_rejects"], funnel["images"] - funnel["unknown_geometry"]),
                   ("pairs", funnel["pair_rejects"], funnel["overlapping_pairs"] - funnel["same_orbit"])]
        for what, counts, among in rejects:
            worst = sorted(((n, k) for k, n in counts.items() if n), reverse=True)
            if worst:
                text += (f"\n  {what} rejected, of {among}, by each criterion on its own (settings "
                         f"catalog.pairs.*): " + ", ".join(f"{k} {n}" for n, k in worst))
        if funnel["unknown_geometry"]:
            text += f"\n  {funnel['unknown_geometry']} images without usable geometry or not of Mars"
    return text
