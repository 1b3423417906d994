"""Pictures for the live pages: thumbnail stretches (PNG), histogram bars and map shapes (data for SVG).

The SVGs themselves are written by templates (``map.html.j2``,
``_histogram.html.j2``), so every id and label in them is escaped like any
other page text; this module only computes numbers.
"""

from __future__ import annotations

import io
import json
import math
import pathlib
from typing import Any

import numpy as np

from ctxdask.tracking import BatchView
from ctxdask.tracking.geometry import parse_footprint

__all__ = ["STRETCHES", "histogram_bars", "map_shapes", "stretch_png"]

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


def _stac_outline(out: pathlib.Path, rel: str | None) -> list[list[tuple[float, float]]]:
    """Exterior rings (lon, lat) of a STAC item's geometry, for the item files inside ``out``."""
    if not rel:
        return []
    path = (out / rel).resolve()
    if not path.is_relative_to(out.resolve()) or path.suffix.lower() != ".json":
        return []
    try:
        geometry = json.loads(path.read_text()).get("geometry") or {}
    except (OSError, ValueError, AttributeError):
        return []
    polygons = ([geometry.get("coordinates")] if geometry.get("type") == "Polygon"
                else geometry.get("coordinates") if geometry.get("type") == "MultiPolygon" else [])
    rings = []
    for poly in polygons or []:
        try:
            rings.append([(float(x), float(y)) for x, y, *_ in poly[0]])
        except (TypeError, ValueError, IndexError):
            continue
    return rings


def map_shapes(view: BatchView, out: pathlib.Path, colour: str = "status") -> dict[str, Any]:
    """Footprints of images and DEM outlines, projected (equirectangular) for an SVG.

    Returns ``{"images": [...], "dems": [...], "view": "x y w h", "grid": [...]}``;
    each shape has ``points`` (SVG text), ``id``, ``href`` and ``cls`` (a colour
    class from the status, automatic grade or manual grade).
    """
    shapes, dems = [], []
    for row in view.footprints():
        corners = parse_footprint(row["footprint"])
        if not corners:
            continue
        pid = row["product_id"]
        value = row[colour] if colour in ("status", "grade", "manual") else row["status"]
        prefix = "st" if colour == "status" else "gr"
        shapes.append({"id": pid, "href": f"/image/{pid}", "corners": corners, "cls": f"{prefix}-{value or 'none'}",
                       "label": f"{pid}: {colour} {value or 'none'}"})
    for pair_id, stac in view.stac_items():
        for ring in _stac_outline(out, stac):
            dems.append({"id": pair_id, "href": f"/pair/{pair_id}", "corners": ring, "cls": "dem",
                         "label": f"DEM of {pair_id}"})
    for s in (*shapes, *dems):
        # one longitude convention (-180..180 east) for footprints (pair finder) and DEMs (STAC, 0..360)
        s["corners"] = [((x + 180.0) % 360.0 - 180.0, y) for x, y in s["corners"]]
    everything = [c for s in (*shapes, *dems) for c in s["corners"]]
    if not everything:
        return {"images": [], "dems": [], "view": "0 0 360 180", "grid": [], "empty": True}
    xs, ys = [x for x, _ in everything], [y for _, y in everything]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = max(x1 - x0, y1 - y0, 0.05) * 0.05
    x0, x1, y0, y1 = x0 - pad, x1 + pad, y0 - pad, y1 + pad
    # equirectangular with the x scale of the mid latitude, so shapes keep their aspect there
    kx = max(math.cos(math.radians((y0 + y1) / 2)), 0.05)

    def project(corners):
        return " ".join(f"{(x - x0) * kx:.4f},{(y1 - y):.4f}" for x, y in corners)

    for s in (*shapes, *dems):
        s["points"] = project(s.pop("corners"))
    span = max(x1 - x0, y1 - y0)
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 45, 90) if span / s <= 12)
    grid = []
    for k in range(math.ceil(x0 / step), math.floor(x1 / step) + 1):
        x = (k * step - x0) * kx
        grid.append({"x1": x, "y1": 0, "x2": x, "y2": y1 - y0, "label": f"{k * step:g}°E", "lx": x, "ly": y1 - y0})
    for k in range(math.ceil(y0 / step), math.floor(y1 / step) + 1):
        y = y1 - k * step
        grid.append({"x1": 0, "y1": y, "x2": (x1 - x0) * kx, "y2": y, "label": f"{k * step:g}°N", "lx": 0, "ly": y})
    return {"images": shapes, "dems": dems, "view": f"0 0 {(x1 - x0) * kx:.4f} {y1 - y0:.4f}", "grid": grid,
            "stroke": span / 600, "font": span / 45, "empty": False}
