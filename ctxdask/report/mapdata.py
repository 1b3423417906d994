"""What the batch map draws, as numbers for an SVG: footprints, DEM hillshades, tile grids.

Shared by ``ctxdask serve`` (``/map``) and the static report; the SVG itself is
written by ``_map.html.j2`` (every id and label escaped like any page text)
and made to pan and zoom by ``_map.js.j2``. Layers, bottom to top:

- image footprints (the pair finder's, when imported), filled by status or grade;
- each delivered DEM's hillshade, warped to longitude/latitude
  (:mod:`ctxdask.report.demmap`) and placed by its bounds;
- each pair's outline: its DEM's footprint (STAC item), else the overlap of
  its images' footprints; stroked by the pair's status or grade; a link to the pair;
- the stereo tiles of pairs that ran by tile, by outcome
  (:func:`ctxdask.report.tilemap.tile_outcome`), from their footprints in the DEM's projection.

The projection is equirectangular with the x scale of the middle latitude
(``x = (lon - lon0) cos(lat_mid)``, ``y = lat1 - lat``), longitudes east in
-180..180: shapes keep their aspect near the middle of the map, which is all a
batch of CTX pairs spans. The grid and its labels are drawn by the script for
the view on screen, so they never crowd.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable
from typing import Any

from ctxdask.report.demmap import map_cache, map_hillshade, relief_bar
from ctxdask.report.geo import wrap_lon
from ctxdask.report.tilemap import FALLBACK_COLOURS, OUTCOMES, tile_outcome
from ctxdask.tracking import BatchView
from ctxdask.tracking.geometry import parse_footprint

__all__ = ["COLOURINGS", "Links", "dem_path", "map_layers", "pair_relief_bar", "tile_legend"]

#: what the map may colour by
COLOURINGS = ("status", "grade", "manual")

#: (kind, id) -> the link of a shape: kind is "image" or "pair"
Links = Callable[[str, str], str]
#: (pair id, DEM path) -> (picture href, (west, south, east, north)) or None
Shades = Callable[[str, pathlib.Path], "tuple[str, tuple[float, float, float, float]] | None"]

_Ring = list[tuple[float, float]]


def _stac_outline(out: pathlib.Path, rel: str | None) -> list[_Ring]:
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


def dem_path(view: BatchView, out: pathlib.Path, pair_id: str, stac: str | None = None) -> pathlib.Path | None:
    """The pair's delivered DEM inside ``out``: its STAC item's ``dem`` asset, else the DEM the products list."""
    out = pathlib.Path(out).resolve()
    candidates = []
    item = (out / stac).resolve() if stac else None
    if item is not None and item.is_relative_to(out) and item.suffix.lower() == ".json":
        try:
            href = json.loads(item.read_text())["assets"]["dem"]["href"]
            candidates.append(item.parent / href)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    listed = view.dem_of(pair_id)
    if listed:
        candidates.append(out / listed)
    for candidate in candidates:
        path = candidate.resolve()
        if path.is_relative_to(out) and path.is_file():
            return path
    return None


def pair_relief_bar(view: BatchView, out: pathlib.Path, pair_id: str, statistics: dict[str, Any],
                    stac: str | None = None) -> dict[str, Any] | None:
    """The colour bar of a pair's colour relief (:func:`ctxdask.report.demmap.relief_bar`).

    A DEM delivered before its stretch was recorded gets the same percentiles of
    its decimated heights, read once with the map's hillshade and cached with it.
    """
    fallback = None
    if not statistics.get("relief_limits"):
        from rasterio.errors import RasterioError

        dem = dem_path(view, out, pair_id, stac)
        try:
            heights = map_hillshade(dem, map_cache(out))["heights"] if dem else None
        except (OSError, ValueError, RasterioError):
            heights = None
        fallback = tuple(heights) if heights else None
    return relief_bar(statistics, fallback)


def _overlap(left: str | None, right: str | None) -> _Ring:
    """The overlap of two image footprints (the area the pair's DEM can cover); empty if none."""
    a, b = parse_footprint(left), parse_footprint(right)
    if not a or not b:
        return []
    from shapely.geometry import Polygon

    try:
        shared = Polygon([(wrap_lon(x), y) for x, y in a]).intersection(Polygon([(wrap_lon(x), y) for x, y in b]))
    except ValueError:  # a degenerate footprint
        return []
    if shared.is_empty or shared.geom_type != "Polygon":
        return []
    return [(float(x), float(y)) for x, y in shared.exterior.coords]


def _tile_rings(view: BatchView, pair_id: str, crs_wkt: str | None) -> list[dict]:
    """A pair's tiles with footprints, as lon/lat rings (the footprints are in the DEM's projection)."""
    rows = [r for r in view.tiles(pair_id) if r.get("footprint")]
    if not rows or not crs_wkt:
        return []
    import numpy as np
    from pyproj import CRS, Transformer

    try:
        crs = CRS.from_user_input(crs_wkt)
        to_lonlat = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    except Exception:  # noqa: BLE001 - pyproj's errors for a CRS it cannot use: no tiles on the map
        return []
    tiles = []
    for r in rows:
        try:
            x0, y0, x1, y1 = (float(v) for v in r["footprint"])
        except (TypeError, ValueError):
            continue
        t = np.linspace(0.0, 1.0, 9)  # densified edges: a square in a polar projection is curved in lon/lat
        xs = np.concatenate([x0 + (x1 - x0) * t, np.full(9, x1), x1 - (x1 - x0) * t, np.full(9, x0)])
        ys = np.concatenate([np.full(9, y0), y0 + (y1 - y0) * t, np.full(9, y1), y1 - (y1 - y0) * t])
        lons, lats = to_lonlat.transform(xs, ys)
        outcome = tile_outcome(r["status"], int(r.get("attempts") or 0), int(r.get("param_set") or 0))
        label = f"tile {r['tile_index']} of {pair_id}: {r['status']}, {int(r.get('attempts') or 0)} attempt(s)"
        if r.get("param_label") and outcome.startswith("fallback"):
            label += f", with {r['param_label']}"
        tiles.append({"id": pair_id, "index": int(r["tile_index"]), "corners": list(zip(lons.tolist(), lats.tolist())),
                      "cls": f"tile-{outcome}", "label": label})
    return tiles


def tile_legend(outcomes: set[str]) -> list[dict]:
    """Legend entries (``cls``, ``label``, ``colour``) of the tile outcomes on a map."""
    entries = []
    for key, (label, rgb) in OUTCOMES.items():
        if key in outcomes:
            entries.append({"cls": f"tile-{key}", "label": f"tile {label}", "colour": "rgb({},{},{})".format(*rgb)})
    for key in sorted(o for o in outcomes if o.startswith("fallback")):
        n = int(key.removeprefix("fallback"))
        rgb = FALLBACK_COLOURS[(n - 1) % len(FALLBACK_COLOURS)]
        entries.append({"cls": f"tile-{key}", "label": f"tile done with fallback set {n}",
                        "colour": "rgb({},{},{})".format(*rgb)})
    return entries


def _value(row: dict, colour: str) -> str:
    value = row.get(colour)
    return str(value) if value else "none"


def _crs_wkt(dem: pathlib.Path) -> str | None:
    """The DEM's CRS as WKT (its header only), or None when it cannot be read."""
    import rasterio

    try:
        with rasterio.open(dem) as src:
            return src.crs.to_wkt() if src.crs else None
    except (OSError, rasterio.errors.RasterioError):
        return None


def map_layers(view: BatchView, out: pathlib.Path, colour: str = "status", *, links: Links,
               shades: Shades | None = None) -> dict[str, Any]:
    """Every layer of the batch map, projected for an SVG (see the module docstring).

    Parameters
    ----------
    view : BatchView
        The batch's tracking database.
    out : path
        The batch output folder (STAC items and DEMs are read inside it only).
    colour : {"status", "grade", "manual"}
        What fills image footprints and strokes pair outlines.
    links : callable
        ``links(kind, id)``: the href of an image's or a pair's page.
    shades : callable, optional
        ``shades(pair_id, dem_path)``: the hillshade picture's href and lon/lat
        bounds, or None (no picture for that DEM).

    Returns
    -------
    dict
        ``images``, ``pairs``, ``tiles`` (each with ``points``, ``id``, ``href``,
        ``cls``, ``label``), ``shades`` (``href``, ``x``, ``y``, ``w``, ``h``),
        ``view`` (the SVG viewBox), ``lon0``, ``lat1``, ``kx`` (the projection,
        for the script's grid), ``tile_legend``, ``counts`` and ``empty``.
    """
    colour = colour if colour in COLOURINGS else "status"
    prefix = "st" if colour == "status" else "gr"
    out = pathlib.Path(out)
    images, pairs, tiles, pictures = [], [], [], []
    for row in view.footprints():
        corners = parse_footprint(row["footprint"])
        if corners:
            value = _value(row, colour)
            images.append({"id": row["product_id"], "href": links("image", row["product_id"]), "corners": corners,
                           "cls": f"{prefix}-{value}", "label": f"image {row['product_id']}: {colour} {value}"})
    for row in view.map_pairs():
        pid = row["pair_id"]
        value = _value(row, colour)
        rings = _stac_outline(out, row["stac"])
        kind = "DEM" if rings else "overlap of its images"
        for ring in rings or ([r] if (r := _overlap(row["left_footprint"], row["right_footprint"])) else []):
            pairs.append({"id": pid, "href": links("pair", pid), "corners": ring, "cls": f"{prefix}-{value}",
                          "kind": "dem" if rings else "overlap",
                          "label": f"pair {pid} ({kind}): {colour} {value}; click for its page"})
        path = dem_path(view, out, pid, row["stac"])
        if path is None:
            continue
        picture = shades(pid, path) if shades is not None else None
        if picture:
            href, (west, south, east, north) = picture
            pictures.append({"id": pid, "href": links("pair", pid), "src": href,
                             "corners": [(west, south), (east, north)], "label": f"hillshade of pair {pid}"})
        if view.has_tiles(pid):  # tile footprints are in the DEM's projection: its header says which
            tiles.extend({**t, "href": links("pair", pid)} for t in _tile_rings(view, pid, _crs_wkt(path)))
    return _project(images, pairs, tiles, pictures)


def _project(images: list, pairs: list, tiles: list, pictures: list) -> dict[str, Any]:
    """Project every shape onto the SVG's plane; the view spans them all with a margin."""
    shapes = (*images, *pairs, *tiles, *pictures)
    for s in shapes:
        corners = [(wrap_lon(x), y) for x, y in s["corners"]]
        # keep a shape whole across the antimeridian: its points follow its first one
        first = corners[0][0]
        s["corners"] = [(x + 360.0 if x - first < -180 else x - 360.0 if x - first > 180 else x, y) for x, y in corners]
    everything = [c for s in shapes for c in s["corners"]]
    legend = tile_legend({t["cls"].removeprefix("tile-") for t in tiles})
    counts = {"images": len(images), "pairs": len({p["id"] for p in pairs}), "shades": len(pictures),
              "tiles": len(tiles)}
    if not everything:
        return {"images": [], "pairs": [], "tiles": [], "shades": [], "view": "0 0 360 180", "lon0": -180.0,
                "lat1": 90.0, "kx": 1.0, "empty": True, "tile_legend": legend, "counts": counts}
    xs, ys = [x for x, _ in everything], [y for _, y in everything]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = max(x1 - x0, y1 - y0, 0.01) * 0.06
    x0, x1, y0, y1 = x0 - pad, x1 + pad, max(-90.0, y0 - pad), min(90.0, y1 + pad)
    kx = max(math.cos(math.radians((y0 + y1) / 2)), 0.02)

    def project(corners):
        return " ".join(f"{(x - x0) * kx:.6f},{(y1 - y):.6f}" for x, y in corners)

    for s in (*images, *pairs, *tiles):
        s["points"] = project(s.pop("corners"))
    for p in pictures:
        (west, south), (east, north) = p.pop("corners")
        p.update(x=f"{(west - x0) * kx:.6f}", y=f"{y1 - north:.6f}", w=f"{(east - west) * kx:.6f}",
                 h=f"{north - south:.6f}")
    return {"images": images, "pairs": pairs, "tiles": tiles, "shades": pictures,
            "view": f"0 0 {(x1 - x0) * kx:.6f} {y1 - y0:.6f}", "lon0": x0, "lat1": y1, "kx": kx, "empty": False,
            "tile_legend": legend, "counts": counts}
