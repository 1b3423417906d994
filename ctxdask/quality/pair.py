"""The products of one stereo pair's DEM: thumbnails, statistics and its STAC item.

Puts :mod:`ctxdask.quality.dem` (statistics, shading), :mod:`ctxdask.quality.thumbnail`
and :mod:`ctxdask.quality.stac` (the item) together; none of them imports this module.
"""

from __future__ import annotations

import datetime as _dt
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import dask
import numpy as np

from ctxdask import config
from ctxdask.quality.dem import _lazy_statistics, _spacing, _statistics, colour_relief, hillshade, open_dem
from ctxdask.quality.errors import QualityError
from ctxdask.quality.stac import stac_item, write_item
from ctxdask.quality.thumbnail import thumbnail, write_png

__all__ = ["pair_products"]


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


def pair_products(
    out_dir: str | os.PathLike,
    *,
    dem: str | os.PathLike,
    datetime: Any,
    ortho: str | os.PathLike | None = None,
    pair_id: str | None = None,
    left_id: str | None = None,
    right_id: str | None = None,
    end_datetime: Any = None,
    size: int | None = None,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Thumbnails, statistics and a STAC item of one stereo pair's DEM (and orthoimage).

    Writes into ``out_dir`` (atomically): ``{pair_id}_hillshade.png``,
    ``{pair_id}_relief.png``, ``{pair_id}_ortho.png`` (when ``ortho`` is given)
    and ``{pair_id}.stac.json``. The DEM is read once for its statistics and
    its downsampled copy together.

    Parameters
    ----------
    out_dir : path
        Output folder (asset hrefs in the STAC item are relative to it).
    dem, ortho : path
        DEM and orthoimage GeoTIFFs (ASP ``point2dem`` output: ``-DEM.tif``, ``-DRG.tif``).
    datetime : str, datetime or numpy.datetime64
        START_TIME of the left image (UTC): the item's ``datetime``.
    pair_id : str, optional
        Item id; default ``"{left_id}_{right_id}"``, else the DEM file stem.
    left_id, right_id : str, optional
        Product ids of the pair, recorded in the item's properties.
    end_datetime : optional
        START_TIME of the right image: with it the item also gets
        ``start_datetime``/``end_datetime`` spanning both.
    size : int, optional
        Longest thumbnail side (default ``quality.dem-thumbnail-size``).
    properties : mapping, optional
        Extra item properties.

    Returns
    -------
    dict
        ``{"id", "statistics" (DEMStatistics), "files" {role name: path}, "stac" (dict)}``.
    """
    out_dir = pathlib.Path(out_dir)
    pair_id = pair_id or (f"{left_id}_{right_id}" if left_id and right_id else pathlib.Path(dem).stem)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", pair_id):
        raise QualityError(str(dem), f"pair id {pair_id!r} is not a safe file name")
    size = int(config.get("quality.dem-thumbnail-size") if size is None else size)
    start = _isotime(datetime)
    end = _isotime(end_datetime) if end_datetime is not None else None

    heights = open_dem(dem)
    small = thumbnail(heights, size)
    computed, small_values = dask.compute(_lazy_statistics(heights), small.data)
    stats = _statistics(heights, computed)
    factor = int(small.attrs["factor"])
    spacing = _spacing(stats.transform, heights.rio.crs, small_values.shape[0], factor)

    files: dict[str, pathlib.Path] = {"dem": pathlib.Path(dem)}
    files["hillshade"] = write_png(
        _shade_for_png(hillshade(small_values, spacing), small_values), out_dir / f"{pair_id}_hillshade.png",
        stretched=True,
    )
    files["relief"] = write_png(colour_relief(small_values), out_dir / f"{pair_id}_relief.png")
    if ortho is not None:
        files["ortho"] = pathlib.Path(ortho)
        files["ortho_thumbnail"] = write_png(thumbnail(open_dem(ortho), size), out_dir / f"{pair_id}_ortho.png")

    props = dict(properties or {})
    if left_id:
        props["ctxdask:left_product_id"] = left_id
    if right_id:
        props["ctxdask:right_product_id"] = right_id
    if end is not None:
        props["start_datetime"], props["end_datetime"] = min(start, end), max(start, end)
    item = stac_item(pair_id, datetime=start, statistics=stats, files=files, base=out_dir, properties=props)
    item_path = out_dir / f"{pair_id}.stac.json"
    write_item(item, item_path)
    files["stac"] = item_path
    return {"id": pair_id, "statistics": stats, "files": files, "stac": item}


def _shade_for_png(shade: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Hillshade 0..1 as 0..255 grey, NaN kept where there is no height (transparent)."""
    out = np.rint(np.nan_to_num(shade, nan=0.0) * 255.0).astype(np.float32)
    out[~np.isfinite(heights) | ~np.isfinite(shade)] = np.nan
    return out
