"""Stand-ins for point2dem, pc_align and dem_geoid that make a KNOWN synthetic terrain.

NOT THE REAL PROGRAMS. They replace the placeholder versions of ``_standin.py``
(registered into its ``PROGRAMS`` table by the executables) and keep the real
command lines and output names, so that QA code can be checked against values
computed independently from the same analytic terrain (:func:`truth`):

``point2dem``
    Writes ``<prefix>-DEM.tif`` (heights above the D_MARS sphere, 3,396,190 m,
    float32, ASP's nodata -3.40282265508890445e38), ``-DRG.tif`` and
    ``-IntersectionErr.tif`` on a simple-cylindrical grid. The DEM is the
    terrain shifted by the stereo error ``offset`` (east, north, up metres)
    plus a ``tilt`` (east, north, m/km) that alignment does not remove, minus
    whatever translation the input cloud carries in its
    ``CTXDASK_STANDIN_ALIGNED`` tag (written by the pc_align stand-in).
``pc_align``
    Reads the MOLA CSV (``--csv-format``), writes ``-transform.txt``,
    ``-inverse-transform.txt``, ``-beg_errors.csv`` and ``-end_errors.csv``
    (header ``# lon,lat,radius_km,error (meters)`` as the real tool writes for
    a configured ``--csv-format``, src/asp/Tools/pc_align.cc ``save_errors``),
    ``-trans_reference.tif`` with ``--save-inv-transformed-reference-points``,
    and prints the real log lines (``calc_stats``, translation vectors,
    "Maximum displacement of points ...", and the warning "The input
    --max-displacement value is smaller than the final observed displacement"
    when it is). With a too-small ``--max-displacement`` it recovers only
    part of the offset, as the real ICP does after discarding far points.
``dem_geoid``
    Subtracts the known areoid :func:`areoid` and writes ``<prefix>-adj.tif``.

The terrain is set through ``CTXDASK_STANDIN_SURFACE`` (JSON, all keys
optional): ``shape`` [rows, cols], ``spacing`` metres, ``origin`` [x, y] of the
upper-left corner (metres), ``offset`` [e, n, u], ``tilt`` [e, n] m/km,
``holes`` list of [row0, col0, rows, cols] rectangles (nodata; tile-shaped),
``round_holes`` list of [row, col, radius], ``observed_displacement`` (metres;
overrides what pc_align reports as observed, to force its warning).
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

R_MARS = 3396190.0
NODATA = -3.40282265508890445e38
CRS = "+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"
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
    """Heights the stand-in point2dem writes at x, y after a pc_align ``correction`` (e, n, u)."""
    de = spec["offset"][0] + correction[0]
    dn = spec["offset"][1] + correction[1]
    du = spec["offset"][2] + correction[2]
    x0, y0 = spec["origin"]
    tilt = (spec["tilt"][0] * (x - x0) + spec["tilt"][1] * (y - y0)) / 1000.0
    return truth(x - de, y - dn) + du + tilt


def grid(spec: dict):
    """Pixel-centre coordinates ``(x[cols], y[rows])`` and the affine transform of the DEM grid."""
    from rasterio.transform import from_origin

    rows, cols = spec["shape"]
    res = float(spec["spacing"])
    x0, y0 = spec["origin"]
    x = x0 + (np.arange(cols) + 0.5) * res
    y = y0 - (np.arange(rows) + 0.5) * res
    return x, y, from_origin(x0, y0, res, res)


def hole_mask(spec: dict) -> np.ndarray:
    rows, cols = spec["shape"]
    mask = np.zeros((rows, cols), bool)
    for r0, c0, nr, nc in spec["holes"]:
        mask[r0:r0 + nr, c0:c0 + nc] = True
    rr, cc = np.mgrid[0:rows, 0:cols]
    for r, c, radius in spec["round_holes"]:
        mask |= (rr - r) ** 2 + (cc - c) ** 2 <= radius**2
    return mask


def error_image(spec: dict) -> np.ndarray:
    """Intersection error (m): 0.2 m rising linearly to 4.2 m from west to east edge."""
    rows, cols = spec["shape"]
    return np.broadcast_to(0.2 + 4.0 * (np.arange(cols) + 0.5) / cols, (rows, cols)).astype(np.float32)


def _write(path: str, data: np.ndarray, transform, nodata, tags=None) -> None:
    import rasterio

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=str(data.dtype),
                   crs=CRS, transform=transform, nodata=nodata, tiled=True, blockxsize=128, blockysize=128)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(CTXDASK_STANDIN="synthetic terrain written by a test stand-in", **(tags or {}))


def _aligned_tag(path: str) -> tuple[float, float, float]:
    import rasterio

    with rasterio.open(path) as src:
        tag = src.tags().get("CTXDASK_STANDIN_ALIGNED")
    return tuple(float(v) for v in tag.split(",")) if tag else (0.0, 0.0, 0.0)


# ------------------------------------------------------------------ point2dem
def point2dem(argv, fault):
    from _standin import _apply_fault, _asp_parser, _default_prefix, _require_raster

    parser = _asp_parser("point2dem")
    parser.add_argument("-r", "--reference-spheroid", "--datum", dest="datum")
    parser.add_argument("-s", "--tr", "--dem-spacing", dest="tr", type=float, default=0.0)
    parser.add_argument("-o", "--output-prefix", default="")
    parser.add_argument("--orthoimage", action="store_true")
    parser.add_argument("--errorimage", action="store_true")
    parser.add_argument("--nodata-value", type=float, default=NODATA)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if args.datum and args.datum.lower() not in ("mars", "d_mars"):
        print(f"Error: this stand-in makes Mars DEMs only, not datum {args.datum}", file=sys.stderr)
        sys.exit(1)
    clouds = [f for f in args.files if not f.endswith("-L.tif")]
    for cloud in clouds:
        _require_raster(cloud, 3)
    prefix = args.output_prefix or _default_prefix(clouds[0])
    _apply_fault(fault)
    spec = settings()
    if args.tr:
        spec["spacing"] = args.tr
    x, y, transform = grid(spec)
    correction = _aligned_tag(clouds[0])
    heights = dem_heights(x[None, :], y[:, None], spec, correction).astype(np.float32)
    holes = hole_mask(spec)
    heights[holes] = np.float32(args.nodata_value)
    _write(f"{prefix}-DEM.tif", heights, transform, args.nodata_value)
    if args.orthoimage:
        ortho = (0.25 + 0.001 * (truth(x[None, :] + 20.0, y[:, None]) - truth(x[None, :], y[:, None])))
        ortho = ortho.astype(np.float32)
        ortho[holes] = np.float32(args.nodata_value)
        _write(f"{prefix}-DRG.tif", ortho, transform, args.nodata_value)
    if args.errorimage:
        error = error_image(spec).copy()
        error[holes] = np.float32(args.nodata_value)
        _write(f"{prefix}-IntersectionErr.tif", error, transform, args.nodata_value)
    print(f"Percentage of valid pixels: {100.0 * (1 - holes.mean()):.4g}%")


# ------------------------------------------------------------------- pc_align
_COLUMNS = {"lon", "lat", "radius_km", "radius_m", "height_above_datum"}


def read_csv(path: str, csv_format: str) -> dict[str, np.ndarray]:
    """Columns of a pc_align CSV by ``--csv-format`` (``'1:lon 2:lat 3:radius_km'``)."""
    spec = {}
    for item in csv_format.split():
        index, _, name = item.partition(":")
        if name not in _COLUMNS:
            raise ValueError(f"unsupported column {name}")
        spec[name] = int(index) - 1
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.replace(",", " ").split()
            rows.append([float(parts[i]) for i in spec.values()])
    data = np.array(rows, dtype=np.float64).reshape(-1, len(spec))
    return {name: data[:, k] for k, name in enumerate(spec)}


def lonlat_to_xy(lon, lat):
    lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
    return np.radians(lon) * R_MARS, np.radians(lat) * R_MARS


def _heights(cols: dict) -> np.ndarray:
    if "radius_km" in cols:
        return cols["radius_km"] * 1000.0 - R_MARS
    if "radius_m" in cols:
        return cols["radius_m"] - R_MARS
    return cols["height_above_datum"]


def _stats_lines(label: str, errors: np.ndarray) -> list[str]:
    e = np.sort(np.asarray(errors, float))
    n = len(e)
    lines = [f"Number of errors: {n}"]
    if not n:
        return lines
    med = float(np.median(e))
    nmad = 1.4826 * float(np.median(np.abs(e - med)))
    p = lambda q: e[min(n - 1, int(round(n * q)))]  # noqa: E731
    mean_of = lambda k: float(e[:max(k, 1)].mean())  # noqa: E731
    lines.append(f"{label}: error percentile of smallest errors (meters): 16%: {p(0.16):.8g}, "
                 f"50%: {med:.8g}, 84%: {p(0.84):.8g}")
    lines.append(f"{label}: mean of smallest errors (meters): 25%: {mean_of(n // 4):.8g}, "
                 f"50%: {mean_of(n // 2):.8g}, 75%: {mean_of(3 * n // 4):.8g}, 100%: {mean_of(n):.8g}")
    lines.append(f"{label} stats (meters): Mean: {e.mean():.8g}, StdDev: {e.std():.8g}, "
                 f"RMSE: {math.sqrt((e**2).mean()):.8g}, Median: {med:.8g}, NMAD: {nmad:.8g}")
    return lines


def _ned_to_ecef(lon, lat):
    """Columns: north, east, down unit vectors in planet-centred Cartesian coordinates."""
    lo, la = math.radians(lon), math.radians(lat)
    north = [-math.sin(la) * math.cos(lo), -math.sin(la) * math.sin(lo), math.cos(la)]
    east = [-math.sin(lo), math.cos(lo), 0.0]
    down = [-math.cos(la) * math.cos(lo), -math.cos(la) * math.sin(lo), -math.sin(la)]
    return np.array([north, east, down]).T


def pc_align(argv, fault):
    from _standin import _apply_fault, pc_align_args

    args = pc_align_args(argv)
    _apply_fault(fault)
    spec = settings()
    cols = read_csv(args.source, args.csv_format or "1:lat 2:lon 3:height_above_datum")
    x, y = lonlat_to_xy(cols["lon"], cols["lat"])
    mola = _heights(cols)
    offset = np.array(spec["offset"], float)
    observed = float(spec["observed_displacement"] or np.linalg.norm(offset))
    # ICP drops source points farther than --max-displacement: with too small a value it
    # recovers only part of the shift (and says so)
    found = 1.0 if args.max_displacement < 0 or observed <= args.max_displacement else \
        args.max_displacement / observed
    correction = -offset * found
    beg = np.abs(dem_heights(x, y, spec) - mola)
    end = np.abs(dem_heights(x, y, spec, tuple(correction)) - mola)
    prefix = args.output_prefix
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    for line in _stats_lines("Input", beg):
        print(line)
    lon0, lat0 = float(np.mean(cols["lon"])), float(np.mean(cols["lat"]))
    ned_to_ecef = _ned_to_ecef(lon0, lat0)
    # the source (MOLA) moves onto the reference (CTX), i.e. by +offset * found
    move = offset * found
    ned = np.array([move[1], move[0], -move[2]])
    xyz = ned_to_ecef @ ned
    transform = np.eye(4)
    transform[:3, 3] = xyz
    inverse = np.eye(4)
    inverse[:3, 3] = -xyz
    for name, matrix in (("transform", transform), ("inverse-transform", inverse)):
        with open(f"{prefix}-{name}.txt", "w") as f:
            f.write("\n".join(" ".join(f"{v:.17g}" for v in row) for row in matrix) + "\n")
    for line in _stats_lines("Output", end):
        print(line)
    fmt = lambda v: "Vector3(" + ",".join(f"{c:.8g}" for c in v) + ")"  # noqa: E731
    print("Alignment transform (origin is planet center):")
    print("\n".join(" ".join(f"{v:.16g}" for v in row) for row in transform))
    print(f"Translation vector (Cartesian, meters): {fmt(xyz)}")
    print(f"Translation vector (North-East-Down, meters): {fmt(ned)}")
    print(f"Translation vector magnitude (meters): {np.linalg.norm(xyz):.8g}")
    print("Maximum displacement of points between the source cloud with any initial transform applied "
          f"to it and the source cloud after alignment to the reference: {observed:.8g} m")
    if 0 < args.max_displacement < observed:
        print("Warning: The input --max-displacement value is smaller than the final observed displacement. "
              "It may be advised to increase the former and rerun the tool.")
    print("Transform scale - 1 = 0")
    print("Euler angles (degrees): Vector3(0,0,0)")
    print("Euler angles (North-East-Down, degrees): Vector3(0,0,0)")
    print("Axis of rotation and angle (degrees): Vector3(nan,nan,nan) 0")
    header = "# " + ",".join(n for n, _ in sorted(
        ((item.split(":")[1], int(item.split(":")[0])) for item in (args.csv_format or "").split()),
        key=lambda t: t[1])) + ",error (meters)"
    names = [item.split(":")[1] for item in (args.csv_format or "").split()]
    for which, errors in (("beg", beg), ("end", end)):
        print(f"Writing: {prefix}-{which}_errors.csv")
        with open(f"{prefix}-{which}_errors.csv", "w") as f:
            f.write(header + "\n# D_MARS\n")
            for i in range(len(errors)):
                values = ",".join(f"{cols[n][i]:.16g}" for n in names)
                f.write(f"{values},{errors[i]:.16g}\n")
    if args.save_inv_transformed_reference_points:
        import rasterio
        from _standin import _write_tif

        path = f"{prefix}-trans_reference.tif"
        _write_tif(path, 4, R_MARS, georef=False, dtype="float64")
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(CTXDASK_STANDIN_ALIGNED=",".join(f"{v:.17g}" for v in correction))


# ------------------------------------------------------------------ dem_geoid
def dem_geoid(argv, fault):
    import rasterio
    from _standin import _apply_fault, _asp_parser, _require_raster
    from pyproj import Transformer

    parser = _asp_parser("dem_geoid")
    parser.add_argument("--geoid", default="EGM96")
    parser.add_argument("--geoid-path", default="")
    parser.add_argument("-o", "--output-prefix", default="")
    parser.add_argument("--double", action="store_true")
    parser.add_argument("--reverse-adjustment", action="store_true")
    parser.add_argument("--nodata-value", type=float, default=-32768)
    parser.add_argument("dem")
    args = parser.parse_args(argv)
    if args.geoid.upper() != "MOLA":
        print(f"Error: the Mars areoid is MOLA, not {args.geoid}", file=sys.stderr)
        sys.exit(1)
    _require_raster(args.dem, 1)
    prefix = args.output_prefix or os.path.splitext(args.dem)[0]
    _apply_fault(fault)
    with rasterio.open(args.dem) as src:
        heights = src.read(1).astype(np.float64)
        nodata = src.nodata if src.nodata is not None else args.nodata_value
        rows, cols = np.mgrid[0:src.height, 0:src.width]
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel())
        to_lonlat = Transformer.from_crs(src.crs, "+proj=longlat +R=3396190 +no_defs", always_xy=True)
        lon, lat = to_lonlat.transform(xs, ys)
        correction = areoid(np.reshape(lon, heights.shape), np.reshape(lat, heights.shape))
        valid = heights != nodata
        sign = -1.0 if args.reverse_adjustment else 1.0
        out = np.where(valid, heights - sign * correction, nodata).astype("float64" if args.double else "float32")
        _write(f"{prefix}-adj.tif", out, src.transform, nodata)


PROGRAMS = {"point2dem": point2dem, "pc_align": pc_align, "dem_geoid": dem_geoid}


def main(name: str) -> None:
    """Entry point: the DEM stand-ins replace the placeholder ones of ``_standin``."""
    import warnings

    import _standin

    warnings.simplefilter("ignore")  # rasterio's NotGeoreferencedWarning about point clouds
    _standin.PROGRAMS.update(PROGRAMS)
    _standin.main(name)
