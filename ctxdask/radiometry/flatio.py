"""Flat-field products on disk: ISIS cube, GeoTIFF, ``.npy`` and a JSON sidecar.

A flat built by :func:`ctxdask.radiometry.flatbuild.build_flat` is written as

``NAME.cub``
    ISIS3 cube, 5000 samples x 1 line x 3 bands, ``Real``: band 1 the flat
    (what ``ctxcal FLATFILE=`` reads: the first 5000 samples of line 1, band 1,
    ``isis/src/mro/apps/ctxcal/ctxcal.cpp``), band 2 its standard error
    (``Null`` where interpolated), band 3 the number of images behind each
    value; ``BandBin/Name`` names them and a ``FlatField`` group records how
    it was made.
``NAME.tif``
    The same three bands as a float32 GeoTIFF (no georeference; band
    descriptions name them).
``NAME.npy``
    The flat alone, float64 (5000,).
``NAME.json``
    Provenance: method, settings, notes, every image with its measurements
    and rejection reason, and the uncertainty and count arrays.

:func:`ctxdask.radiometry.flat.load_flat` reads any of the three pixel files.
"""

from __future__ import annotations

import json
import math
import pathlib
import warnings
from collections.abc import Iterable

import numpy as np

from ctxdask import __version__
from ctxdask.io.atomic import atomic_path
from ctxdask.radiometry.flatbuild import FlatResult

__all__ = ["BAND_NAMES", "FORMATS", "flat_record", "write_flat"]

BAND_NAMES = ("Flat", "Uncertainty", "ImageCount")
FORMATS = ("cub", "tif", "npy")


def flat_record(result: FlatResult) -> dict:
    """The JSON-able record of a flat (what ``NAME.json`` holds)."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    record = {
        "key": result.key,
        "software": f"ctxdask {__version__}",
        "method": result.method,
        "ok": result.ok,
        "problem": result.problem,
        "notes": result.notes,
        "settings": result.settings,
        "images_accepted": len(result.accepted),
        "images_rejected": len(result.rejected),
        "images": result.images,
    }
    if result.ok:
        record["uncertainty"] = [round(float(v), 7) if np.isfinite(v) else None for v in result.uncertainty]
        record["count"] = [int(v) for v in result.count]
    return clean(record)


def write_flat(result: FlatResult, base: str | pathlib.Path, formats: Iterable[str] = FORMATS) -> list[pathlib.Path]:
    """Write a built flat as ``base.cub`` / ``base.tif`` / ``base.npy`` and ``base.json``.

    Parameters
    ----------
    result : FlatResult
        A successful build (``result.ok``); a failed one writes only the JSON.
    base : path
        Output path without suffix (a suffix given is dropped).
    formats : iterable of {"cub", "tif", "npy"}

    Returns
    -------
    list of pathlib.Path
        The files written, JSON last.
    """
    base = pathlib.Path(base)
    if base.suffix.lower() in (".cub", ".tif", ".tiff", ".npy", ".json"):
        base = base.with_suffix("")

    def named(suffix: str) -> pathlib.Path:  # base "flat.v2" -> "flat.v2.cub", not "flat.cub"
        return base.with_name(base.name + suffix)

    formats = list(formats)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown flat formats {sorted(unknown)}; choose from {FORMATS}")
    written: list[pathlib.Path] = []
    if result.ok:
        bands = np.stack([result.flat, result.uncertainty, result.count]).astype(np.float64)
        if "cub" in formats:
            from ctxdask.io.isis_bands import write_band_cube

            accepted = result.accepted
            group = {
                "Method": result.method,
                "Key": result.key,
                "ImagesUsed": len(accepted),
                "ImagesRejected": len(result.rejected),
                "MinImages": int(result.settings.get("min_images", 0)),
                "Software": f"ctxdask {__version__}",
            }
            written.append(write_band_cube(named(".cub"), bands[:, None, :], band_names=BAND_NAMES,
                                           groups={"FlatField": group}))
        if "tif" in formats:
            written.append(_write_tif(named(".tif"), bands))
        if "npy" in formats:
            path = named(".npy")
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, result.flat.astype(np.float64), allow_pickle=False)
            written.append(path)
    path = named(".json")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(flat_record(result), f, indent=1, allow_nan=False)
    written.append(path)
    return written


def _write_tif(path: pathlib.Path, bands: np.ndarray) -> pathlib.Path:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a detector flat has no map
        profile = {"driver": "GTiff", "width": bands.shape[1], "height": 1, "count": bands.shape[0],
                   "dtype": "float32", "nodata": float("nan")}
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(bands[:, None, :].astype(np.float32))
            for i, name in enumerate(BAND_NAMES, start=1):
                dst.set_band_description(i, name)
    return path
