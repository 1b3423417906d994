"""Test helpers for DEM QA: the DEM stand-ins (known terrain) on PATH, MOLA shots of it.

Import with ``sys.path`` pointing at tests/standins; a test module's fixture calls
:func:`use_dem_standins` with its ``monkeypatch``.

It models no program: the stand-ins it puts on PATH follow ASP at 55bf46022
(src/asp/Tools/point2dem.cc, src/asp/Tools/pc_align.cc; citations in :mod:`_asp_dem`)."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np

STANDINS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(STANDINS))
import _terrain as terrain  # noqa: E402  (the stand-ins' own terrain: the tests' ground truth)


def use_dem_standins(monkeypatch):
    """Stand-ins first on PATH; returns a function setting the terrain (CTXDASK_STANDIN_SURFACE)."""
    monkeypatch.setenv("PATH", os.pathsep.join([str(STANDINS), os.path.dirname(sys.executable),
                                                os.environ.get("PATH", "")]))
    for var in ("CTXDASK_STANDIN_FAULT", "CTXDASK_STANDIN_CALLS", "CTXDASK_STANDIN_SLEEP"):
        monkeypatch.delenv(var, raising=False)

    def set_surface(**spec):
        monkeypatch.setenv("CTXDASK_STANDIN_SURFACE", json.dumps(spec))
        return terrain.settings()

    set_surface()
    return set_surface


def mola_shots(path, spec, n=400, seed=0, margin=3):
    """Write ``n`` MOLA shots of the TRUE terrain inside the stand-in DEM as 'lon,lat,radius_km'."""
    x, y, _ = terrain.grid(spec)
    res = float(spec["spacing"])
    rng = np.random.default_rng(seed)
    px = rng.uniform(x[0] + margin * res, x[-1] - margin * res, n)
    py = rng.uniform(y[-1] + margin * res, y[0] - margin * res, n)
    lon, lat = np.degrees(px / terrain.R_MARS), np.degrees(py / terrain.R_MARS)
    radius_km = (terrain.truth(px, py) + terrain.R_MARS) / 1000.0
    np.savetxt(path, np.column_stack([lon, lat, radius_km]), delimiter=",", fmt="%.12f",
               header="lon,lat,radius_km (test MOLA shots)")
    return path, px, py


def placeholder_cloud(folder):
    """The inputs point2dem/pc_align read: a 4-band cloud and a texture (stand-in placeholders)."""
    import rasterio

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(folder / "out-PC.tif", "w", driver="GTiff", width=8, height=8, count=4,
                       dtype="float64") as dst:
        dst.write(np.zeros((4, 8, 8)))
    with rasterio.open(folder / "out-L.tif", "w", driver="GTiff", width=8, height=8, count=1,
                       dtype="float32") as dst:
        dst.write(np.zeros((1, 8, 8), "float32"))
    return folder / "out-PC.tif", folder / "out-L.tif"
