"""Helpers for the tiled-stereo tests: the ASP 3.7 stand-ins on PATH, inputs, a recipe."""

from __future__ import annotations

import logging
import os
import pathlib
import sys

import numpy as np
import rasterio
from rasterio.transform import from_origin

from ctxdask.tools.recipe import build_recipe
from ctxdask.tools.tasks import RunOptions

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


def tiled_recipe(*, tile_size: int = 16, env: dict | None = None, **overrides):
    """The recipe in tiled mode with small tiles and the stand-in environment."""
    return build_recipe(stereo_mode="tiled", tile_size=tile_size, tile_padding=4, dem_spacing=12.0,
                        env=dict(env or {}), **overrides)


def fast_options(work_dir: pathlib.Path, tile_timeout: float = 30.0) -> RunOptions:
    return RunOptions(work_dir=str(work_dir), grace=1.0, poll_interval=0.05, tail_lines=40,
                      timeouts={"stereo_tile": tile_timeout})


def local_cluster(n_workers: int = 2, threads: int = 2):
    """A LocalCluster of ``n_workers`` processes with stereo=1 whose workers see the ASP 3.7 stand-ins."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=True,
                        resources={"stereo": 1}, dashboard_address=":0", silence_logs=logging.ERROR)
