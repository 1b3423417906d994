"""The synthetic Mars terrain the DEM stand-ins "see" (the tests' ground truth).

NOT ASP. Set through ``CTXDASK_STANDIN_SURFACE`` (JSON, every key optional):
``shape`` [rows, cols], ``spacing`` metres, ``origin`` [x, y] of the first
(upper-left) grid node in the simple-cylindrical frame :data:`CRS`, ``offset``
[e, n, u] (the stereo error alignment removes), ``tilt`` [e, n] m/km (what it
does not remove), ``holes`` [row0, col0, rows, cols] rectangles and
``round_holes`` [row, col, radius] (no stereo points there),
``observed_displacement`` (metres; what pc_align reports as observed, to force
its warning).

Doomed pairs: ``CTXDASK_STANDIN_DOOMED`` lists product ids (comma-separated)
whose stereo correlates almost nothing (a pair with no texture, clouds, a bad
convergence angle): the parallel_stereo stand-in tags the cloud of a pair of
which an image is listed (:data:`DOOMED_TAG`), and point2dem keeps only a
:data:`DOOMED_VALID` share of its points (the western columns, and the eastern edge) with
:data:`DOOMED_ERROR` times the intersection error.

A stereo cloud of this terrain has its points ``spacing / 4`` apart, so that
point2dem's automatic grid (four times the point spacing, src/asp/Tools/point2dem.cc:202)
is the ``shape`` x ``spacing`` grid of :func:`grid`, with nodes at integer
multiples of the spacing as point2dem places them (docs/tools/point2dem.rst:15-19).
"""

from __future__ import annotations

import json
import os

import numpy as np

R_MARS = 3396190.0
CRS = "+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"
LONLAT = "+proj=longlat +R=3396190 +no_defs"
#: the cloud is this many times denser than the DEM point2dem makes of it by default
DENSITY = 4.0
#: what a doomed pair's cloud carries, the share of its points point2dem keeps, and its error factor
DOOMED_TAG, DOOMED_VALID, DOOMED_ERROR = "CTXDASK_STANDIN_DOOMED", 0.1, 25.0
DEFAULT = {"shape": [240, 300], "spacing": 20.0, "origin": [1000000.0, 130000.0], "offset": [0.0, 0.0, 0.0],
           "tilt": [0.0, 0.0], "holes": [], "round_holes": [], "observed_displacement": None}


def settings() -> dict:
    """The terrain settings (defaults updated from ``CTXDASK_STANDIN_SURFACE``)."""
    spec = dict(DEFAULT)
    spec.update(json.loads(os.environ.get("CTXDASK_STANDIN_SURFACE") or "{}"))
    return spec


def truth(x, y):
    """True heights (m above the sphere) at simple-cylindrical x, y (m): smooth hills and a crater."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    hills = 250.0 * np.sin(2 * np.pi * x / 4000.0) * np.cos(2 * np.pi * y / 3000.0)
    cx, cy = 1003000.0, 127600.0
    crater = -180.0 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 600.0**2))
    return -1500.0 + hills + crater + 0.01 * (x - 1000000.0)


def areoid(lon, lat):
    """The stand-in's areoid height (m above the sphere) at longitude/latitude in degrees."""
    return 800.0 + 30.0 * np.sin(np.radians(np.asarray(lat) * 3.0)) + 20.0 * np.cos(np.radians(lon))


def dem_heights(x, y, spec: dict, correction=(0.0, 0.0, 0.0)):
    """Heights of the stereo surface at x, y after a pc_align ``correction`` (e, n, u metres)."""
    de = spec["offset"][0] + correction[0]
    dn = spec["offset"][1] + correction[1]
    du = spec["offset"][2] + correction[2]
    x0, y0 = spec["origin"]
    tilt = (spec["tilt"][0] * (x - x0) + spec["tilt"][1] * (y - y0)) / 1000.0
    return truth(x - de, y - dn) + du + tilt


def ortho(x, y):
    """The orthoimage's brightness of the ground at x, y (a shaded relief)."""
    return 0.25 + 0.001 * (truth(np.asarray(x) + 20.0, y) - truth(x, y))


def grid(spec: dict):
    """Node coordinates ``(x[cols], y[rows])`` and the affine transform of the default DEM grid.

    Nodes sit at ``origin + k * spacing``; the pixel corners half a spacing outside
    (src/asp/Core/PointToDem2.cc:485-491).
    """
    from rasterio.transform import from_origin

    rows, cols = spec["shape"]
    res = float(spec["spacing"])
    x0, y0 = spec["origin"]
    x = x0 + np.arange(cols) * res
    y = y0 - np.arange(rows) * res
    return x, y, from_origin(x0 - res / 2, y0 + res / 2, res, res)


def hole_mask(spec: dict) -> np.ndarray:
    """True where the stereo cloud has no points (terrain grid rows, cols)."""
    rows, cols = spec["shape"]
    mask = np.zeros((rows, cols), bool)
    for r0, c0, nr, nc in spec["holes"]:
        mask[r0:r0 + nr, c0:c0 + nc] = True
    rr, cc = np.mgrid[0:rows, 0:cols]
    for r, c, radius in spec["round_holes"]:
        mask |= (rr - r) ** 2 + (cc - c) ** 2 <= radius**2
    return mask


def doomed(*names: str) -> bool:
    """Whether one of ``names`` (image file names) is of a product listed in ``CTXDASK_STANDIN_DOOMED``."""
    listed = [p.strip() for p in os.environ.get("CTXDASK_STANDIN_DOOMED", "").split(",") if p.strip()]
    return any(p in os.path.basename(n) for p in listed for n in names)


def doomed_mask(spec: dict) -> np.ndarray:
    """True where a doomed pair's cloud has no points: all but the western :data:`DOOMED_VALID` of the columns and
    the eastern edge (which keeps the DEM's extent: point2dem grids the points' bounding box)."""
    rows, cols = spec["shape"]
    mask = np.ones((rows, cols), bool)
    mask[:, : max(1, int(cols * DOOMED_VALID))] = False
    mask[:, -1] = False
    return mask


def error_ramp(x, spec: dict):
    """Intersection error (m) at x: 0.2 m rising linearly to 4.2 m from the west to the east edge."""
    res = float(spec["spacing"])
    width = spec["shape"][1] * res
    return 0.2 + 4.0 * (np.asarray(x) - (spec["origin"][0] - res / 2)) / width


def error_image(spec: dict) -> np.ndarray:
    """:func:`error_ramp` on the default grid."""
    x, _, _ = grid(spec)
    return np.broadcast_to(error_ramp(x, spec), tuple(spec["shape"])).astype(np.float32)
