"""Quick questions get quick answers: ``status``, ``select``, ``doctor`` and ``--help`` read a SQLite file or
the PATH, so they import none of the array, cluster or raster stack (each of those costs a second or more to
import on a loaded office machine)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ctxdask import tracking
from ctxdask.batch.pairlist import Pair

#: what a quick command must not load
HEAVY = ("numpy", "xarray", "dask.array", "dask.dataframe", "distributed", "pandas", "rasterio", "matplotlib",
         "PIL", "pystac", "scipy", "starlette")

PROBE = """
import json, runpy, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["ctxdask", *json.loads(sys.argv[1])]
try:
    runpy.run_module("ctxdask", run_name="__main__")
except SystemExit as exit:
    pass
sys.__stderr__.write("LOADED " + json.dumps(sorted(m for m in heavy if m in sys.modules)) + "\\n")
"""


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory):
    """An output folder with a tracking database of one finished run."""
    out = tmp_path_factory.mktemp("quick") / "out"
    out.mkdir()
    left, right = "B01_009894_1665_XI_13S042W", "B02_010606_1665_XI_13S042W"
    with tracking.TrackingDB(out / "ctxdask-batch.sqlite") as db:
        db.register([Pair(left, right, 1)], [left, right])
        db.end_run(db.start_run(pairs_file="pairs.txt", out=str(out)), "done")
    return out


@pytest.mark.parametrize("argv", [["status", "{out}"], ["status", "{out}", "--json"], ["select", "{out}"],
                                  ["doctor"], ["--help"]], ids=" ".join)
def test_a_quick_command_loads_no_array_cluster_or_raster_module(argv, batch_folder):
    argv = [a.format(out=batch_folder) for a in argv]
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.startswith("LOADED ")]
    assert lines, result.stderr[-2000:]
    assert json.loads(lines[-1][len("LOADED "):]) == [], f"ctxdask {' '.join(argv)} imported these"
