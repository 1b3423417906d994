"""Pick the flat of an image from a folder of monthly flats.

``ctxdask flat --by month`` writes ``flat_YYYY-MM.cub`` (and ``.tif``,
``.npy``) per calendar month of START_TIME. :func:`flat_for_image` chooses,
for one image, in this order:

1. the flat of the image's month (``*YYYY-MM.cub``, else ``.tif``, else ``.npy``);
2. ``PPP.flat.cub`` where ``PPP`` is the first three characters of the
   product id: the naming of the monthly flats ISIS ``ctxcal MONTHLYFLAT=yes``
   looks for in ``$ISISDATA/mro/calibration/ctxFlatFiles``
   (``isis/src/mro/apps/ctxcal/ctxcal.cpp``, DOI-USGS/ISIS3 pull request 5338),
   so a copy of that folder works too;
3. the nearest month at most ``max_month_gap`` months away (the earlier one on a tie);
4. a flat of all months (``*all.cub`` / ``.tif`` / ``.npy``);

and otherwise raises :class:`~ctxdask.radiometry.flat.FlatError` naming the
folder, the month and the months it has. :func:`ctxdask.calibrate` calls it
when its ``flat`` is a folder; the batch passes the folder of setting
``ctxdask.flat.dir`` (which must be visible to the workers) that way.
"""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np

from ctxdask.radiometry.flat import FlatError
from ctxdask.settings import current as current_settings

__all__ = ["flat_for_image", "month_of"]

_SUFFIXES = (".cub", ".tif", ".tiff", ".npy")  # preference for the same month
_MONTH = re.compile(r"(\d{4})-(\d{2})$")


def month_of(start_time) -> str:
    """``"YYYY-MM"`` of a START_TIME (string, datetime or numpy datetime64)."""
    return str(np.datetime64(str(start_time).rstrip("Z"), "M"))


def _index(folder: pathlib.Path) -> tuple[dict[str, pathlib.Path], dict[str, pathlib.Path], pathlib.Path | None]:
    """month -> file, phase prefix -> file, and the all-months flat of a folder."""
    months: dict[str, pathlib.Path] = {}
    phases: dict[str, pathlib.Path] = {}
    every: pathlib.Path | None = None
    rank = {s: i for i, s in enumerate(_SUFFIXES)}
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if suffix not in rank or not path.is_file() or path.name.startswith("."):
            continue
        stem = path.name[: -len(path.suffix)]
        if path.name.lower().endswith(".flat.cub"):
            phases[path.name[:3].upper()] = path
        elif match := _MONTH.search(stem):
            month = f"{match.group(1)}-{match.group(2)}"
            if month not in months or rank[suffix] < rank[months[month].suffix.lower()]:
                months[month] = path
        elif stem.lower().endswith("all") and (every is None or rank[suffix] < rank[every.suffix.lower()]):
            every = path
    return months, phases, every


def flat_for_image(folder: str | os.PathLike, start_time, product_id: str | None = None, *,
                   max_month_gap: int | None = None) -> pathlib.Path:
    """The flat in ``folder`` for an image taken at ``start_time`` (see the module doc).

    Parameters
    ----------
    folder : path
        A folder of flats.
    start_time : str or datetime64
        The image's START_TIME.
    product_id : str, optional
        Its product id, for ISIS-named ``PPP.flat.cub`` files.
    max_month_gap : int, optional
        Default: setting ``ctxdask.flat.max-month-gap``.

    Raises
    ------
    FlatError
        When the folder is missing or has no suitable flat.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FlatError(folder, "flat folder not found (setting ctxdask.flat.dir must name a folder the workers see)")
    gap = int(current_settings().flat.max_month_gap if max_month_gap is None else max_month_gap)
    month = month_of(start_time)
    months, phases, every = _index(folder)
    if month in months:
        return months[month]
    if product_id and product_id[:3].upper() in phases:
        return phases[product_id[:3].upper()]
    target = np.datetime64(month, "M")
    near = sorted((abs(int((np.datetime64(m, "M") - target).astype(int))), m) for m in months)
    if near and near[0][0] <= gap:
        return months[near[0][1]]
    if every is not None:
        return every
    have = ", ".join(sorted(months)) or "none"
    raise FlatError(folder, f"no flat for {month} (nor within {gap} months, nor an all-months flat); "
                            f"months here: {have}")
