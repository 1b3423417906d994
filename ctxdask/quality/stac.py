"""STAC items (https://stacspec.org, version 1.0.0) for the DEM products of a stereo pair.

Mars is not the Earth, so the item uses the Solar System extension
(``ssys:targets = ["Mars"]``), under which geometry and bbox are longitude and
latitude on the target body rather than WGS 84. They are the DEM footprint
(raster bounds, edges densified) transformed from the DEM's CRS to its own
geographic CRS (the same sphere or ellipsoid) with pyproj; longitudes are
-180..180 east. When the CRS cannot give longitudes and latitudes the geometry
is null and the footprint is kept in native coordinates as ``proj:bbox``
(projection extension, which always records the CRS, shape and transform).
DEM statistics go into the DEM asset's ``raster:bands`` (raster extension).
"""

from __future__ import annotations

import json
import math
import mimetypes
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from ctxdask import __version__
from ctxdask.io.atomic import atomic_path
from ctxdask.quality.dem import DEMStatistics

__all__ = ["EXTENSIONS", "footprint", "stac_item", "write_item"]

EXTENSIONS = {
    "proj": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "ssys": "https://stac-extensions.github.io/ssys/v1.0.0/schema.json",
}

#: asset name -> (roles, title)
_ASSETS = {
    "dem": (["data"], "Digital elevation model"),
    "ortho": (["data", "visual"], "Orthoimage"),
    "hillshade": (["thumbnail", "overview"], "Hillshade of the DEM"),
    "relief": (["overview"], "Colour relief of the DEM"),
    "ortho_thumbnail": (["overview"], "Orthoimage thumbnail"),
}
_TYPES = {".tif": "image/tiff; application=geotiff", ".tiff": "image/tiff; application=geotiff", ".png": "image/png"}


def footprint(
    crs_wkt: str | None, bounds: tuple[float, float, float, float], *, points_per_edge: int = 16
) -> tuple[dict | None, list[float] | None]:
    """GeoJSON polygon and ``[west, south, east, north]`` of raster bounds in body lon/lat.

    Returns ``(None, None)`` when the CRS is missing, has no geographic
    counterpart, or the transform gives non-finite values. When a pole lies
    inside the bounds (polar stereographic DEMs) the bbox reaches it and spans
    every longitude.
    """
    if not crs_wkt:
        return None, None
    try:
        from pyproj import CRS, Transformer

        crs = CRS.from_wkt(crs_wkt)
        geographic = crs.geodetic_crs
        if geographic is None:
            return None, None
        to_lonlat = Transformer.from_crs(crs, geographic, always_xy=True)
        left, bottom, right, top = bounds
        n = points_per_edge
        xs = [left + (right - left) * i / n for i in range(n)] + [right] * n
        ys = [bottom] * n + [bottom + (top - bottom) * i / n for i in range(n)]
        xs += [right - (right - left) * i / n for i in range(n)] + [left] * n
        ys += [top] * n + [top - (top - bottom) * i / n for i in range(n)]
        lon, lat = to_lonlat.transform(xs, ys)
    except Exception:  # pyproj raises several types for CRSs it cannot handle
        return None, None
    ring = [[float(x), float(y)] for x, y in zip(lon, lat)]
    if not all(math.isfinite(v) for point in ring for v in point):
        return None, None
    ring.append(ring[0])
    west, east = min(p[0] for p in ring), max(p[0] for p in ring)
    south, north = min(p[1] for p in ring), max(p[1] for p in ring)
    if not crs.is_geographic:
        to_native = Transformer.from_crs(geographic, crs, always_xy=True)
        for pole in (90.0, -90.0):
            try:
                px, py = to_native.transform(0.0, pole)
            except Exception:
                continue
            if math.isfinite(px) and math.isfinite(py) and left <= px <= right and bottom <= py <= top:
                west, east = -180.0, 180.0
                north, south = (90.0, south) if pole > 0 else (north, -90.0)
    return {"type": "Polygon", "coordinates": [ring]}, [west, south, east, north]


def stac_item(
    item_id: str,
    *,
    datetime: str,
    statistics: DEMStatistics,
    files: Mapping[str, str | os.PathLike],
    base: str | os.PathLike | None = None,
    properties: Mapping[str, Any] | None = None,
    target: str = "Mars",
) -> dict[str, Any]:
    """A STAC 1.0.0 Item (a plain dict) for a pair's DEM products.

    Parameters
    ----------
    item_id : str
        The pair id.
    datetime : str
        ISO 8601 UTC (the left image's START_TIME).
    statistics : DEMStatistics
        Of the DEM: footprint, CRS, shape, transform, height statistics.
    files : mapping
        Asset name (``dem``, ``ortho``, ``hillshade``, ``relief``,
        ``ortho_thumbnail``, or any other) -> file.
    base : path, optional
        Folder the item is written to: hrefs are made relative to it.
    properties : mapping, optional
        Extra properties (e.g. ``start_datetime``, ``end_datetime``).
    target : str
        The ``ssys:targets`` body.
    """
    geometry, bbox = footprint(statistics.crs, statistics.bounds)
    props: dict[str, Any] = {
        "datetime": datetime,
        "ssys:targets": [target],
        "proj:epsg": None,
        "proj:wkt2": statistics.crs,
        "proj:shape": list(statistics.shape),
        "proj:transform": list(statistics.transform),
        "proj:bbox": list(statistics.bounds),
        "gsd": max(statistics.resolution),
        "processing:software": {"ctxdask": __version__},
    }
    props.update(properties or {})
    assets: dict[str, Any] = {}
    for name, path in files.items():
        roles, title = _ASSETS.get(name, (["metadata"], name))
        path = pathlib.Path(path)
        href = os.path.relpath(path, base) if base is not None else str(path)
        asset: dict[str, Any] = {
            "href": pathlib.PurePath(href).as_posix(),
            "type": _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            "title": title,
            "roles": roles,
        }
        if name == "dem":
            stats = statistics.to_dict()
            asset["raster:bands"] = [{
                "nodata": stats["nodata"],
                "unit": statistics.units,
                "spatial_resolution": max(statistics.resolution),
                "statistics": {
                    "minimum": stats["minimum"],
                    "maximum": stats["maximum"],
                    "mean": stats["mean"],
                    "stddev": stats["std"],
                    "valid_percent": None if stats["valid_fraction"] is None else 100.0 * stats["valid_fraction"],
                },
            }]
        assets[name] = asset
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": sorted(EXTENSIONS.values()),
        "id": item_id,
        "geometry": geometry,
    }
    if bbox is not None:
        item["bbox"] = bbox
    item.update(properties=props, links=[], assets=assets)
    return item


def write_item(item: Mapping[str, Any], path: str | os.PathLike) -> pathlib.Path:
    """Write a STAC item as JSON (atomically) and return its path; NaN is refused."""
    path = pathlib.Path(path)
    text = json.dumps(item, indent=2, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path
