"""Small multi-band ISIS3 cubes of float values (flat fields and other calibration files).

ISIS calibration files such as ``ctxFlat_000N.cub`` are ordinary cubes: one
line of 5000 ``Real`` samples that ``ctxcal`` reads as a ``Brick(5000, 1, 1)``
at sample 1, line 1, band 1 (``isis/src/mro/apps/ctxcal/ctxcal.cpp``).
:func:`write_band_cube` writes such a cube, with further bands (for example
the uncertainty and the image count behind each value) that ctxcal ignores, a
``BandBin`` group naming the bands and any extra groups. The label is rendered
like the level-0/1 cubes of :mod:`ctxdask.io.isis_write` (``End_Group`` /
``End_Object`` without names, as ISIS writes them); pixels are BandSequential,
little-endian, NaN as the ISIS ``Null``. Read it back with
:func:`ctxdask.io.isis_read.read_cube`.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ctxdask.io.atomic import atomic_path
from ctxdask.io.isis_pixels import encode_block, pixel_type

# the project's ISIS label renderer (private to isis_write, shared here rather than duplicated)
from ctxdask.io.isis_write import LABEL_BYTES, _Node, _render_label

__all__ = ["write_band_cube"]


def write_band_cube(
    path: str | os.PathLike,
    bands: np.ndarray,
    *,
    band_names: Sequence[str] | None = None,
    groups: Mapping[str, Mapping[str, Any]] | None = None,
) -> pathlib.Path:
    """Write ``bands`` ``(bands, lines, samples)`` as a BandSequential ``Real`` ISIS cube.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.cub``, replaced atomically.
    bands : ndarray
        ``(bands, lines, samples)`` (or ``(lines, samples)`` for one band);
        NaN is written as ``Null``.
    band_names : sequence of str, optional
        ``BandBin/Name`` values, one per band.
    groups : mapping, optional
        Extra label groups: name -> {keyword: value} (str, int, float or a
        list of them).
    """
    data = np.asarray(bands, dtype=np.float64)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"bands must be (bands, lines, samples), got shape {data.shape}")
    nb, lines, samples = data.shape
    if band_names is not None and len(band_names) != nb:
        raise ValueError(f"{len(band_names)} band names for {nb} bands")
    ptype = pixel_type("Real")
    pixels = encode_block(data, ptype, byte_order="<")
    core = _Node("Object", "Core", [("StartByte", LABEL_BYTES + 1), ("Format", "BandSequential")])
    core.add("Dimensions", _Node("Group", "Dimensions", [("Samples", samples), ("Lines", lines), ("Bands", nb)]))
    core.add("Pixels", _Node("Group", "Pixels", [("Type", "Real"), ("ByteOrder", "Lsb"), ("Base", 0.0),
                                                  ("Multiplier", 1.0)]))
    cube = _Node("Object", "IsisCube").add("Core", core)
    if band_names is not None:
        cube.add("BandBin", _Node("Group", "BandBin", [("Name", list(band_names))]))
    for name, keywords in (groups or {}).items():
        cube.add(name, _Node("Group", name, list(keywords.items())))
    text = _render_label([cube, _Node("Object", "Label", [("Bytes", LABEL_BYTES)])]).encode()
    if len(text) > LABEL_BYTES:
        raise ValueError(f"the label of {path} needs {len(text)} bytes, more than {LABEL_BYTES}")
    path = pathlib.Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(text.ljust(LABEL_BYTES, b"\0"))
        f.write(np.ascontiguousarray(pixels).tobytes())
    return path
