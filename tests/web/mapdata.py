"""Map test data: pair-finder footprints around a batch's DEM, and a south-polar version of the batch.

:func:`south_polar` gives the done pair of a copied stand-in batch a DEM in a
polar stereographic projection near 79°S 172°W (made by the real
:func:`ctxdask.quality.pair_products`, so its STAC item, thumbnails and recorded
stretch are what a batch delivers), four stereo tiles with footprints in that
projection, and image footprints around it: the case whose grid labels once smeared.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3

import numpy as np

from ctxdask.tracking import TrackingDB
from ctxdask.tracking.geometry import import_scores

#: the DEM's projection: south polar stereographic on the Mars sphere ASP uses
POLAR_CRS = "+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"


def _box(lon: float, lat: float, width: float, height: float, lean: float = 0.0) -> str:
    corners = [(lon, lat), (lon + width, lat), (lon + width + lean, lat + height), (lon + lean, lat + height)]
    return " ".join(f"{x:.4f},{y:.4f}" for x, y in corners)


def write_footprints(out: pathlib.Path, lon: float, lat: float, width: float, height: float) -> None:
    """Pair-finder scores whose image footprints lie around (``lon``, ``lat``), each image shifted a little."""
    db = out / "ctxdask-batch.sqlite"
    with sqlite3.connect(db) as conn:
        pairs = conn.execute("SELECT left_id, right_id FROM pairs ORDER BY pair_id").fetchall()
    ids = sorted({i for p in pairs for i in p})
    boxes = {pid: _box(lon - width * 0.15 + width * 0.3 * k / max(1, len(ids) - 1), lat - height * 0.15 + 0.1 * height * k,
                       width, height, lean=width * 0.1) for k, pid in enumerate(ids)}
    rows = ["left,right,score,iou,convergence,incidence_left,incidence_right,footprint_left,footprint_right"]
    rows += [f'{left},{right},0.5,0.6,20,40,45,"{boxes[left]}","{boxes[right]}"' for left, right in pairs]
    (out / "scores.csv").write_text("\n".join(rows) + "\n")
    import_scores(db, out / "scores.csv")


def dem_bounds_lonlat(out: pathlib.Path, pair: str) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` of a pair's STAC item (the DEM's footprint)."""
    with sqlite3.connect(out / "ctxdask-batch.sqlite") as conn:
        (stac,) = conn.execute("SELECT stac FROM pair_quality WHERE pair_id = ?", (pair,)).fetchone()
    return tuple(json.loads((out / stac).read_text())["bbox"])


def _polar_dem(path: pathlib.Path) -> pathlib.Path:
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    x, y = Transformer.from_crs("+proj=longlat +R=3396190 +no_defs", POLAR_CRS, always_xy=True).transform(-172.0, -79.0)
    rows, cols, pixel = 150, 200, 100.0
    yy, xx = np.mgrid[0:rows, 0:cols].astype("float64")
    heights = (-2500 + 300 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + 2.0 * xx).astype("float32")
    heights[:12, :20] = -1e6  # a corner of no data
    transform = from_origin(x - cols * pixel / 2, y + rows * pixel / 2, pixel, pixel)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32", crs=POLAR_CRS,
                       transform=transform, nodata=-1e6) as dst:
        dst.write(heights, 1)
    return path


def south_polar(out: pathlib.Path, pair: str) -> pathlib.Path:
    """Make ``pair`` of the batch copy in ``out`` a south-polar pair with tiles (see the module docstring)."""
    import rasterio

    from ctxdask import quality

    folder = out / "pairs" / pair / "polar"
    folder.mkdir(parents=True, exist_ok=True)
    dem = _polar_dem(folder / "out-DEM.tif")
    made = quality.pair_products(folder, dem=dem, pair_id=pair, datetime="2009-06-01T00:38:16.057")
    rel = {k: pathlib.Path(v).relative_to(out).as_posix() for k, v in made["files"].items()}
    with TrackingDB(out / "ctxdask-batch.sqlite") as db:
        # the equatorial DEM and orthoimage are no longer this pair's (the tile map would draw that orthoimage)
        db.conn.execute("DELETE FROM products WHERE subject = ? AND (path LIKE '%DEM.tif' OR path LIKE '%DRG.tif')",
                        (pair,))
        db.record_product(str(made["files"]["dem"]), f"pair_quality-{pair}", pair, 1, "0" * 64)
        db.set_pair_quality(pair, statistics={**made["statistics"].to_dict(), "relief_limits": made["relief_limits"]},
                            stac=rel["stac"], hillshade=rel["thumbnail"], colour_relief=rel["relief_thumbnail"],
                            ortho_thumbnail=None, qa=made["qa"].to_dict())
        with rasterio.open(made["files"]["dem"]) as src:
            left, bottom, right, top = src.bounds
        midx, midy = (left + right) / 2, (bottom + top) / 2
        quads = [(left, midy, midx, top), (midx, midy, right, top), (left, bottom, midx, midy),
                 (midx, bottom, right, midy)]
        db.conn.execute("DELETE FROM tiles WHERE pair_id = ?", (pair,))
        db.conn.executemany(
            "INSERT INTO tiles (pair_id, tile_index, x, y, width, height, padding, status, attempts, footprint) "
            "VALUES (?, ?, 0, 0, 100, 75, 8, ?, ?, ?)",
            [(pair, i, st, n, json.dumps(list(quads[i])))
             for i, (st, n) in enumerate([("done", 1), ("done", 2), ("timeout", 3), ("failed", 1)])])
    west, south, east, north = dem_bounds_lonlat(out, pair)
    write_footprints(out, west, south, (east - west) * 1.1, (north - south) * 1.1)
    return out
