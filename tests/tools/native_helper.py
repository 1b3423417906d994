"""A native calibration callable for the recipe tests (imported in a subprocess)."""

from __future__ import annotations

import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "standins"))
from _standin import write_cube  # noqa: E402


def write_level1(source: str, destination: str, *, even_odd: bool = True) -> None:
    """Write a level-1 (Real) cube whose label records the call."""
    assert os.path.exists(source), source
    write_cube(destination, {
        "Instrument": {"SpacecraftName": "MARS_RECONNAISSANCE_ORBITER", "InstrumentId": "CTX",
                       "SpatialSumming": 1},
        "Radiometry": {"Native": "Yes", "EvenOdd": "Yes" if even_odd else "No"},
    }, pixel_type="Real", fill=0.1)
    print(json.dumps({"source": source, "even_odd": even_odd}))
