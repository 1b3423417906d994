"""STAC (https://stacspec.org) items, collection and catalog of a batch's DEM products, with pystac.

Mars is not the Earth, so items use the Solar System extension
(``ssys:targets = ["Mars"]``), under which geometry and bbox are longitude and
latitude on the target body rather than WGS 84: the DEM footprint (raster
bounds, edges densified) transformed from the DEM's CRS to its own geographic
CRS with pyproj, longitudes -180..180 east. When the CRS cannot give
longitudes and latitudes the geometry is null. The projection extension keeps
the native CRS (WKT2), shape, transform and bbox; the raster extension the
DEM's height statistics; the processing extension the software and lineage
(the full record is the ``provenance`` asset).

Layout written by :func:`write_catalog` (self-contained, relative links, so
the output folder opens in STAC tools as it is, wherever it is copied)::

    OUT/catalog.json                         root catalog
    OUT/collection.json                      the batch's collection
    OUT/pairs/<pair>/<pair>.stac.json        one item per pair, assets beside it

Items validate offline (:func:`validate`): pystac ships the core schemas; the
extension schemas are vendored in ``ctxdask/quality/stac_schemas`` (from the
stac-extensions repositories, Apache-2.0 / public domain) and put in the
validator's cache, so validation never touches the network.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

from ctxdask import __version__

__all__ = ["EXTENSIONS", "footprint", "pair_item", "rebuild_catalog", "stac_item", "validate", "write_catalog",
           "write_item"]

EXTENSIONS = {
    "ssys": "https://stac-extensions.github.io/ssys/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
}
_VENDORED = {
    EXTENSIONS["ssys"]: "ssys-v1.1.0.json",
    EXTENSIONS["proj"]: "projection-v2.0.0.json",
    EXTENSIONS["processing"]: "processing-v1.2.0.json",
    EXTENSIONS["raster"]: "raster-v1.1.0.json",
}

_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
#: asset name -> (roles, title, media type or None to guess)
ASSETS: dict[str, tuple[list[str], str, str | None]] = {
    "dem": (["data"], "DEM: heights above the Mars sphere (3,396,190 m), metres", _COG),
    "dem_areoid": (["data"], "DEM: heights above the MOLA areoid (dem_geoid), metres", _COG),
    "ortho": (["data", "visual"], "Orthoimage", _COG),
    "error": (["data", "quality"], "Intersection error (point2dem --errorimage), metres", _COG),
    "hillshade": (["overview", "visual"], "Hillshade of the DEM", _COG),
    "colour_relief": (["overview", "visual"], "Colour relief of the DEM", _COG),
    "thumbnail": (["thumbnail"], "Hillshade thumbnail", "image/png"),
    "relief_thumbnail": (["overview"], "Colour relief thumbnail", "image/png"),
    "ortho_thumbnail": (["overview"], "Orthoimage thumbnail", "image/png"),
    "qa_metrics": (["metadata", "quality"], "QA metrics: CTX - MOLA differences, holes, tilt, grade",
                   "application/json"),
    "provenance": (["metadata"], "Provenance: every program run, its argv, version and times; inputs",
                   "application/json"),
    "mola": (["metadata"], "MOLA shots used for the alignment (CSV)", "text/csv"),
    "residuals": (["metadata", "quality"], "Per-shot CTX - MOLA differences before and after alignment (CSV)",
                  "text/csv"),
    "pc_align_errors": (["metadata", "quality"], "pc_align end errors (CSV, as written by pc_align)", "text/csv"),
}


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


def _parse_time(value: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _media_type(path: pathlib.Path, declared: str | None) -> str:
    if declared and (declared != _COG or path.suffix.lower() in (".tif", ".tiff")):
        return declared
    import mimetypes

    return {".tif": "image/tiff; application=geotiff", ".png": "image/png", ".json": "application/json",
            ".csv": "text/csv"}.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or \
        "application/octet-stream"


def pair_item(
    item_id: str,
    *,
    datetime: str,
    statistics: Any,
    files: Mapping[str, str | os.PathLike],
    base: str | os.PathLike | None = None,
    properties: Mapping[str, Any] | None = None,
    target: str = "Mars",
):
    """A pystac Item for a pair's products.

    Parameters
    ----------
    item_id : str
        The pair id.
    datetime : str
        ISO 8601 UTC (the left image's START_TIME).
    statistics : DEMStatistics
        Of the DEM: footprint, CRS, shape, transform, height statistics.
    files : mapping
        Asset name (keys of :data:`ASSETS`, or any other) -> file.
    base : path, optional
        Folder the item is written to: hrefs are made relative to it.
    properties : mapping, optional
        Extra properties (``start_datetime``, ``end_datetime``, processing fields...).
    """
    import pystac

    geometry, bbox = footprint(statistics.crs, statistics.bounds)
    props = {k: v for k, v in dict(properties or {}).items() if v is not None}
    start, end = props.pop("start_datetime", None), props.pop("end_datetime", None)
    item = pystac.Item(
        id=item_id, geometry=geometry, bbox=bbox, datetime=_parse_time(datetime),
        start_datetime=_parse_time(start) if start else None, end_datetime=_parse_time(end) if end else None,
        properties={}, stac_extensions=sorted(EXTENSIONS.values()),
    )
    item.properties.update({
        "ssys:targets": [target],
        "proj:code": None,
        "proj:wkt2": statistics.crs,
        "proj:shape": list(statistics.shape),
        "proj:transform": list(statistics.transform),
        "proj:bbox": list(statistics.bounds),
        "gsd": max(statistics.resolution),
    })
    props.setdefault("processing:software", {"ctxdask": __version__})
    item.properties.update(props)
    for name, path in files.items():
        roles, title, media = ASSETS.get(name, (["metadata"], name, None))
        path = pathlib.Path(path)
        href = os.path.relpath(path, base) if base is not None else str(path)
        asset = pystac.Asset(href=pathlib.PurePath(href).as_posix(), media_type=_media_type(path, media),
                             title=title, roles=list(roles))
        if name == "dem":
            stats = statistics.to_dict()
            asset.extra_fields["raster:bands"] = [{
                "nodata": stats["nodata"] if stats["nodata"] is not None else "nan",
                "unit": statistics.units,
                "data_type": "float32",
                "spatial_resolution": max(statistics.resolution),
                "statistics": {k: v for k, v in {
                    "minimum": stats["minimum"], "maximum": stats["maximum"], "mean": stats["mean"],
                    "stddev": stats["std"],
                    "valid_percent": None if stats["valid_fraction"] is None else 100.0 * stats["valid_fraction"],
                }.items() if v is not None},
            }]
        item.add_asset(name, asset)
    return item


def stac_item(item_id: str, **kwargs: Any) -> dict[str, Any]:
    """The item of :func:`pair_item` as a plain dict (JSON-ready)."""
    return pair_item(item_id, **kwargs).to_dict(include_self_link=False, transform_hrefs=False)


def write_item(item: Any, path: str | os.PathLike) -> pathlib.Path:
    """Write a STAC item (pystac Item or dict) as JSON, atomically; NaN is refused."""
    from ctxdask.io.atomic import atomic_path

    data = item.to_dict(include_self_link=False, transform_hrefs=False) if hasattr(item, "to_dict") else item
    path = pathlib.Path(path)
    text = json.dumps(data, indent=2, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ validation
def _validator():
    import importlib.resources

    from pystac.validation import JsonSchemaSTACValidator

    validator = JsonSchemaSTACValidator()
    folder = importlib.resources.files("ctxdask.quality") / "stac_schemas"
    for uri, name in _VENDORED.items():
        validator.schema_cache[uri] = json.loads((folder / name).read_text(encoding="utf-8"))
    return validator


def validate(obj: Any) -> list[str]:
    """Validate a pystac object (Item, Collection, Catalog) offline; return the schema URIs checked.

    Raises
    ------
    pystac.errors.STACValidationError
        The object does not conform to the STAC core or an extension schema.
    """
    import pystac.validation

    return pystac.validation.validate(obj, validator=_validator())


# --------------------------------------------------------------------- catalog
def write_catalog(out_dir: str | os.PathLike, items: Iterable[Any], *, collection_id: str | None = None,
                  title: str | None = None, description: str | None = None) -> pathlib.Path:
    """Write ``catalog.json`` (root) and ``collection.json`` (the batch) over ``items``, self-contained.

    Each item must already know where it lives (its self href: the pair
    folder); its asset hrefs stay as they are (relative to the item).
    """
    import pystac

    out_dir = pathlib.Path(out_dir).resolve()
    items = list(items)
    collection_id = collection_id or out_dir.name or "ctxdask-batch"
    bboxes = [i.bbox for i in items if i.bbox] or [[-180.0, -90.0, 180.0, 90.0]]
    bbox = [min(b[0] for b in bboxes), min(b[1] for b in bboxes), max(b[2] for b in bboxes),
            max(b[3] for b in bboxes)]
    times = [t for i in items for t in (i.datetime, i.common_metadata.start_datetime,
                                       i.common_metadata.end_datetime) if t is not None]
    extent = pystac.Extent(pystac.SpatialExtent([bbox]),
                           pystac.TemporalExtent([[min(times), max(times)] if times else [None, None]]))
    collection = pystac.Collection(
        id=collection_id, description=description or "CTX stereo DEMs, orthoimages and QA made by ctxdask",
        extent=extent, title=title or f"ctxdask batch {collection_id}", license="other",
        stac_extensions=[EXTENSIONS["ssys"]], extra_fields={"ssys:targets": ["Mars"]},
    )
    catalog = pystac.Catalog(id=f"{collection_id}-root", description="ctxdask results (root catalog)",
                             title=f"ctxdask results {collection_id}")
    catalog.add_child(collection)
    catalog.set_self_href(str(out_dir / "catalog.json"))
    collection.set_self_href(str(out_dir / "collection.json"))
    for item in items:
        href = item.get_self_href()
        if href is None:
            raise ValueError(f"item {item.id} has no location (self href)")
        collection.add_item(item)
        item.set_self_href(href)
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return out_dir / "catalog.json"


def rebuild_catalog(out_dir: str | os.PathLike, *, collection_id: str | None = None,
                    extra_properties=None) -> tuple[pathlib.Path, int]:
    """Rebuild the catalog and collection of a batch folder from the items in ``pairs/*/``.

    ``extra_properties(item_id) -> dict`` adds properties to each item (the
    current manual grades: :func:`ctxdask.tracking.grades.stac_properties`).
    Returns the catalog path and the number of items.
    """
    import pystac

    out_dir = pathlib.Path(out_dir)
    items = []
    for path in sorted(out_dir.glob("pairs/*/*.stac.json")):
        item = pystac.Item.from_file(str(path.resolve()))
        item.clear_links()
        item.set_self_href(str(path.resolve()))
        if extra_properties is not None:
            item.properties.update(extra_properties(item.id))
        items.append(item)
    return write_catalog(out_dir, items, collection_id=collection_id), len(items)
