"""QA of a pair's DEM against MOLA: the ``qa_metrics.json`` of a delivered pair.

Everything that touches rasters runs as one dask graph with bounded memory:
the DEM is read block by block once, and from the same blocks come (a) its
heights at the MOLA shots (bilinear from the four corner pixels, gathered with
``vindex`` point indexing, so shots near block edges need no halo), (b) the
valid count and (c) a block-reduced nodata map for the holes. The intersection-error
percentiles come from a fixed log-spaced histogram (one pass, relative
precision 0.5 %). Only the small results are gathered.

The metrics follow the USGS CTX DTM archive's ``qa_metrics`` (planetary-ard,
``content/data/mars/ctxdtms.md``: maximum, minimum, mean, median and standard
deviation of the CTX - MOLA differences after control), plus count and NMAD,
the same before alignment, what pc_align applied, the intersection-error
percentiles, valid fraction, holes (nodata regions away from the DEM's edge;
rectangular ones flagged as failed stereo tiles, the "large swaths (often in
rectangular tile shapes)" that document describes) and a tilt check: a plane
fitted to the after-alignment differences, whose slope in m/km reveals the
long-baseline tilt the same document names as the likeliest large-scale error.
Grades come from ``quality.dem-grade`` thresholds (:func:`ctxdask.quality.grade`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ctxdask.io.atomic import atomic_path
from ctxdask.quality.alignment import MolaPoints, PcAlignReport
from ctxdask.quality.dem import open_dem
from ctxdask.quality.grade import grade
from ctxdask.settings import current as current_settings

__all__ = ["DEMQA", "difference_statistics", "holes", "lazy_sample", "measure_dem", "points_in_crs",
           "sample_dem", "tilt", "write_residuals"]

_ERROR_BINS = np.concatenate([[0.0], np.geomspace(1e-3, 1e5, 4001)])
ERROR_PERCENTILES = (50.0, 68.0, 90.0, 95.0, 99.0)


def points_in_crs(points: MolaPoints, crs: Any) -> tuple[np.ndarray, np.ndarray]:
    """MOLA longitudes/latitudes as x, y in the DEM's CRS (same body: its own geographic CRS)."""
    from pyproj import CRS, Transformer

    crs = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    geographic = crs.geodetic_crs
    to_xy = Transformer.from_crs(geographic, crs, always_xy=True)
    x, y = to_xy.transform(points.lon, points.lat)
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def lazy_sample(dem: xr.DataArray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, da.Array]:
    """Lazy bilinear heights of ``dem`` at CRS coordinates.

    Returns ``(indices, values)``: the indices of the shots inside the DEM and a
    dask array of their heights (NaN where a corner pixel is nodata). The four
    corner pixels of every shot are gathered with ``dask.array`` point
    indexing (``vindex``): one small task per DEM block that holds shots, fed
    by the same block reads as everything else computed with it.
    """
    transform = dem.rio.transform()
    # fractional pixel coordinates of the shots, pixel centres at integer + 0.5
    cols = (np.asarray(x, np.float64) - transform.c) / transform.a - 0.5
    rows = (np.asarray(y, np.float64) - transform.f) / transform.e - 0.5
    nrows, ncols = dem.shape
    inside = np.flatnonzero((rows >= 0) & (cols >= 0) & (rows <= nrows - 1) & (cols <= ncols - 1))
    r, c = rows[inside], cols[inside]
    r0 = np.minimum(np.floor(r).astype(np.int64), nrows - 2 if nrows > 1 else 0)
    c0 = np.minimum(np.floor(c).astype(np.int64), ncols - 2 if ncols > 1 else 0)
    fr, fc = r - r0, c - c0
    r1, c1 = np.minimum(r0 + 1, nrows - 1), np.minimum(c0 + 1, ncols - 1)
    data = dem.data if isinstance(dem.data, da.Array) else da.from_array(np.asarray(dem.data))
    n = r.size
    if not n:
        return inside, da.zeros(0, dtype=np.float64)
    corners = data.vindex[np.concatenate([r0, r0, r1, r1]), np.concatenate([c0, c1, c0, c1])]
    z = corners.astype(np.float64)
    values = (z[:n] * ((1 - fr) * (1 - fc)) + z[n:2 * n] * ((1 - fr) * fc)
              + z[2 * n:3 * n] * (fr * (1 - fc)) + z[3 * n:] * (fr * fc))
    return inside, values


def sample_dem(dem: xr.DataArray | str | os.PathLike, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear heights of a DEM at CRS coordinates (NaN outside it or next to nodata)."""
    dem = dem if isinstance(dem, xr.DataArray) else open_dem(dem)
    inside, values = lazy_sample(dem, x, y)
    out = np.full(len(np.asarray(x)), np.nan)
    out[inside] = values.compute()
    return out


def difference_statistics(diff: np.ndarray) -> dict[str, Any]:
    """count, min, max, mean, median, std and NMAD (1.4826 x median |d - median d|) of finite values."""
    d = np.asarray(diff, np.float64)
    d = d[np.isfinite(d)]
    if not d.size:
        return {k: None for k in ("min", "max", "mean", "median", "std", "nmad")} | {"count": 0}
    median = float(np.median(d))
    return {"count": int(d.size), "min": float(d.min()), "max": float(d.max()), "mean": float(d.mean()),
            "median": median, "std": float(d.std()), "nmad": float(1.4826 * np.median(np.abs(d - median)))}


def tilt(x: np.ndarray, y: np.ndarray, diff: np.ndarray) -> dict[str, Any]:
    """Plane ``d = a + b x + c y`` fitted to the differences (x, y in metres): slope in m/km, azimuth.

    The azimuth (degrees clockwise from north) is the direction in which the
    DEM rises relative to MOLA.
    """
    ok = np.isfinite(diff) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return {"slope_m_per_km": None, "azimuth_deg": None, "points": int(ok.sum())}
    xs, ys = (x[ok] - x[ok].mean()) / 1000.0, (y[ok] - y[ok].mean()) / 1000.0
    design = np.column_stack([np.ones(xs.size), xs, ys])
    (a, b, c), *_ = np.linalg.lstsq(design, diff[ok], rcond=None)
    if np.linalg.matrix_rank(design) < 3:  # shots on one line: no plane
        return {"slope_m_per_km": None, "azimuth_deg": None, "points": int(ok.sum())}
    return {"slope_m_per_km": float(math.hypot(b, c)), "azimuth_deg": float(math.degrees(math.atan2(b, c)) % 360),
            "east_m_per_km": float(b), "north_m_per_km": float(c), "points": int(ok.sum())}


def holes(nodata_blocks: np.ndarray, factor: int, *, min_tile_pixels: int = 64,
          rectangularity: float = 0.9) -> dict[str, Any]:
    """Connected nodata regions of a block-reduced nodata map (``True``: the whole block is nodata).

    Regions touching the raster edge are the footprint's ragged edge, not
    holes. A hole is tile-shaped when it fills at least ``rectangularity`` of
    its bounding box and both sides are at least ``min_tile_pixels`` (full
    resolution pixels) long: a failed correlation tile.
    """
    from scipy import ndimage

    labels, count = ndimage.label(nodata_blocks)
    found = []
    if count:
        rows, cols = nodata_blocks.shape
        for index, box in enumerate(ndimage.find_objects(labels), 1):
            r, c = box
            touches = r.start == 0 or c.start == 0 or r.stop == rows or c.stop == cols
            if touches:
                continue
            area = int((labels[box] == index).sum())
            height, width = (r.stop - r.start), (c.stop - c.start)
            fill = area / (height * width)
            tile = fill >= rectangularity and min(height, width) * factor >= min_tile_pixels
            found.append({"row": r.start * factor, "col": c.start * factor, "rows": height * factor,
                          "cols": width * factor, "pixels": area * factor * factor, "fill": round(fill, 4),
                          "tile_shaped": bool(tile)})
    found.sort(key=lambda h: -h["pixels"])
    return {"count": len(found), "tile_shaped": sum(h["tile_shaped"] for h in found),
            "pixels": sum(h["pixels"] for h in found), "resolution_pixels": factor, "largest": found[:20]}


def _compute(lazy: Mapping[str, Any], scheduler: Any = None) -> dict[str, Any]:
    """One ``dask.compute`` of a mapping of dask arrays (the DEM's blocks are read once for all)."""
    names = list(lazy)
    return dict(zip(names, dask.compute(*(lazy[n] for n in names), scheduler=scheduler)))


def _hole_factor(shape: tuple[int, int], limit: int) -> int:
    return max(1, math.ceil(math.sqrt(shape[0] * shape[1] / limit)))


@dataclasses.dataclass
class DEMQA:
    """The QA record of one pair's DEM (``qa_metrics.json``)."""

    metrics: dict[str, Any]
    grade: str
    grade_reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The grade, its reasons and every metric, as in ``qa_metrics.json``."""
        return {"grade": self.grade, "grade_reasons": list(self.grade_reasons), **self.metrics}

    def write(self, path: str | os.PathLike) -> pathlib.Path:
        """Write ``qa_metrics.json`` atomically (NaN refused)."""
        path = pathlib.Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return path


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _grade_values(m: Mapping[str, Any]) -> dict[str, Any]:
    after = m.get("after_alignment") or m.get("before_alignment") or {}
    return {
        "abs_median_difference": None if after.get("median") is None else abs(after["median"]),
        "nmad_difference": after.get("nmad"),
        "std_difference": after.get("std"),
        "tilt": m["tilt"].get("slope_m_per_km"),
        "valid_fraction": m["valid_fraction"],
        "tile_holes": m["holes"]["tile_shaped"],
        "mola_points": after.get("count", 0),
        "intersection_error_p95": (m.get("intersection_error") or {}).get("p95"),
    }


def measure_dem(
    dem: str | os.PathLike,
    points: MolaPoints | None = None,
    *,
    dem_before: str | os.PathLike | None = None,
    error: str | os.PathLike | None = None,
    pc_align: PcAlignReport | Sequence[PcAlignReport] | None = None,
    max_displacements: Sequence[float] = (),
    thresholds: Mapping[str, Any] | None = None,
    chunks: Any = None,
    scheduler: Any = None,
) -> tuple[DEMQA, dict[str, np.ndarray]]:
    """QA metrics of a DEM (optionally against MOLA shots and its pre-alignment version).

    Parameters
    ----------
    dem : path
        The delivered DEM (heights above the datum sphere, as point2dem writes).
    points : MolaPoints, optional
        MOLA shots (heights above the same sphere).
    dem_before : path, optional
        The DEM before alignment (point2dem of the unaligned cloud).
    error : path, optional
        point2dem's ``-IntersectionErr.tif``.
    pc_align : PcAlignReport or list of them, optional
        What each pc_align run logged (the last one is the applied transform).
    max_displacements : sequence of float
        The ``--max-displacement`` of each run.
    thresholds : mapping, optional
        Grade thresholds; default ``quality.dem-grade``.
    scheduler : str or concurrent.futures.Executor, optional
        The dask scheduler of the one computation (default: dask's).

    Returns
    -------
    (DEMQA, dict)
        The record, and the per-shot arrays (``lon``, ``lat``, ``mola``,
        ``dem_before``, ``dem_after``, ``x``, ``y``) for :func:`write_residuals`.
    """
    heights = open_dem(dem, chunks=chunks)
    shape = tuple(heights.shape)
    factor = _hole_factor(shape, current_settings().quality.dem_holes.max_cells)
    nodata = heights.isnull().data
    if factor > 1:
        # whole cells per chunk, so that no cell straddles two chunks
        nodata = nodata.rechunk(tuple(max(factor, c // factor * factor) for c in (ch[0] for ch in nodata.chunks)))
        reduced = da.coarsen(np.all, nodata, {0: factor, 1: factor}, trim_excess=True)
    else:
        reduced = nodata
    lazy: dict[str, Any] = {"valid": (~nodata).sum(), "holes": reduced}
    x = y = None
    if points is not None and len(points):
        x, y = points_in_crs(points, heights.rio.crs)
        after_idx, lazy["after"] = lazy_sample(heights, x, y)
        if dem_before is not None:
            before = open_dem(dem_before, chunks=chunks)
            bx, by = points_in_crs(points, before.rio.crs)
            before_idx, lazy["before"] = lazy_sample(before, bx, by)
    if error is not None:
        err = open_dem(error, chunks=chunks).data
        valid_err = err[~da.isnan(err)]
        lazy["error_hist"] = da.histogram(valid_err, bins=_ERROR_BINS)[0]
        lazy["error_mean"] = da.nanmean(err.astype(np.float64))
        lazy["error_max"] = da.nanmax(err)
    done = _compute(lazy, scheduler)

    metrics: dict[str, Any] = {
        "dem": os.fspath(dem), "shape": list(shape),
        "valid_fraction": float(done["valid"]) / (shape[0] * shape[1]) if shape[0] * shape[1] else 0.0,
    }
    tile_pixels = current_settings().quality.dem_holes.min_tile_pixels
    metrics["holes"] = holes(np.asarray(done["holes"]), factor, min_tile_pixels=tile_pixels,
                             rectangularity=current_settings().quality.dem_holes.rectangularity)
    arrays: dict[str, np.ndarray] = {}
    if x is not None:
        after_h = np.full(len(points), np.nan)
        after_h[after_idx] = done["after"]
        arrays = {"lon": points.lon, "lat": points.lat, "mola": points.height, "dem_after": after_h, "x": x, "y": y}
        metrics["mola_points"] = {"source": points.source, "count": len(points)}
        if "before" in done:
            before_h = np.full(len(points), np.nan)
            before_h[before_idx] = done["before"]
            arrays["dem_before"] = before_h
            metrics["before_alignment"] = difference_statistics(before_h - points.height)
        metrics["after_alignment"] = difference_statistics(after_h - points.height)
        metrics["tilt"] = tilt(x, y, after_h - points.height)
    else:
        metrics["tilt"] = {"slope_m_per_km": None, "azimuth_deg": None, "points": 0}
    if error is not None:
        hist = np.asarray(done["error_hist"], np.float64)
        total = hist.sum()
        cdf = np.cumsum(hist) / total if total else hist
        out = {}
        for q in ERROR_PERCENTILES:
            k = int(np.searchsorted(cdf, q / 100.0))
            k = min(k, len(hist) - 1)
            lo, hi = _ERROR_BINS[k], _ERROR_BINS[k + 1]
            out[f"p{q:g}"] = float(math.sqrt(lo * hi)) if lo > 0 else float(hi / 2)
        out["mean"] = float(done["error_mean"]) if total else None
        out["max"] = float(done["error_max"]) if total else None
        out["count"] = int(total)
        metrics["intersection_error"] = out
    reports = [pc_align] if isinstance(pc_align, PcAlignReport) else list(pc_align or [])
    if reports:
        last = reports[-1]
        metrics["pc_align"] = {
            "runs": len(reports),
            "max_displacement": list(max_displacements),
            "displacement_warnings": [r.displacement_warning for r in reports],
            "translation_ned_m": list(last.translation_ned) if last.translation_ned else None,
            "translation_magnitude_m": last.translation_magnitude,
            "euler_angles_deg": list(last.euler_angles) if last.euler_angles else None,
            "rotation_angle_deg": last.rotation_angle,
            "observed_displacement_m": last.observed_displacement,
            "log_input_stats": last.input_stats, "log_output_stats": last.output_stats,
        }
    metrics = _finite(metrics)
    limits = current_settings().quality.dem_grade if thresholds is None else thresholds
    values = _grade_values(metrics)
    applicable = {k: v for k, v in (limits or {}).items() if k.replace("-", "_") in values}
    result = grade(values, applicable)
    return DEMQA(metrics, result.status, list(result.reasons)), arrays


def write_residuals(arrays: Mapping[str, np.ndarray], path: str | os.PathLike) -> pathlib.Path:
    """Per-shot CSV: lon, lat, MOLA height, DEM heights before/after alignment and CTX - MOLA differences."""
    path = pathlib.Path(path)
    n = len(arrays["lon"])
    before = arrays.get("dem_before", np.full(n, np.nan))
    after = arrays["dem_after"]
    table = np.column_stack([arrays["lon"], arrays["lat"], arrays["mola"], before, after,
                             before - arrays["mola"], after - arrays["mola"]])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, table, delimiter=",", fmt="%.10g", comments="",
                   header="lon,lat,mola_height_m,dem_height_before_m,dem_height_after_m,"
                          "ctx_minus_mola_before_m,ctx_minus_mola_after_m")
    return path
