"""``ctxdask info FILE...``: a human summary of EDRs, from their labels alone."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``ctxdask info`` to ``parser``."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="EDR .IMG files, detached labels, or URLs")


def run(args: argparse.Namespace) -> int:
    """Run ``ctxdask info`` with the parsed ``args``.

    Returns
    -------
    int
        The exit code (:mod:`ctxdask.commands`).
    """
    from ctxdask.edr import describe_edr
    from ctxdask.exceptions import CTXError

    status = 0
    for path in args.files:
        try:
            product = describe_edr(path, allow_unsupported_mode=True)
        except CTXError as exc:
            print(f"{path}: error: {' '.join(exc.reason.split())}", file=sys.stderr)
            status = 1
            continue
        print(summarize(product))
    return status


def summarize(product) -> str:
    """A few lines a person can read at a glance."""
    m = product.label.module
    layout = product.layout
    duration_s = product.lines * product.exposure_ms * layout.summing / 1000
    size = "" if product.file_size is None else f"; {product.file_size:,} bytes"
    rows = [
        f"{product.product_id or '(no PRODUCT_ID)'}  {product.source}",
        f"  time      {m.get('START_TIME')} UTC, {duration_s:.1f} s of exposure, orbit {m.get('ORBIT_NUMBER')}",
        f"  size      {product.lines:,} lines x {layout.line_samples:,} samples ({layout.samples:,} active){size}",
        f"  modes     summing {layout.summing}, first pixel {layout.first_pixel}, {product.bit_mode},"
        f" {layout.prefix_bytes} prefix ({layout.dark_stop - layout.dark_start} dark) + {layout.suffix_bytes} suffix",
        f"  exposure  {product.exposure_ms:g} ms per line",
        f"  quality   DATA_QUALITY_DESC {m.get('DATA_QUALITY_DESC', 'absent')}",
        f"  target    {m.get('TARGET_NAME')}; {m.get('RATIONALE_DESC', '')}",
    ]
    return "\n".join(rows)
