"""Quality assessment: per-image metrics, grades and thumbnails; per-pair DEM products.

Per image (raw EDR Dataset from :func:`ctxdask.open_edr`)::

    ds = ctxdask.open_edr(path)
    cal = ctxdask.calibrate(ds, flat)
    qa = quality.measure(ds, image=cal.image)      # lazy; shares the reads with ``cal``
    _, qa = dask.compute(cal.to_zarr(out, compute=False), qa)
    metrics = quality.QualityMetrics.from_dataset(qa)
    metrics.to_dict(), metrics.grade()             # plain JSON values, pass/warn/fail
    quality.write_png(qa.thumbnail, "thumb.png")

Per stereo pair (ASP's GeoTIFFs; see :mod:`ctxdask.quality.pair`)::

    quality.pair_products("pair/", dem="DEM.tif", ortho="DRG.tif", error="IntersectionErr.tif",
                          mola="mola.csv", pair_id=..., datetime=...)   # COGs, QA, provenance, STAC
    ctxdask.open_dem("pair/")                      # DEM, ortho, error as one lazy Dataset

Metric definitions are in :mod:`ctxdask.quality.metrics`; settings (grade
thresholds, thumbnail size, stretch) under ``ctxdask.quality`` in ``ctxdask.yaml``.
"""

from __future__ import annotations

from ctxdask.extras import require

require("products", "ctxdask.quality")

from ctxdask.quality.dem import DEMStatistics, colour_relief, dem_statistics, hillshade, open_dem
from ctxdask.quality.errors import QualityError
from ctxdask.quality.grade import Grade, grade
from ctxdask.quality.metrics import QualityMetrics, measure
from ctxdask.quality.pair import pair_products
from ctxdask.quality.stac import stac_item
from ctxdask.quality.thumbnail import stretch, thumbnail, write_png

__all__ = [
    "DEMStatistics",
    "Grade",
    "QualityError",
    "QualityMetrics",
    "colour_relief",
    "dem_statistics",
    "grade",
    "hillshade",
    "measure",
    "open_dem",
    "pair_products",
    "stac_item",
    "stretch",
    "thumbnail",
    "write_png",
]
