"""Stand-ins for ASP's point2dem, pc_align and dem_geoid, built from ASP's source.

NOT THE REAL PROGRAMS. The command lines, validity checks, messages, exit
codes, output names, band counts and grids follow NeoGeographyToolkit/
StereoPipeline (HEAD 55bf46022; file:line below); the pixels come from the
synthetic terrain of :mod:`_terrain`, so that QA code can be checked against
values computed independently.

``point2dem`` (src/asp/Tools/point2dem.cc, src/asp/Core/PointToDem*.cc)
    Clouds are the inputs with three or more bands, the others are textures,
    which must follow the clouds one per cloud with the cloud's dimensions
    (PointToDem.cc:53-130). Projection: ``--t_srs``, else the cloud's own if
    projected, else a local stereographic one at the median lon/lat
    (point2dem.cc:583-622, CartographyUtils.cc:29-48). Grid size: ``--tr``
    (alias ``--dem-spacing``/``-s``), else four times the estimated point
    spacing (point2dem.cc:202, OrthoRasterizer.cc:574-616, 897-902); grid
    nodes at integer multiples of it, the box snapped outwards
    (OrthoRasterizer.cc:634-660, CartographyUtils.cc:58-61), pixel corners
    half a node spacing out (PointToDem2.cc:485-491). A node takes the
    Gaussian-weighted mean of the cloud points closer than max(grid size,
    point spacing) (OrthoRasterizer.cc:700-715), or nodata (default -1e6,
    point2dem.cc:137). Writes ``<prefix>-DEM.tif`` (unless ``--no-dem``),
    ``-IntersectionErr.tif`` with ``--errorimage`` only for 4- or 6-band
    clouds (a 3-band cloud gets a message and exit 0, PointToDem2.cc:301-343)
    and ``-DRG.tif`` with ``--orthoimage``. The prefix defaults to the cloud's
    name without ``-PC.<ext>`` or its extension (point2dem.cc:298-304,
    PointUtils.cc:808-827).
``pc_align`` (src/asp/Tools/pc_align.cc, src/asp/PcAlign/pc_align_utils.cc)
    Options as pc_align.cc:96-375; writes ``-transform.txt``,
    ``-inverse-transform.txt`` (:447-458), ``-beg_errors.csv`` and
    ``-end_errors.csv`` (:456-459, header :480-487), ``-iterationInfo.csv``
    (ICP methods, docs/tools/pc_align.rst:703-708; its columns here are the
    stand-in's own), ``-trans_reference.tif`` with
    ``--save-inv-transformed-reference-points`` and ``-trans_source.<ext>``
    with ``--save-transformed-source-points`` (:1442-1454). A DEM as the
    reference gives a 3-band cloud with the DEM's georeference and no nodata
    (pc_align_utils.cc:462-486); a cloud keeps its 3, 4 or 6 bands (:488-500).
``dem_geoid`` (src/asp/Tools/dem_geoid.cc)
    Options as dem_geoid.cc:201-256 (``--nodata_value`` with an underscore);
    without ``-o`` the prefix is the DEM's file *stem*, so the output lands in
    the current folder (:248-249); writes ``<prefix>-adj.tif`` (:489). Mars
    DEMs are recognised by datum name or radius and take only ``--geoid MOLA``
    or none (:321-382).

The terrain: a stereo cloud whose valid points are all one point (the
placeholder clouds of the stereo stand-ins and of :mod:`_dem_testing`) stands
for the stereo cloud of the :mod:`_terrain` surface, on images map-projected in
the terrain's frame. A cloud with real points (pc_align's clouds made from a
DEM) is gridded from its points. pc_align recovers the terrain's ``offset`` and
tags the clouds it moves with the correction (``CTXDASK_STANDIN_ALIGNED``),
which point2dem applies to the surface.
"""

from __future__ import annotations

import math
import os
import sys

import _asp_options as asp_options
import _terrain as terrain
import numpy as np
from _asp_options import ArgumentErr as ArgumentError
from _asp_options import fail

#: point2dem's default --nodata-value (src/asp/Tools/point2dem.cc:137)
NODATA = -1e6
#: exp(-s (d/grid)^2) weights, s = -log(0.25) (point2dem.cc:197-201)
SIGMA = -math.log(0.25)
ROUNDING = 1.0 / 1024  # --rounding-error (point2dem.cc:56, 187)
DATUMS = {"d_mars": terrain.R_MARS, "mars": terrain.R_MARS}
ALIGNED_TAG = "CTXDASK_STANDIN_ALIGNED"


def fail_other(message: str) -> None:
    """``ASP_STANDARD_CATCHES`` for an exception other than ``ArgumentErr`` (Macros.h:29-37): stderr, 1."""
    print(f"\n\nERROR: {message}\n", file=sys.stderr, flush=True)
    sys.exit(1)


def _usage(prog: str, usage: str) -> str:
    return f"Usage: {prog} {usage}\n\n  [ASP {asp_options.ASP_VERSION}]\n"


def parse_options(prog: str, argv: list[str], table: dict[str, int], positional: list[str] | None, usage: str,
                  defaults: dict, kinds: dict) -> tuple[dict, list[str]]:
    """:func:`_asp_options.parse`, then the typed values boost stores (``po::value<T>``, ``bool_switch``)."""
    table = {**table, **asp_options.GDAL_WRITE, "cog": 0}  # vw::GdalWriteOptionsDescription
    values, files = asp_options.parse(prog, argv, table, positional, usage)
    tokens = {spec.partition(",")[0]: n for spec, n in table.items()}
    options = {name: (False if n == 0 else defaults.get(name)) for name, n in tokens.items()}
    for key, words in values.items():
        if tokens[key] == 0:
            options[key] = True
            continue
        try:
            typed = [kinds.get(key, str)(w) for w in words]
        except ValueError:
            fail(f"Error parsing input:\nthe argument ('{' '.join(words)}') for option '--{key}' is invalid\n"
                 f"{_usage(prog, usage)}")
        options[key] = typed[0] if tokens[key] == 1 else tuple(typed)
    options["_given"] = set(values)
    return options, files


# ------------------------------------------------------------------ geometry
def _lonlat_to_ecef(lon, lat, radius):
    lo, la = np.radians(lon), np.radians(lat)
    return np.stack([radius * np.cos(la) * np.cos(lo), radius * np.cos(la) * np.sin(lo), radius * np.sin(la)])


def _ecef_to_lonlat(xyz):
    x, y, z = xyz
    r = np.sqrt(x * x + y * y + z * z)
    return np.degrees(np.arctan2(y, x)), np.degrees(np.arcsin(np.clip(z / np.where(r > 0, r, 1), -1, 1))), r


def _transformer(src, dst):
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def _correction(tags) -> np.ndarray:
    tag = tags.get(ALIGNED_TAG)
    return np.array([float(v) for v in tag.split(",")]) if tag else np.zeros(3)


def _interquartile_mean(values: np.ndarray) -> float:
    """OrthoRasterizer.cc:52-69."""
    v = np.sort(values[np.isfinite(values)])
    if not v.size:
        return 0.0
    begin = min(int(math.floor(0.25 * v.size)), v.size - 1)
    end = max(begin + 1, min(int(math.ceil(0.75 * v.size)), v.size))
    return float(v[begin:end].mean())


def _spacing(px: np.ndarray, py: np.ndarray, valid: np.ndarray) -> float:
    """Point spacing of an organised cloud: projected distances to the next column and row."""
    along = [np.hypot(np.diff(px, axis=a), np.diff(py, axis=a))[valid[1:, :] & valid[:-1, :] if a == 0 else
                                                                 valid[:, 1:] & valid[:, :-1]] for a in (1, 0)]
    # ten significant digits: the lon/lat round trip of a regular lattice is not exact
    return float(f"{max(_interquartile_mean(d) for d in along):.10g}")


class Cloud:
    """A point cloud as point2dem reads it: projected points, their heights and extra bands."""

    def __init__(self, path: str):
        import rasterio

        self.path = path
        with rasterio.open(path) as src:
            self.bands, self.shape = src.count, (src.height, src.width)
            self.crs = src.crs
            self.correction = _correction(src.tags())
            # a doomed pair's correlation (the parallel_stereo stand-in's tag, _terrain.doomed)
            self.doomed = src.tags().get(terrain.DOOMED_TAG) == "1"
            data = src.read().astype(np.float64)
        xyz = data[:3]
        self.valid = np.any(xyz != 0, axis=0) & np.all(np.isfinite(xyz), axis=0)
        points = xyz[:, self.valid]
        self.synthetic = points.shape[1] < 2 or np.ptp(points, axis=1).max() == 0
        self.error = data[3] if self.bands == 4 else (np.linalg.norm(data[3:6], axis=0) if self.bands == 6 else None)
        if self.synthetic:
            self._terrain_points()
        else:
            self.lon, self.lat, r = _ecef_to_lonlat(xyz)
            self.height = r - terrain.R_MARS
            self.density = 1.0

    def _terrain_points(self) -> None:
        # the stereo cloud of the terrain (placeholder pixels): its nodes, moved by any alignment
        spec = terrain.settings()
        x, y, _ = terrain.grid(spec)
        xx, yy = np.meshgrid(x + self.correction[0], y + self.correction[1])
        self.lon, self.lat = np.degrees(xx / terrain.R_MARS), np.degrees(yy / terrain.R_MARS)
        self.valid = ~terrain.hole_mask(spec)
        if self.doomed:
            self.valid &= ~terrain.doomed_mask(spec)
        self.height = None
        self.density = terrain.DENSITY
        if self.crs is None:  # stereo on images map-projected in the terrain's frame
            from rasterio.crs import CRS

            self.crs = CRS.from_string(terrain.CRS)


# ------------------------------------------------------------------ point2dem
POINT2DEM_USAGE = "[options] <point-clouds> [ --orthoimage <textures> ]"
#: point2dem.cc:58-219 (option -> tokens)
POINT2DEM = {name: 1 for name in (
    "x-offset", "y-offset", "z-offset", "t_srs", "dem-spacing,s", "tr", "datum", "reference-spheroid,r",
    "semi-major-axis", "semi-minor-axis", "utm", "proj-lon", "proj-lat", "proj-scale", "false-easting",
    "false-northing", "nodata-value", "output-prefix,o", "output-filetype,t", "dem-hole-fill-len",
    "orthoimage-hole-fill-len", "orthoimage-hole-fill-extra-len", "max-valid-triangulation-error", "erode-length",
    "csv-format", "csv-srs", "filter", "rounding-error", "search-radius-factor", "gaussian-sigma-factor",
    "default-grid-size-multiplier", "csv-proj4")} | {name: 0 for name in (
    "gdal-tap", "sinusoidal", "mercator", "transverse-mercator", "orthographic", "stereographic",
    "oblique-stereographic", "gnomonic", "lambert-azimuthal", "geographic", "auto-proj-center", "use-alpha",
    "normalized,n", "orthoimage", "errorimage", "scalar-error", "remove-outliers", "use-tukey-outlier-removal",
    "propagate-errors", "no-dem", "input-is-projected", "copc-read-all")} | {
    "t_projwin": 4, "remove-outliers-params": 2, "max-output-size": 2, "median-filter-params": 2, "copc-win": 4}
POINT2DEM_DEFAULTS = {
    "t_srs": "", "dem-spacing": "", "tr": "", "datum": "", "reference-spheroid": "", "proj-lon": math.nan,
    "proj-lat": math.nan, "nodata-value": NODATA, "output-prefix": "", "output-filetype": "tif",
    "dem-hole-fill-len": 0, "orthoimage-hole-fill-len": 0, "orthoimage-hole-fill-extra-len": 0, "erode-length": 0,
    "remove-outliers-params": (75.0, 3.0), "median-filter-params": (0.0, 0.0), "csv-srs": "", "csv-proj4": "",
    "default-grid-size-multiplier": 4.0}
POINT2DEM_KINDS = {name: float for name in (
    "x-offset", "y-offset", "z-offset", "semi-major-axis", "semi-minor-axis", "proj-lon", "proj-lat", "proj-scale",
    "false-easting", "false-northing", "nodata-value", "max-valid-triangulation-error", "rounding-error",
    "search-radius-factor", "gaussian-sigma-factor", "default-grid-size-multiplier", "t_projwin",
    "remove-outliers-params", "median-filter-params", "copc-win")} | {name: int for name in (
    "utm", "dem-hole-fill-len", "orthoimage-hole-fill-len", "orthoimage-hole-fill-extra-len", "erode-length",
    "max-output-size")}


def _split_inputs(files: list[str], ortho: bool) -> tuple[list[str], list[str]]:
    """parse_input_clouds_textures (PointToDem.cc:53-130)."""
    import rasterio

    if not files:
        raise ArgumentError("Missing input point clouds.")
    for f in files:
        if f.startswith("-"):
            raise ArgumentError(f"Unrecognized option: {f}.")
    for f in files:
        if not os.path.exists(f):
            raise ArgumentError(f"File does not exist: {f}.")
    if ortho and len(files) <= 1:
        raise ArgumentError("Missing input texture files.")
    if ortho and len(files) % 2:
        raise ArgumentError("There must be as many texture files as input point clouds.")
    clouds, textures, sizes = [], [], {}
    for f in files:
        with rasterio.open(f) as src:
            sizes[f] = (src.width, src.height)
            (clouds if src.count >= 3 else textures).append(f)
    if not clouds:
        raise ArgumentError("No valid point cloud files were provided.")
    if not ortho and textures:
        raise ArgumentError("No ortho image was requested, yet texture files were passed as inputs.")
    if ortho:
        if len(clouds) != len(textures):
            raise ArgumentError("There must be as many input point clouds as texture files to be able to "
                                "create orthoimages.")
        for c, t in zip(clouds, textures):
            if sizes[c] != sizes[t]:
                raise ArgumentError(f"Point cloud {c} and texture file {t} do not have the same dimensions.")
    return clouds, textures


def _check_point2dem(o: dict) -> list[float]:
    """The checks of handle_arguments (point2dem.cc:246-356); returns the DEM spacings."""
    if "t_srs" in o["_given"] and not o["t_srs"]:
        raise ArgumentError("The value of --t_srs is empty. Then it must not be set at all.")
    if o["median-filter-params"][0] < 0 or o["median-filter-params"][1] < 0:
        raise ArgumentError("The parameters for median-based filtering must be non-negative.")
    if o["erode-length"] < 0:
        raise ArgumentError("Erode length must be non-negative.")
    if o["dem-spacing"] and o["tr"]:
        raise ArgumentError("The DEM spacing was specified twice.")
    try:
        spacings = [float(v) for v in (o["dem-spacing"] or o["tr"]).replace(",", " ").split()]
    except ValueError:
        raise ArgumentError(f"Invalid DEM spacing: {o['dem-spacing'] or o['tr']}") from None
    if any(v <= 0 for v in spacings):
        raise ArgumentError("The DEM spacing must be positive.")
    for name in ("dem-hole-fill-len", "orthoimage-hole-fill-len", "orthoimage-hole-fill-extra-len"):
        if o[name] < 0:
            raise ArgumentError(f"The value of --{name} must be non-negative.")
    if not o["orthoimage"] and o["orthoimage-hole-fill-len"] > 0:
        raise ArgumentError("The value of --orthoimage-hole-fill-len is positive, but orthoimage generation "
                            "was not requested.")
    pct, factor = o["remove-outliers-params"]
    if pct <= 0.0 or pct > 100.0 or factor <= 0.0:
        raise ArgumentError("Invalid values were provided for outlier removal params.")
    if math.isnan(o["proj-lon"]) != math.isnan(o["proj-lat"]):
        raise ArgumentError("Must set both or neither of --proj-lon and --proj-lat.")
    if o["csv-srs"] and o["csv-proj4"]:
        raise ArgumentError("Cannot specify both --csv-srs and --csv-proj4.")
    datum, spheroid = o["datum"].lower(), o["reference-spheroid"].lower()
    if datum and spheroid:
        raise ArgumentError("Both --datum and --reference-spheroid were specified.")
    o["datum"] = datum or spheroid
    return spacings or [0.0]


def _output_crs(o: dict, clouds: list[Cloud]):
    """point2dem.cc:583-622: --t_srs, else the cloud's projected georef, else auto (stereographic)."""
    from rasterio.crs import CRS

    t_srs = o["t_srs"]
    if t_srs and t_srs.lower() != "auto":
        try:
            return CRS.from_user_input(t_srs)
        except Exception as exc:  # noqa: BLE001 - GDAL's message
            fail_other(f"Failed to parse: \"{t_srs}\". {exc}")
    first = clouds[0].crs
    if not t_srs and first is not None and first.is_projected:
        return first
    lon = float(np.median(np.concatenate([c.lon[c.valid] for c in clouds])))
    lat = float(np.median(np.concatenate([c.lat[c.valid] for c in clouds])))
    if not math.isnan(o["proj-lon"]):
        lon, lat = o["proj-lon"], o["proj-lat"]
    if o["geographic"]:
        return CRS.from_string(terrain.LONLAT)
    proj = "sinu" if o["sinusoidal"] else "ortho" if o["orthographic"] else "stere"
    return CRS.from_string(f"+proj={proj} +lat_0={lat:.6f} +lon_0={lon:.6f} +k=1 +x_0=0 +y_0=0 "
                           f"+R={terrain.R_MARS:.0f} +units=m +no_defs")


def _grid(o: dict, xs: np.ndarray, ys: np.ndarray, spacing: float):
    """The snapped node box (OrthoRasterizer.cc:634-660, 844-865): node x, node y, affine transform."""
    from rasterio.transform import from_origin

    lo = np.array([xs.min(), ys.min()])
    hi = np.array([xs.max(), ys.max()])
    if o["t_projwin"]:
        x0, y0, x1, y1 = o["t_projwin"]
        lo, hi = np.array([min(x0, x1), min(y0, y1)]), np.array([max(x0, x1), max(y0, y1)])
        if not o["gdal-tap"]:
            lo, hi = lo + spacing / 2, hi - spacing / 2
    # snapBBox3ToGrid; the 1e-9 forgives the float noise of the lon/lat round trip of the points
    lo, hi = spacing * np.floor(lo / spacing + 1e-9), spacing * np.ceil(hi / spacing - 1e-9)
    tap = 0.5 * spacing if o["gdal-tap"] else 0.0
    cols = int(round((hi[0] - lo[0]) / spacing)) + (0 if o["gdal-tap"] else 1)
    rows = int(round((hi[1] - lo[1]) / spacing)) + (0 if o["gdal-tap"] else 1)
    nx = lo[0] + tap + np.arange(cols) * spacing
    ny = hi[1] - tap - np.arange(rows) * spacing
    return nx, ny, from_origin(nx[0] - spacing / 2, ny[0] + spacing / 2, spacing, spacing)


def _write(path: str, data: np.ndarray, crs, transform, nodata, dtype="float32", tags=None) -> None:
    import rasterio

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    data = data[None] if data.ndim == 2 else data
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=dtype,
                   tiled=True, blockxsize=256, blockysize=256, compress="lzw")
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype))
        dst.update_tags(CTXDASK_STANDIN="written by a ctxdask test stand-in, not by ASP", **(tags or {}))


def _partial(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)


def point2dem(argv, fault):
    from _standin import _apply_fault
    from scipy.spatial import cKDTree

    o, files = parse_options("point2dem", argv, POINT2DEM, None, POINT2DEM_USAGE, POINT2DEM_DEFAULTS,
                             POINT2DEM_KINDS)
    try:
        spacings = _check_point2dem(o)
        clouds_files, textures = _split_inputs(files, o["orthoimage"])
        if o["datum"] and o["datum"] not in DATUMS:
            raise ArgumentError(f"this stand-in models Mars (D_MARS) only, not datum {o['datum']}.")
        clouds = [Cloud(f) for f in clouds_files]
        if not o["datum"] and all(c.crs is None for c in clouds):
            raise ArgumentError("A datum, projection, or semi-axes must be set.")
    except ArgumentError as err:
        fail(str(err))
    prefix = o["output-prefix"]
    if not prefix:
        name = clouds_files[0]
        prefix = name[:name.rfind("-PC.")] if "-PC." in name else os.path.splitext(name)[0]
    _apply_fault(fault)
    crs = _output_crs(o, clouds)
    spec = terrain.settings()
    to_out = _transformer(terrain.LONLAT, crs)
    points = []
    for c in clouds:
        px, py = (np.asarray(v).reshape(c.shape if not c.synthetic else c.valid.shape)
                  for v in to_out.transform(c.lon, c.lat))
        points.append((c, px, py, _spacing(px, py, c.valid) / c.density))
    default = max(p[3] for p in points)
    if any(c.bands not in (4, 6) for c in clouds):
        print("The point cloud files must have an equal number of channels which must be 4 or 6 to be able "
              "to remove outliers.")
    xs = np.concatenate([px[c.valid] for c, px, _, _ in points])
    ys = np.concatenate([py[c.valid] for c, _, py, _ in points])
    tree = cKDTree(np.column_stack([xs, ys]))
    for index, requested in enumerate(spacings):
        spacing = requested or default * o["default-grid-size-multiplier"]
        if requested and default and requested < default:
            if requested < 0.001 * default:
                fail("The user-provided grid size (--tr) is so small that likely it is in degrees, while "
                     "meters are expected.")
            print(f"Warning: The user-provided grid size (--tr) is {requested}, which is smaller than the "
                  f"auto-estimated grid size of {default}. Likely the DEM will not be accurate.")
        out = prefix if index == 0 else f"{prefix}_{index}"
        _rasterize(o, out, clouds, points, textures, tree, crs, spacing, max(spacing, default), spec, fault)


def _rasterize(o, prefix, clouds, points, textures, tree, crs, spacing, radius, spec, fault) -> None:
    """rasterize_cloud (PointToDem2.cc:467-544) for one grid size."""
    import rasterio

    nx, ny, transform = _grid(o, np.concatenate([p[1][p[0].valid] for p in points]),
                              np.concatenate([p[2][p[0].valid] for p in points]), spacing)
    gx, gy = np.meshgrid(nx, ny)
    k = int(min(len(tree.data), max(1, math.ceil(math.pi * (radius / max(points[0][3] * points[0][0].density,
                                                                             1e-9) + 1) ** 2)), 64))
    dist, idx = tree.query(np.column_stack([gx.ravel(), gy.ravel()]), k=k, distance_upper_bound=radius)
    dist, idx = dist.reshape(gx.size, -1), idx.reshape(gx.size, -1)
    near = dist < radius * (1 - 1e-9)  # strictly inside; forgive the float noise of the lon/lat round trip
    weights = np.where(near, np.exp(-SIGMA * (np.where(near, dist, 0) / spacing) ** 2), 0.0)
    valid = near.any(axis=1).reshape(gx.shape)
    cloud = clouds[0]
    tex_crs_back = _transformer(crs, terrain.LONLAT)
    lon, lat = tex_crs_back.transform(gx, gy)
    # the node in the terrain's frame, before any alignment moved the cloud
    ex = np.radians(lon) * terrain.R_MARS - cloud.correction[0]
    ey = np.radians(lat) * terrain.R_MARS - cloud.correction[1]

    def gridded(values: np.ndarray) -> np.ndarray:
        flat = np.concatenate([v[c.valid] for v, (c, *_) in zip(values, points)])
        safe = np.where(idx < len(flat), idx, 0)
        total = weights.sum(axis=1)
        mean = (weights * flat[safe]).sum(axis=1) / np.where(total > 0, total, 1)
        return mean.reshape(gx.shape)

    def finish(data: np.ndarray, rounded: bool) -> np.ndarray:
        if rounded:
            data = ROUNDING * np.round(data / ROUNDING)
        return np.where(valid, data, o["nodata-value"]).astype(np.float32)

    written = []
    if not o["no-dem"]:
        if cloud.synthetic:
            heights = terrain.dem_heights(ex + cloud.correction[0], ey + cloud.correction[1], spec,
                                          tuple(cloud.correction))
        else:
            heights = gridded([c.height for c in clouds])
        path = f"{prefix}-DEM.{o['output-filetype']}"
        print(f"Writing: {path}")
        _write(path, finish(heights, True), crs, transform, o["nodata-value"])
        written.append(path)
        print(f"Percentage of valid pixels: {100.0 * valid.mean():.8g}%")
    if o["errorimage"]:
        if all(c.bands in (4, 6) for c in clouds) or o["scalar-error"]:
            error = (terrain.error_ramp(ex, spec) * (terrain.DOOMED_ERROR if cloud.doomed else 1.0)
                     if cloud.synthetic else gridded([c.error for c in clouds]))
            path = f"{prefix}-IntersectionErr.{o['output-filetype']}"
            print(f"Writing: {path}")
            _write(path, finish(error, True), crs, transform, o["nodata-value"])
            written.append(path)
        else:  # not an error: the orthoimage is still written (PointToDem2.cc:336-341)
            print("The point cloud files must have an equal number of channels which must be 4 or 6 to be "
                  "able to process the intersection error.")
    if o["orthoimage"]:
        if cloud.synthetic:
            image = terrain.ortho(ex, ey)
        else:
            texture = []
            for t in textures:
                with rasterio.open(t) as src:
                    texture.append(src.read(1).astype(np.float64))
            image = gridded(texture)
        path = f"{prefix}-DRG.{o['output-filetype']}"
        print(f"Writing: {path}")
        _write(path, finish(image, False), crs, transform, o["nodata-value"])
        written.append(path)
    if fault == "partial" and written:
        _partial(written[0])


# ------------------------------------------------------------------- pc_align
PC_ALIGN_USAGE = "--max-displacement arg [other options] <reference cloud> <source cloud> -o <output prefix>"
#: pc_align.cc:96-206 (option -> tokens)
PC_ALIGN = {name: 1 for name in (
    "initial-transform", "num-iterations", "diff-rotation-error", "diff-translation-error", "max-displacement",
    "outlier-ratio", "max-num-reference-points", "max-num-source-points", "alignment-method", "csv-format",
    "csv-srs", "datum", "semi-major-axis", "semi-minor-axis", "output-prefix,o", "initial-ned-translation",
    "initial-rotation-angle", "initial-transform-from-hillshading", "hillshade-command", "hillshade-options",
    "ipfind-options", "ipmatch-options", "match-file", "nuth-options", "fgr-options", "csv-proj4")} | {
    name: 0 for name in ("highest-accuracy", "compute-translation-only", "save-transformed-source-points",
                         "save-inv-transformed-reference-points", "no-dem-distances", "skip-shared-box-estimation",
                         "ref-copc-read-all", "src-copc-read-all")} | {
    "initial-transform-ransac-params": 2, "ref-copc-win": 4, "src-copc-win": 4}
PC_ALIGN_DEFAULTS = {
    "initial-transform": "", "num-iterations": 1000, "max-displacement": 0.0, "alignment-method": "point-to-plane",
    "csv-format": "", "csv-srs": "", "datum": "", "semi-major-axis": 0.0, "semi-minor-axis": 0.0,
    "output-prefix": "", "csv-proj4": ""}
PC_ALIGN_KINDS = {name: float for name in (
    "diff-rotation-error", "diff-translation-error", "max-displacement", "outlier-ratio", "semi-major-axis",
    "semi-minor-axis", "initial-rotation-angle", "initial-transform-ransac-params", "ref-copc-win",
    "src-copc-win")} | {name: int for name in ("num-iterations", "max-num-reference-points", "max-num-source-points")}


METHODS = ("point-to-plane", "point-to-point", "similarity-point-to-point", "similarity-point-to-plane", "nuth",
           "fgr", "least-squares", "similarity-least-squares")


def cloud_type(path: str) -> str:
    """asp::get_cloud_type (PointUtils.cc:1009-1029)."""
    import rasterio

    lower = path.lower()
    if lower.endswith((".csv", ".txt")):
        return "CSV"
    if lower.endswith((".las", ".laz")):
        return "LAS"
    with rasterio.open(path) as src:
        if src.count == 1 and src.crs is not None:
            return "DEM"
        if src.count >= 3:
            return "PC"
    raise ArgumentError(f"File: {path} is neither a point cloud nor a DEM.")


def _check_pc_align(o: dict, pos: dict) -> None:
    """handle_arguments (pc_align.cc:217-375)."""
    ref, src = pos.get("reference", ""), pos.get("source", "")
    if not ref and not src and not o["output-prefix"]:
        raise ArgumentError("No input arguments provided.")
    if not ref or not src:
        raise ArgumentError("Missing input files.")
    if not o["output-prefix"]:
        raise ArgumentError("Missing output prefix.")
    if o["max-displacement"] == 0.0:
        raise ArgumentError("The max-displacement option was not set. Use -1 if it is desired not to use it.")
    if o["num-iterations"] < 0:
        raise ArgumentError("The number of iterations must be non-negative.")
    a, b = o["semi-major-axis"], o["semi-minor-axis"]
    if (a != 0) != (b != 0):
        raise ArgumentError("One of the semi-major or semi-minor axes was specified, but not the other one.")
    if o["datum"] and a and b:
        raise ArgumentError("Both the datum string and datum semi-axes were specified. At most one needs to be set.")
    if o["csv-srs"] and o["csv-proj4"]:
        raise ArgumentError("Cannot specify both --csv-srs and --csv-proj4.")
    if o["alignment-method"] not in METHODS:
        raise ArgumentError("Only the following alignment methods are supported: point-to-plane, point-to-point, "
                            "similarity-point-to-point, similarity-point-to-plane, fgr, least-squares, and "
                            "similarity-least-squares.")
    for path in (ref, src):
        if not os.path.exists(path):
            raise ArgumentError(f"File does not exist: {path}.")
    if cloud_type(src) != "CSV":
        raise ArgumentError(f"this stand-in aligns a CSV source (MOLA shots) only, not {src}")
    if cloud_type(src) == "CSV" and not (o["datum"] or o["csv-srs"] or a or "radius" in o["csv-format"]):
        raise ArgumentError("A datum or --csv-srs is needed to interpret the CSV file " + src)


def read_csv(path: str, csv_format: str) -> dict[str, np.ndarray]:
    """Columns of a pc_align CSV by ``--csv-format`` (``'1:lon 2:lat 3:radius_km'``)."""
    spec = {}
    for item in (csv_format or "1:lat 2:lon 3:height_above_datum").split():
        index, _, name = item.partition(":")
        spec[name] = int(index) - 1
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                parts = line.replace(",", " ").split()
                rows.append([float(parts[i]) for i in spec.values()])
    data = np.array(rows, dtype=np.float64).reshape(-1, len(spec))
    return {name: data[:, k] for k, name in enumerate(spec)}


def _heights(cols: dict) -> np.ndarray:
    if "radius_km" in cols:
        return cols["radius_km"] * 1000.0 - terrain.R_MARS
    if "radius_m" in cols:
        return cols["radius_m"] - terrain.R_MARS
    return cols["height_above_datum"]


def _stats_lines(label: str, errors: np.ndarray) -> list[str]:
    """calc_stats (pc_align.cc:378-424)."""
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


def _trans_reference(path: str, out: str, shift_xyz: np.ndarray, correction: np.ndarray) -> None:
    """save_trans_point_cloud (pc_align_utils.cc:443-500) under the inverse transform (a translation)."""
    import rasterio

    kind = cloud_type(path)
    with rasterio.open(path) as src:
        tags, crs, transform = src.tags(), src.crs, src.transform
        if kind == "DEM":
            heights = src.read(1, masked=True).astype(np.float64)
            rows, cols = np.mgrid[0:src.height, 0:src.width]
            xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
            lon, lat = _transformer(crs, terrain.LONLAT).transform(xs, ys)
            xyz = _lonlat_to_ecef(np.reshape(lon, heights.shape), np.reshape(lat, heights.shape),
                                  terrain.R_MARS + heights.filled(0.0))
            valid = ~np.ma.getmaskarray(heights)
            data = np.where(valid, xyz - shift_xyz[:, None, None], 0.0)  # masked DEM pixels: (0, 0, 0)
        else:
            data = src.read().astype(np.float64)
            if src.count not in (3, 4, 6):
                raise ArgumentError(f"The point cloud from {path} has {src.count} channels, which is not supported.")
            valid = np.any(data[:3] != 0, axis=0)
            data[:3] = np.where(valid, data[:3] - shift_xyz[:, None, None], 0.0)
    total = _correction(tags) + correction
    print(f"Writing: {out}")
    _write(out, data, crs, transform if crs is not None else None, None, dtype="float64",
           tags={ALIGNED_TAG: ",".join(f"{v:.17g}" for v in total)})


def pc_align(argv, fault):
    from _standin import _apply_fault

    o, files = parse_options("pc_align", argv, PC_ALIGN, ["reference", "source"], PC_ALIGN_USAGE,
                             PC_ALIGN_DEFAULTS, PC_ALIGN_KINDS)
    pos = dict(zip(("reference", "source"), files))
    try:
        _check_pc_align(o, pos)
        cloud_type(pos["reference"])
    except ArgumentError as err:
        fail(str(err))
    _apply_fault(fault)
    prefix = o["output-prefix"]
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    spec = terrain.settings()
    cols = read_csv(pos["source"], o["csv-format"])
    lon_deg = (cols["lon"] + 180.0) % 360.0 - 180.0
    x, y = np.radians(lon_deg) * terrain.R_MARS, np.radians(cols["lat"]) * terrain.R_MARS
    mola = _heights(cols)
    offset = np.array(spec["offset"], float)
    observed = float(spec["observed_displacement"] or np.linalg.norm(offset))
    disp = o["max-displacement"]
    # ICP drops source points farther than --max-displacement: too small a value recovers only part
    found = 1.0 if disp < 0 or observed <= disp else disp / observed
    correction = -offset * found
    beg = np.abs(terrain.dem_heights(x, y, spec) - mola)
    end = np.abs(terrain.dem_heights(x, y, spec, tuple(correction)) - mola)
    for line in _stats_lines("Input", beg):
        print(line)
    lon0, lat0 = float(np.mean(cols["lon"])), float(np.mean(cols["lat"]))
    move = offset * found  # the source (MOLA) moves onto the reference (CTX)
    ned = np.array([move[1], move[0], -move[2]])
    xyz = _ned_to_ecef(lon0, lat0) @ ned
    transform = np.eye(4)
    transform[:3, 3] = xyz
    inverse = np.eye(4)
    inverse[:3, 3] = -xyz
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
    if 0 < disp < observed:
        print("Warning: The input --max-displacement value is smaller than the final observed displacement. "
              "It may be advised to increase the former and rerun the tool.")
    print("Transform scale - 1 = 0")
    print("Euler angles (degrees): Vector3(0,0,0)")
    print("Euler angles (North-East-Down, degrees): Vector3(0,0,0)")
    print("Axis of rotation and angle (degrees): Vector3(nan,nan,nan) 0")
    outputs = []
    for name, matrix in (("transform", transform), ("inverse-transform", inverse)):
        print(f"Writing: {prefix}-{name}.txt")
        with open(f"{prefix}-{name}.txt", "w") as f:
            f.write("\n".join(" ".join(f"{v:.17g}" for v in row) for row in matrix) + "\n")
        outputs.append(f"{prefix}-{name}.txt")
    try:
        if o["save-inv-transformed-reference-points"]:
            _trans_reference(pos["reference"], f"{prefix}-trans_reference.tif", xyz, correction)
        if o["save-transformed-source-points"]:
            print(f"Writing: {prefix}-trans_source.csv")
            with open(f"{prefix}-trans_source.csv", "w") as f:
                for i in range(len(mola)):
                    f.write(f"{cols['lon'][i]:.16g},{cols['lat'][i]:.16g},{mola[i] + move[2]:.16g}\n")
    except ArgumentError as err:
        fail(str(err))
    names = [item.split(":")[1] for item in (o["csv-format"] or "").split()]
    header = "# " + ",".join(names) + ",error (meters)" if names else \
        "# latitude,longitude,height above datum (meters),error (meters)"
    for which, errors in (("beg", beg), ("end", end)):
        print(f"Writing: {prefix}-{which}_errors.csv")
        with open(f"{prefix}-{which}_errors.csv", "w") as f:
            f.write(header + "\n# D_MARS\n")
            for i in range(len(errors)):
                values = ",".join(f"{cols[n][i]:.16g}" for n in names) if names else \
                    f"{cols['lat'][i]:.16g},{cols['lon'][i]:.16g},{mola[i]:.16g}"
                f.write(f"{values},{errors[i]:.16g}\n")
    if o["alignment-method"] in METHODS[:4] and o["num-iterations"] > 0:
        with open(f"{prefix}-iterationInfo.csv", "w") as f:
            f.write("iteration,translation_change_m,rotation_change_deg\n"
                    f"0,{np.linalg.norm(xyz):.8g},0\n1,0,0\n")
    if fault == "partial":
        _partial(outputs[0])


# ------------------------------------------------------------------ dem_geoid
#: dem_geoid.cc:201-230 (option -> tokens); ``--nodata_value`` with an underscore
DEM_GEOID = {"nodata_value": 1, "geoid": 1, "geoid-path": 1, "output-prefix,o": 1, "double": 0,
             "reverse-adjustment": 0}


def dem_geoid(argv, fault):
    import rasterio
    from _standin import _apply_fault

    o, files = parse_options("dem_geoid", argv, DEM_GEOID, ["dem"], "[options] <dem>",
                             {"nodata_value": -32768.0, "geoid": "", "geoid-path": "", "output-prefix": ""},
                             {"nodata_value": float})
    dem = files[0] if files else ""
    if not dem:
        fail(f"Requires <dem> in order to proceed.\n\n{_usage('dem_geoid', '[options] <dem>')}")
    geoid = o["geoid"].lower()
    if geoid and o["geoid-path"]:
        fail("Cannot specify both --geoid and --geoid-path.")
    # without -o: the DEM's stem, in the current folder (dem_geoid.cc:248-249)
    prefix = o["output-prefix"] or os.path.splitext(os.path.basename(dem))[0]
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    try:
        src = rasterio.open(dem)
    except rasterio.errors.RasterioIOError as exc:
        fail_other(f"DiskImageResourceGDAL: Could not open {dem}: {exc}")
    with src:
        nodata = src.nodata if src.nodata is not None else o["nodata_value"]
        if src.nodata is not None:
            print(f"\tFound input nodata value for {dem}: {nodata:g}")
        if src.crs is None:
            fail(f"Missing georeference for DEM: {dem}")
        from pyproj import CRS as ProjCRS

        datum = ProjCRS.from_wkt(src.crs.to_wkt())
        radius, datum_name = datum.ellipsoid.semi_major_metre, datum.datum.name
        if o["geoid-path"]:
            fail(f"this stand-in models the MOLA areoid only, not --geoid-path {o['geoid-path']}")
        if abs(float(radius) - terrain.R_MARS) >= 500.0:
            fail("this stand-in models Mars DEMs (the MOLA areoid) only: "
                 f"Cannot apply geoid adjustment to DEM relative to datum with radius {radius}")
        if datum_name.lower() != "d_mars":
            print(f"Warning: Unknown datum: {datum_name}. Guessing: D_MARS.")
        if geoid not in ("", "mola"):
            fail("Detected a Mars DEM. In that case, the value of the --geoid option must be either empty "
                 f"(auto-detected) or MOLA. Got instead: {geoid}.")
        _apply_fault(fault)
        heights = src.read(1).astype(np.float64)
        rows, cols = np.mgrid[0:src.height, 0:src.width]
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel())
        lon, lat = _transformer(src.crs, terrain.LONLAT).transform(xs, ys)
        correction = terrain.areoid(np.reshape(lon, heights.shape), np.reshape(lat, heights.shape))
        sign = -1.0 if o["reverse-adjustment"] else 1.0
        out = np.where(heights != nodata, heights - sign * correction, nodata)
        path = f"{prefix}-adj.tif"
        print("Adjusting the DEM using the geoid correction: mola_areoid.tif")
        print(f"Writing adjusted DEM: {path}")
        _write(path, out, src.crs, src.transform, nodata, dtype="float64" if o["double"] else "float32",
               tags={"GEOID": geoid or o["geoid-path"]})
    if fault == "partial":
        _partial(path)


PROGRAMS = {"point2dem": point2dem, "pc_align": pc_align, "dem_geoid": dem_geoid}


def main(name: str) -> None:
    """Entry point: the DEM stand-ins replace the placeholder ones of ``_standin``."""
    import warnings

    import _standin

    warnings.simplefilter("ignore")  # rasterio's NotGeoreferencedWarning about point clouds
    _standin.PROGRAMS.update(PROGRAMS)
    _standin.main(name)
    sys.exit(0)

