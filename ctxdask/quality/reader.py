"""``ctxdask.open_dem``: a pair's DEM, orthoimage and intersection error as one lazy Dataset.

From a batch to an analysis in two lines::

    cat = pystac.Catalog.from_file("results/catalog.json")
    ds = ctxdask.open_dem(next(cat.get_items(recursive=True)))   # or open_dem("results/pairs/L_R")

The rasters are the pair's COGs, opened with rioxarray (dask chunks aligned
with their 512 x 512 internal tiles, nodata masked to NaN); they share one
grid, so they become variables of one Dataset with the CRS kept.
(:func:`ctxdask.quality.open_dem` opens a single raster as a DataArray.)
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import xarray as xr

from ctxdask.quality.dem import open_dem as open_raster
from ctxdask.quality.errors import QualityError

__all__ = ["open_dem"]

#: Dataset variable -> STAC asset name
VARIABLES = {"dem": "dem", "dem_areoid": "dem_areoid", "ortho": "ortho", "error": "error"}


def _item_assets(source: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(item id, asset name -> absolute href, properties) of a pystac Item or an item JSON path."""
    import pystac

    if isinstance(source, pystac.Item):
        item = source
    else:
        path = pathlib.Path(source)
        if path.is_dir():
            found = sorted(path.glob("*.stac.json"))
            if len(found) != 1:
                raise QualityError(str(path), f"expected one *.stac.json item in the folder, found {len(found)}")
            path = found[0]
        if not path.is_file():
            raise QualityError(str(path), "no such STAC item or pair folder")
        item = pystac.Item.from_file(str(path.resolve()))
    hrefs = {name: asset.get_absolute_href() or asset.href for name, asset in item.assets.items()}
    return item.id, hrefs, dict(item.properties)


def open_dem(source: Any, *, chunks: Any = None, variables: tuple[str, ...] | None = None) -> xr.Dataset:
    """Open a pair's rasters lazily as one Dataset.

    Parameters
    ----------
    source : pystac.Item, path of an item JSON, or a pair folder holding one ``*.stac.json``
    chunks : optional
        Dask chunks (default 2048 x 2048).
    variables : tuple of str, optional
        Subset of ``dem``, ``dem_areoid``, ``ortho``, ``error`` (default: those present).

    Raises
    ------
    QualityError
        No item, no DEM asset, a raster that cannot be opened or is on another grid.
    """
    item_id, hrefs, properties = _item_assets(source)
    wanted = variables or tuple(v for v in VARIABLES if VARIABLES[v] in hrefs)
    if "dem" not in hrefs:
        raise QualityError(str(source), f"item {item_id} has no 'dem' asset")
    arrays = {}
    for name in wanted:
        href = hrefs.get(VARIABLES[name])
        if href is None:
            raise QualityError(str(source), f"item {item_id} has no {VARIABLES[name]!r} asset")
        arrays[name] = open_raster(href, chunks=chunks)
    grid = arrays["dem"] if "dem" in arrays else next(iter(arrays.values()))
    for name, array in arrays.items():
        if array.shape != grid.shape or array.rio.transform() != grid.rio.transform():
            raise QualityError(os.fspath(array.attrs.get("source", name)),
                               f"{name} is not on the DEM's grid ({array.shape} vs {grid.shape})")
    ds = xr.Dataset({name: array.drop_vars("spatial_ref", errors="ignore") for name, array in arrays.items()})
    ds = ds.rio.write_crs(grid.rio.crs)
    ds.attrs.update({"pair_id": item_id, "grade": properties.get("ctxdask:grade"),
                     "datetime": properties.get("datetime")})
    ds.attrs = {k: v for k, v in ds.attrs.items() if v is not None}
    return ds
