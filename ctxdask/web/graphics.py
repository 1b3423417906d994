"""Pictures for the live pages: thumbnail stretches (PNG), histogram bars, the map's layers and hillshades.

The SVGs themselves are written by templates (``map.html.j2`` with the
report's ``_map.html.j2``, ``_histogram.html.j2``), so every id and label in
them is escaped like any other page text; this module only computes numbers.
"""

from __future__ import annotations

import io
import math
import pathlib
import urllib.parse
from typing import Any

import numpy as np

from ctxdask.report.demmap import cache_key, dem_lonlat_grid, map_cache, map_hillshade
from ctxdask.report.mapdata import dem_path, map_layers
from ctxdask.tracking import BatchView

__all__ = ["STRETCHES", "hillshade_png", "histogram_bars", "map_shapes", "stretch_png"]

#: name -> what it does, shown under each version of the thumbnail
STRETCHES = {
    "stored": "as stored",
    "linear": "linear 2–98 %",
    "equalized": "histogram equalised",
    "gamma": "gamma 0.5 (shadows)",
}


def stretch_png(path: pathlib.Path, stretch: str) -> bytes:
    """The thumbnail at ``path`` with ``stretch`` applied, as PNG bytes."""
    from PIL import Image

    with Image.open(path) as im:
        mode = im.mode
        data = np.asarray(im.convert("LA" if mode in ("LA", "PA") or "transparency" in im.info else "L"))
    alpha = data[..., 1] if data.ndim == 3 else None
    grey = (data[..., 0] if data.ndim == 3 else data).astype(np.float64)
    valid = alpha > 0 if alpha is not None else np.ones(grey.shape, bool)
    values = grey[valid]
    if stretch == "linear" and values.size:
        lo, hi = np.percentile(values, [2, 98])
        grey = np.clip((grey - lo) / max(hi - lo, 1e-9), 0, 1) * 255
    elif stretch == "equalized" and values.size:
        hist, edges = np.histogram(values, bins=256, range=(0, 256))
        cdf = np.cumsum(hist).astype(np.float64)
        cdf = (cdf - cdf[0]) / max(cdf[-1] - cdf[0], 1.0) * 255
        grey = np.interp(grey, edges[:-1], cdf)
    elif stretch == "gamma":
        grey = 255 * (grey / 255.0) ** 0.5
    out = np.clip(grey, 0, 255).astype(np.uint8)
    picture = Image.fromarray(np.dstack([out, alpha]) if alpha is not None else out,
                              "LA" if alpha is not None else "L")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def histogram_bars(counts: list[int] | None, *, width: float = 512, height: float = 120) -> list[dict]:
    """Bars (x, y, w, h) of a DN histogram on a log scale (a few saturated pixels stay visible)."""
    if not counts:
        return []
    logs = [math.log10(c + 1) for c in counts]
    top = max(logs) or 1.0
    w = width / len(counts)
    return [{"x": round(i * w, 2), "w": round(max(w, 0.5), 2), "h": round(height * v / top, 2),
             "y": round(height - height * v / top, 2), "dn": i, "n": counts[i]}
            for i, v in enumerate(logs) if counts[i]]


#: cache key of a DEM version (:func:`ctxdask.report.demmap.cache_key`) -> its picture's bounds, for this process
_BOUNDS: dict[str, tuple[float, float, float, float] | None] = {}


def _shade_bounds(dem: pathlib.Path) -> tuple[float, float, float, float] | None:
    """The lon/lat bounds of a DEM's map hillshade, from its header (the picture is drawn on request)."""
    import rasterio

    try:
        key = cache_key(dem)
        if key not in _BOUNDS:  # a map of many DEMs opens each header once, not on every view
            with rasterio.open(dem) as src:
                _BOUNDS[key] = (dem_lonlat_grid(src)["bounds"] if src.crs is not None and not src.crs.is_geographic
                                else None)
        return _BOUNDS[key]
    except (OSError, ValueError, rasterio.errors.RasterioError):
        return None


def map_shapes(view: BatchView, out: pathlib.Path, colour: str = "status") -> dict[str, Any]:
    """Every layer of the map page (:func:`ctxdask.report.mapdata.map_layers`) with the live pages' links.

    Hillshades are ``/pair/<id>/map-hillshade.png``, drawn and cached on first request
    (:func:`hillshade_png`); the page only reads each DEM's header to place them.
    """

    def links(kind: str, ident: str) -> str:
        return f"/{kind}/{urllib.parse.quote(ident, safe='')}"

    def shades(pair_id: str, dem: pathlib.Path):
        bounds = _shade_bounds(dem)
        return (links("pair", pair_id) + "/map-hillshade.png", bounds) if bounds else None

    return map_layers(view, out, colour, links=links, shades=shades)


def hillshade_png(view: BatchView, out: pathlib.Path, pair_id: str) -> pathlib.Path | None:
    """The map hillshade of a pair's delivered DEM (made once, cached), or None when it has none."""
    found = view.stac_of(pair_id)
    dem = dem_path(view, out, pair_id, found[0] if found else None)
    if dem is None:
        return None
    from rasterio.errors import RasterioError

    try:
        return map_hillshade(dem, map_cache(out))["png"]
    except (OSError, ValueError, RasterioError):
        return None  # an unreadable DEM: the map shows its outline without a picture
