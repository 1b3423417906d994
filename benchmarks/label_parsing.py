"""PVL label parsing: :func:`ctxdask.pvltext.loads` against :func:`pvl.loads`, in the same run.

Every step that checks or reads an ISIS cube parses its label, and so does
every ISIS stand-in program; profiles of the batch fault tests showed a quarter
of their CPU in ``pvl.loads`` (its date tries on every word). This parses the
real labels of ``../shared/reference`` (the ISIS test cube and the CTX EDR
labels) with both, checks the results are equal, and prints CPU ms per label
and the speed-up. Target: at least 2x on the ISIS cube label.

Run::

    .venv/bin/python benchmarks/label_parsing.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

REFERENCE = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def cpu_ms(parse, text: str, repeat: int) -> float:
    """Median CPU milliseconds of ``parse(text)`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        parse(text)
        times.append((time.process_time() - t0) * 1000)
    return sorted(times)[len(times) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if not REFERENCE.is_dir():
        print(f"{REFERENCE} is not there: nothing to parse", file=sys.stderr)
        return 2
    import pvl

    from ctxdask import pvltext
    from ctxdask.io.isis_read import read_label_text

    labels = {"ctxTestImage.cub (ISIS cube)": read_label_text(REFERENCE / "isis" / "ctxTestImage.cub")}
    labels |= {p.name: p.read_text(errors="replace") for p in sorted((REFERENCE / "labels").glob("*.lbl"))}
    print(f"{'label':38s} {'bytes':>6s} {'pvl.loads':>10s} {'pvltext':>8s} {'speed-up':>8s}")
    ratios = []
    for name, text in labels.items():
        if repr(pvltext.loads(text)) != repr(pvl.loads(text)):
            print(f"{name}: pvltext and pvl disagree", file=sys.stderr)
            return 1
        plain, quick = cpu_ms(pvl.loads, text, args.repeat), cpu_ms(pvltext.loads, text, args.repeat)
        ratios.append(plain / quick)
        print(f"{name:38s} {len(text):6d} {plain:8.1f}ms {quick:6.1f}ms {plain / quick:7.1f}x")
    cube = ratios[0]
    print(f"ISIS cube label: {cube:.1f}x faster (target >= 2x): {'met' if cube >= 2 else 'NOT met'}")
    return 0 if cube >= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
