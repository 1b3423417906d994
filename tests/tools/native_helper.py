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
    # the groups ISIS spiceinit needs from a level-1 cube (mroctx2isis writes them)
    write_cube(destination, {
        "Instrument": {"SpacecraftName": "MARS_RECONNAISSANCE_ORBITER", "InstrumentId": "CTX",
                       "StartTime": "2009-06-01T00:38:16.057", "SpacecraftClockCount": "0928283918:060",
                       "LineExposureDuration": 1.877, "SpatialSumming": 1, "SampleFirstPixel": 0},
        "Kernels": {"NaifFrameCode": -74021},
        "Radiometry": {"Native": "Yes", "EvenOdd": "Yes" if even_odd else "No"},
    }, pixel_type="Real", fill=0.1)
    print(json.dumps({"source": source, "even_odd": even_odd}))
