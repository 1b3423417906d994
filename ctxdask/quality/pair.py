"""Everything a pair delivers, to the standard of the USGS CTX DTM archive.

Puts :mod:`~ctxdask.quality.dem`, :mod:`~ctxdask.quality.dem_qa`, :mod:`~ctxdask.quality.cog`,
:mod:`~ctxdask.quality.provenance` and :mod:`~ctxdask.quality.stac` together; none of them
imports this module.

:func:`pair_products` turns ASP's rasters into Cloud Optimized GeoTIFFs
(:mod:`ctxdask.quality.cog`), makes the full-resolution hillshade and colour
relief as COGs (dask ``map_overlap``/``map_blocks``, streamed to disk) and PNG
thumbnails, measures the DEM against MOLA (:mod:`ctxdask.quality.dem_qa`,
``qa_metrics.json`` and the per-shot residuals CSV), writes the provenance
(:mod:`ctxdask.quality.provenance`) and the pair's STAC item
(:mod:`ctxdask.quality.stac`). Files, in ``out_dir``::

    {pair}-DEM.tif  {pair}-DEM-areoid.tif  {pair}-DRG.tif  {pair}-IntersectionErr.tif
    {pair}-hillshade.tif  {pair}-colour-relief.tif                (COGs)
    {pair}_hillshade.png  {pair}_relief.png  {pair}_ortho.png       (thumbnails)
    qa_metrics.json  {pair}-residuals.csv  {pair}-mola.csv  {pair}-pc_align-end_errors.csv
    provenance.json  {pair}.stac.json
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.utils import SerializableLock

from ctxdask.quality.cog import to_cog
from ctxdask.quality.dem import (
    _lazy_statistics,
    _spacing,
    _statistics,
    colour_relief,
    hillshade,
    open_dem,
)
from ctxdask.quality.errors import QualityError
from ctxdask.quality.thumbnail import thumbnail, write_png
from ctxdask.settings import current as current_settings

__all__ = ["pair_products", "relief_cog", "shade_cog"]

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _isotime(value: Any) -> str:
    """A UTC time as STAC wants it: ``YYYY-MM-DDThh:mm:ss.ffffffZ``."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        value = np.datetime64(value, "us")
    elif isinstance(value, str):
        value = np.datetime64(re.sub(r"(Z|[+-]00:?00)$", "", value.strip()), "us")
    else:
        value = np.datetime64(value, "us")
    if np.isnat(value):
        raise QualityError(None, "the STAC item needs a datetime (the left image's START_TIME)")
    return str(value) + "Z"


def _write_lazy_cog(data: xr.DataArray, path: pathlib.Path, *, nodata: float | int | None,
                    resampling: str = "average", scheduler: Any = None) -> pathlib.Path:
    """Stream a dask-backed raster to a scratch GeoTIFF beside ``path``, then make it a COG."""
    scratch = tempfile.mkdtemp(prefix=".cog-", dir=path.parent)
    try:
        tmp = os.path.join(scratch, "raster.tif")
        store = data.rio.to_raster(tmp, tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                                   lock=SerializableLock(), nodata=nodata, compute=False)
        dask.compute(store, scheduler=scheduler)
        return to_cog(tmp, path, nodata=nodata, resampling=resampling)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _shade_block(z: np.ndarray, dx: Any, dy: float, rows: int, azimuth: float, elevation: float,
                 block_info=None) -> np.ndarray:
    """Hillshade of one block with its 1-pixel halo, as uint8 1..255 (0: nodata)."""
    if np.ndim(dx):
        # rows of this block including the halo (NaN padding beyond the edges)
        r0 = block_info[0]["array-location"][0][0] - 1 if block_info else -1
        dx = np.asarray(dx)[np.clip(np.arange(r0, r0 + z.shape[0]), 0, rows - 1)]
    shade = hillshade(z, (dx, dy), azimuth=azimuth, elevation=elevation)
    out = np.rint(np.nan_to_num(shade, nan=0.0) * 254.0 + 1.0).astype(np.uint8)  # 0 stays nodata
    out[~np.isfinite(z) | ~np.isfinite(shade)] = 0
    return out


def shade_cog(heights: xr.DataArray, path: str | os.PathLike, *, scheduler: Any = None) -> pathlib.Path:
    """Full-resolution hillshade COG (uint8, 1..255, 0 = nodata) of a lazily opened DEM.

    ``scheduler`` is the dask scheduler of the write (see :func:`pair_products`).
    """
    transform = heights.rio.transform()
    crs = heights.rio.crs
    rows = heights.sizes["y"]
    dx, dy = _spacing(tuple(transform)[:6], crs, rows)
    block = functools.partial(_shade_block, dx=dx, dy=dy, rows=rows,
                              azimuth=current_settings().quality.sun_azimuth,
                              elevation=current_settings().quality.sun_elevation)
    shaded = da.map_overlap(block, heights.data.astype(np.float32), depth=1, boundary=np.nan, dtype=np.uint8,
                            trim=True)
    # a fixed band description: rioxarray otherwise writes the dask array's random name into the header
    out = xr.DataArray(shaded, dims=("y", "x"), coords={"y": heights.y, "x": heights.x},
                       attrs={"long_name": "hillshade"})
    out = out.rio.write_crs(crs).rio.write_transform(transform)
    return _write_lazy_cog(out, pathlib.Path(path), nodata=0, scheduler=scheduler)


def _relief_block(z: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    return np.moveaxis(colour_relief(z, limits=limits), -1, 0)


def relief_cog(heights: xr.DataArray, path: str | os.PathLike, limits: tuple[float, float], *,
               scheduler: Any = None) -> pathlib.Path:
    """Full-resolution colour-relief COG (RGBA uint8) with the ramp stretched over ``limits``."""
    data = heights.data.astype(np.float32)
    rgba = da.map_blocks(functools.partial(_relief_block, limits=limits), data, dtype=np.uint8, new_axis=0,
                         chunks=((4,),) + data.chunks)
    out = xr.DataArray(rgba, dims=("band", "y", "x"), coords={"band": [1, 2, 3, 4], "y": heights.y, "x": heights.x},
                       attrs={"long_name": ["red", "green", "blue", "alpha"]})
    out = out.rio.write_crs(heights.rio.crs).rio.write_transform(heights.rio.transform())
    return _write_lazy_cog(out, pathlib.Path(path), nodata=None, resampling="nearest", scheduler=scheduler)


def _shade_png(shade: np.ndarray, heights: np.ndarray) -> np.ndarray:
    out = np.rint(np.nan_to_num(shade, nan=0.0) * 255.0).astype(np.float32)
    out[~np.isfinite(heights) | ~np.isfinite(shade)] = np.nan
    return out


def _relative(path: str | os.PathLike, base: pathlib.Path) -> str:
    """``path`` relative to ``base`` in POSIX form (how delivered files name each other)."""
    return pathlib.PurePath(os.path.relpath(os.path.abspath(path), os.path.abspath(base))).as_posix()


def _relative_provenance(record: Mapping[str, Any], base: pathlib.Path,
                         mola: pathlib.Path | None) -> dict[str, Any]:
    """A provenance record whose paths inside ``base`` are relative to it; MOLA named by its copy."""
    root = os.path.abspath(base)

    def inside(value: Any) -> Any:
        if isinstance(value, str) and os.path.isabs(value) and \
                os.path.commonpath([root, os.path.abspath(value)]) == root:
            return _relative(value, base)
        return value

    out = dict(record)
    out["steps"] = [{k: inside(v) if k == "log" else v for k, v in step.items()} for step in record.get("steps", [])]
    inputs = dict(record.get("inputs") or {})
    if mola is not None and inputs.get("mola"):
        inputs["mola"] = dict(inputs["mola"], path=_relative(mola, base))
    out["inputs"] = inputs
    return out


def pair_products(
    out_dir: str | os.PathLike,
    *,
    dem: str | os.PathLike,
    datetime: Any,
    ortho: str | os.PathLike | None = None,
    error: str | os.PathLike | None = None,
    dem_areoid: str | os.PathLike | None = None,
    dem_before: str | os.PathLike | None = None,
    mola: str | os.PathLike | None = None,
    csv_format: str = "1:lon 2:lat 3:radius_km",
    pc_align_runs: Sequence[Mapping[str, Any]] = (),
    pc_align_errors: str | os.PathLike | None = None,
    bundle_adjust: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    pair_id: str | None = None,
    left_id: str | None = None,
    right_id: str | None = None,
    end_datetime: Any = None,
    size: int | None = None,
    full_resolution: bool = True,
    properties: Mapping[str, Any] | None = None,
    scheduler: Any = None,
) -> dict[str, Any]:
    """Make every delivered product of one pair in ``out_dir`` (see the module docstring).

    Parameters
    ----------
    dem : path
        The final DEM (aligned when pc_align ran), heights above the sphere.
    ortho, error, dem_areoid : path, optional
        point2dem ``-DRG.tif`` and ``-IntersectionErr.tif``; dem_geoid ``-adj.tif``.
    dem_before : path, optional
        The DEM before alignment (for the before-alignment QA).
    mola : path, optional
        MOLA shots (``csv_format``) to measure against.
    pc_align_runs : sequence of mapping
        The records of :func:`ctxdask.tools.align.align_to_mola` (with ``log`` paths).
    bundle_adjust : mapping, optional
        The pair's bundle adjustment residuals (:func:`ctxdask.quality.bundle.bundle_adjust_summary`):
        recorded in ``qa_metrics.json`` and the provenance as ``bundle_adjust``.
    provenance : mapping, optional
        The record of :func:`ctxdask.quality.provenance.build_provenance`.
    full_resolution : bool
        Make the full-resolution hillshade and colour-relief COGs (else thumbnails only).
    scheduler : str or concurrent.futures.Executor, optional
        The dask scheduler of every computation here, passed to each
        ``compute`` (default: dask's). A batch step passes its own thread
        pool: inside a dask task the default is the cluster, and a
        process-wide ``dask.config.set`` would leak into other tasks on the
        same worker.

    Returned and written files name each other relative to ``out_dir`` (the
    pair folder once delivered): the QA's DEM, the MOLA shots (the
    ``-mola.csv`` copy), and any path in ``provenance`` that lies inside ``out_dir``.

    Returns
    -------
    dict
        ``{"id", "statistics" (DEMStatistics), "qa" (DEMQA), "files" {asset: path}, "item" (pystac.Item),
        "stac" (dict), "relief_limits" ((low, high) heights at the ends of the colour relief's ramp, or None)}``.
    """
    from ctxdask.quality.alignment import parse_pc_align_log, read_mola_csv
    from ctxdask.quality.dem_qa import measure_dem, write_residuals
    from ctxdask.quality.provenance import processing_properties, write_provenance
    from ctxdask.quality.stac import pair_item, write_item

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pair_id = pair_id or (f"{left_id}_{right_id}" if left_id and right_id else pathlib.Path(dem).stem)
    if not _SAFE.fullmatch(pair_id):
        raise QualityError(str(dem), f"pair id {pair_id!r} is not a safe file name")
    size = int(current_settings().quality.dem_thumbnail_size if size is None else size)
    start = _isotime(datetime)
    end = _isotime(end_datetime) if end_datetime is not None else None

    files: dict[str, pathlib.Path] = {}
    # COGs first: everything after reads the delivered files
    files["dem"] = to_cog(dem, out_dir / f"{pair_id}-DEM.tif")
    for name, source, suffix in (("dem_areoid", dem_areoid, "DEM-areoid"), ("ortho", ortho, "DRG"),
                                 ("error", error, "IntersectionErr")):
        if source is not None:
            files[name] = to_cog(source, out_dir / f"{pair_id}-{suffix}.tif")

    heights = open_dem(files["dem"])
    small = thumbnail(heights, size)
    computed, small_values = dask.compute(_lazy_statistics(heights), small.data, scheduler=scheduler)
    stats = _statistics(heights, computed)
    factor = int(small.attrs["factor"])
    spacing = _spacing(stats.transform, heights.rio.crs, small_values.shape[0], factor)
    files["thumbnail"] = write_png(_shade_png(hillshade(small_values, spacing), small_values),
                                   out_dir / f"{pair_id}_hillshade.png", stretched=True)
    finite = small_values[np.isfinite(small_values)]
    limits = None
    if finite.size:  # one stretch for the thumbnail and the COG, recorded for their colour bars
        q = current_settings().quality.stretch_percentiles
        limits = tuple(float(v) for v in np.percentile(finite, [float(q[0]), float(q[1])]))
    files["relief_thumbnail"] = write_png(colour_relief(small_values, limits=limits),
                                          out_dir / f"{pair_id}_relief.png")
    if "ortho" in files:
        files["ortho_thumbnail"] = write_png(thumbnail(open_dem(files["ortho"]), size).compute(scheduler=scheduler),
                                             out_dir / f"{pair_id}_ortho.png")
    if full_resolution:
        files["hillshade"] = shade_cog(heights, out_dir / f"{pair_id}-hillshade.tif", scheduler=scheduler)
        if limits is not None:
            files["colour_relief"] = relief_cog(heights, out_dir / f"{pair_id}-colour-relief.tif", limits,
                                                scheduler=scheduler)

    mola_copy = out_dir / f"{pair_id}-mola.csv"
    points = None
    if mola is not None:  # named by the copy delivered beside the QA, not where it was read
        points = dataclasses.replace(read_mola_csv(mola, csv_format), source=_relative(mola_copy, out_dir))
    reports = []
    for run in pc_align_runs:
        with open(run["log"], encoding="utf-8", errors="replace") as f:
            reports.append(parse_pc_align_log(f.read()))
    qa, arrays = measure_dem(files["dem"], points, dem_before=dem_before, error=files.get("error"),
                             pc_align=reports, max_displacements=[r["max_displacement"] for r in pc_align_runs],
                             scheduler=scheduler)
    qa.metrics["dem"] = _relative(files["dem"], out_dir)
    if bundle_adjust is not None:
        qa.metrics["bundle_adjust"] = dict(bundle_adjust)
    files["qa_metrics"] = qa.write(out_dir / "qa_metrics.json")
    if arrays:
        files["residuals"] = write_residuals(arrays, out_dir / f"{pair_id}-residuals.csv")
    if mola is not None:
        files["mola"] = pathlib.Path(shutil.copyfile(mola, mola_copy))
    if pc_align_errors is not None:
        files["pc_align_errors"] = pathlib.Path(
            shutil.copyfile(pc_align_errors, out_dir / f"{pair_id}-pc_align-end_errors.csv"))
    props: dict[str, Any] = dict(properties or {})
    if provenance is not None:
        provenance = _relative_provenance(provenance, out_dir, mola_copy if mola is not None else None)
        if bundle_adjust is not None:
            provenance = {**provenance, "bundle_adjust": dict(bundle_adjust)}
        files["provenance"] = write_provenance(provenance, out_dir / "provenance.json")
        props.update(processing_properties(provenance))
    if left_id:
        props["ctxdask:left_product_id"] = left_id
    if right_id:
        props["ctxdask:right_product_id"] = right_id
    props["ctxdask:grade"] = qa.grade
    after = qa.metrics.get("after_alignment") or {}
    if after.get("count"):
        props["ctxdask:mola_median_difference"] = after["median"]
        props["ctxdask:mola_nmad"] = after["nmad"]
    if end is not None:
        props["start_datetime"], props["end_datetime"] = min(start, end), max(start, end)
    item = pair_item(pair_id, datetime=start, statistics=stats, files=files, base=out_dir, properties=props)
    files["stac"] = write_item(item, out_dir / f"{pair_id}.stac.json")
    item.set_self_href(str(files["stac"].resolve()))
    return {"id": pair_id, "statistics": stats, "qa": qa, "files": files, "item": item, "relief_limits": limits,
            "stac": item.to_dict(include_self_link=False, transform_hrefs=False)}
