"""Helpers for the tiled-stereo tests: the ASP 3.7 stand-ins on PATH, inputs, a recipe, a tiled batch."""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import types

import dask
import numpy as np
import rasterio
from rasterio.transform import from_origin

from ctxdask.batch import run_batch
from ctxdask.settings import current
from ctxdask.testing import make_edr
from ctxdask.tools.recipe import build_recipe

from ..tools.conftest import STANDINS, standin_path

ASP37 = STANDINS / "asp37"
ROOT = str(pathlib.Path(__file__).resolve().parents[2])
LEFT, RIGHT = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"


def tiled_path() -> str:
    """PATH with the ASP 3.7 stand-ins (stereo_tile...) before the older ones."""
    return os.pathsep.join([str(ASP37), standin_path()])


def write_inputs(folder: pathlib.Path, pairs=((LEFT, RIGHT),)) -> dict:
    """Spiceinit-ed stand-in cubes for every image and a low-resolution DEM; returns their paths."""
    sys.path.insert(0, str(STANDINS))
    try:
        from _standin import write_cube
    finally:
        sys.path.remove(str(STANDINS))
    folder.mkdir(parents=True, exist_ok=True)
    cubes = {}
    for pid in {p for pair in pairs for p in pair}:
        path = folder / f"{pid}.cal.cub"
        write_cube(str(path), {"Instrument": {"InstrumentId": "CTX"}, "Kernels": {"Source": "local"}})
        cubes[pid] = str(path)
    dem = folder / "mola_megdr.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=16, height=16, count=1, dtype="float32",
                       crs="+proj=longlat +a=3396190 +b=3396190 +no_defs",
                       transform=from_origin(354.0, 2.3, 0.1, 0.1)) as dst:
        dst.write(np.full((1, 16, 16), -1200.0, dtype="float32"))
    return {"cubes": cubes, "dem": str(dem)}


def asp_runner(folder: pathlib.Path, monkeypatch):
    """Run an ASP 3.7 stand-in in ``folder``, which holds two spiceinit-ed cubes and a lon/lat DEM ``dem.tif``.

    Returns ``run(*argv, **env)`` (a CompletedProcess; ``run.dir`` is the folder).
    """
    import shutil
    import subprocess

    monkeypatch.setenv("PATH", tiled_path())
    for var in ("CTXDASK_STANDIN_FAULT", "CTXDASK_STANDIN_FAULT_PROGRAMS", "CTXDASK_STANDIN_CALLS",
                "CTXDASK_STANDIN_TILE_FAULTS", "CTXDASK_STANDIN_MAP_SIZE"):
        monkeypatch.delenv(var, raising=False)
    shutil.copy(write_inputs(folder)["dem"], folder / "dem.tif")

    def run(*argv, **env):
        return subprocess.run([str(a) for a in argv], cwd=folder, capture_output=True, text=True,
                              env={**os.environ, **env}, timeout=120)

    run.dir = folder
    return run


def tiled_recipe(*, tile_size: int = 16, env: dict | None = None, **overrides):
    """The recipe in tiled mode with small tiles and the stand-in environment (``overrides``: keywords of build_recipe)."""
    small_tiles = current().override({"tools.asp.tiles": {"size": tile_size, "padding": 4}})
    return build_recipe(small_tiles, stereo_mode="tiled", dem_spacing=12.0, env=dict(env or {}), **overrides)


def local_cluster(n_workers: int = 2, threads: int = 2):
    """A LocalCluster of ``n_workers`` processes with stereo=1 whose workers see the ASP 3.7 stand-ins."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=True,
                        resources={"stereo": 1}, dashboard_address=":0", silence_logs=logging.ERROR)


#: the mosaics' own rasters are delivered too (the tests read the DEM mosaic's holes)
MOSAICS = ("dem_mosaic", "dem_mosaic_ortho", "dem_mosaic_error")


def prepare(folder: pathlib.Path, pairs=((LEFT, RIGHT),)) -> dict:
    """Stand-in EDRs in ``folder/edr``, the pair list ``folder/pairs.txt`` and the low-resolution DEM (once)."""
    edr = folder / "edr"
    edr.mkdir(parents=True, exist_ok=True)
    for pid in {p for pair in pairs for p in pair}:
        if not (edr / f"{pid}.IMG").exists():
            make_edr(edr / f"{pid}.IMG", lines=16, line_samples=128)
    listing = folder / "pairs.txt"
    listing.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    dem = folder / "in" / "mola_megdr.tif"
    if not dem.exists():
        write_inputs(folder / "in", pairs)
    return {"edr": edr, "pairs": listing, "dem": str(dem)}


def run_tiled(client, folder: pathlib.Path, *, env: dict, pairs=((LEFT, RIGHT),), tile_timeout: float = 30.0,
              retries: int = 2, min_fraction: float = 0.9, retry_failed: bool = False, settings: dict | None = None):
    """``run_batch`` of ``pairs`` in tiled mode on stand-in EDRs: output ``folder/out``, scratch ``folder/scratch``
    (``settings``: more of run_batch's, e.g. ``batch.hedge-factor``)."""
    inputs = prepare(folder, pairs)
    with dask.config.set({"ctxdask.batch.tile-retries": retries, "ctxdask.batch.min-tile-fraction": min_fraction,
                          "ctxdask.tools.grace-period": 1, "ctxdask.tools.poll-interval": 0.05}):
        return run_batch(inputs["pairs"], folder / "out", source=inputs["edr"], client=client,
                         recipe=tiled_recipe(env=env, lowres_dem=inputs["dem"], timeouts={"stereo_tile": tile_timeout}),
                         settings={"batch.progress": False, "batch.retry-failed": retry_failed,
                                   "batch.scratch": str(folder / "scratch"), "batch.deliver": MOSAICS,
                                   **(settings or {})})


def pair_end(out: pathlib.Path, pair_id: str) -> types.SimpleNamespace:
    """How a tiled pair ended, from the database: ``status``, ``error`` and its tiles' ``total``, ``done``
    (indexes) and ``holes`` (index -> why)."""
    from ctxdask.tracking import TrackingDB

    with TrackingDB(out / "ctxdask-batch.sqlite", readonly=True) as db:
        (row,) = db.rows("SELECT status, error FROM pairs WHERE pair_id = ?", (pair_id,))
        tiles = db.tiles(pair_id)
    return types.SimpleNamespace(status=row["status"], error=row["error"], total=len(tiles),
                                 done=tuple(t["tile_index"] for t in tiles if t["status"] == "done"),
                                 holes={t["tile_index"]: t["error"] for t in tiles if t["status"] != "done"})
