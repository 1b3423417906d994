"""Test stand-ins for ASP's tiled stereo programs (ASP 3.7, 2026).

THESE ARE NOT THE REAL PROGRAMS. The executables in ``tests/standins/asp37/``
(``mapproject``, ``stereo_parse``, ``stereo_pprc``, ``stereo_tile``,
``dem_mosaic``) live in their own folder so that a test chooses which ASP it
has: the plain stand-in folder is an ASP without ``stereo_tile`` (monolithic
``parallel_stereo`` only), adding ``asp37/`` to ``PATH`` gives the tiled mode.

They honour the argument and file contract of the real programs as read in
NeoGeographyToolkit/StereoPipeline:

- ``mapproject [--tr S] [--t_srs P] [--ref-map M] dem image [camera] out``
  (docs/tools/mapproject.rst) writes a georeferenced GeoTIFF;
- ``stereo_parse ... L R [Lcam Rcam] prefix --stereo-dist-tile-params SIZE PAD``
  writes ``<prefix>-distTileList.txt``, one ``x y width height padding`` line
  per tile, row by row, over the overlap of the two map-projected images
  (src/asp/Core/StereoTiling.cc, produceDistTileList);
- ``stereo_pprc ... --stop-after-stats`` writes ``<prefix>-<image stem>-stats.tif``
  for both images and exits 0 (src/asp/Core/ImageUtils.cc gather_stats,
  src/asp/Sessions/StereoSessionIo.cc);
- ``stereo_tile --tile-index i --dem D --point2dem-options '... --tr S ...' ...
  L R [Lcam Rcam] prefix`` reads the tile list, needs the stats files, makes
  ``<prefix>-X_Y_W_H/`` and writes ``<prefix>-X_Y_W_H/<name>-PC.tif``, ``-L.tif``
  and point2dem's ``-DEM.tif`` (``-DRG.tif`` with ``--orthoimage``,
  ``-IntersectionErr.tif`` with ``--errorimage``) (src/asp/Tools/stereo_tile);
  a bad tile index or a missing ``--tr`` is ``Error: ...`` and exit 255
  (asp_system_utils.raise_error's default code -1);
- ``dem_mosaic [-l LIST | --dem-list LIST] [dem ...] -o out`` mosaics the DEMs
  (docs/tools/dem_mosaic.rst); here the first valid value wins.

Tile DEMs hold ``-1500 - index`` over the tile's footprint in the left image's
map projection, so a mosaic shows real holes where tiles are missing.

Behaviour on request, through the environment:

``CTXDASK_STANDIN_MAP_SIZE``
    ``WIDTHxHEIGHT`` of map-projected images (default ``64x48``).
``CTXDASK_STANDIN_TILE_FAULTS``
    Comma-separated ``INDEX:FAULT[@ATTEMPTS]``; ATTEMPTS is ``N``, ``N-M`` or
    ``N+`` (1-based, default every attempt). FAULT is one of ``_standin``'s
    (``hang``, ``ignore-term``, ``crash``, ``fail``, ...) or ``child-crash``
    (a stereo step died of a signal: stereo_tile prints only its own
    "Stereo step stereo_corr failed" and exits 1, as ``stereo_run`` does),
    ``no-dem`` (point2dem failed with an ``ERROR:`` line; stereo_tile ignores
    its exit status and exits 0, as the real one does).
``CTXDASK_STANDIN_TILE_COUNTS``
    Folder where each tile's attempts are counted (one file per left image
    and tile index, under ``flock``), so attempts count across processes
    and workers. Needed for ``@ATTEMPTS``.
``CTXDASK_STANDIN_TILE_SLEEP``
    Seconds every tile sleeps (a slow but healthy correlator).
``CTXDASK_STANDIN_TILE_STARTED``
    File to which each tile appends ``<index> <attempt> <pid>`` when it starts.

The generic ``CTXDASK_STANDIN_FAULT``/``_PROGRAMS``/``_CALLS``/``_PIDFILE``
variables of ``_standin`` apply too.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _standin  # noqa: E402
from _standin import BANNER, VERSION, _apply_fault, _require_raster, read_cube_label  # noqa: E402

MARS_STEREOGRAPHIC = "+proj=stere +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"
MAP_GSD = 6.0
TILE_LIST = "-distTileList.txt"


def _parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=name, description=BANNER.format(name=name))
    parser.add_argument("-v", "--version", action="version", version=VERSION.format(name=name))
    parser.add_argument("--threads", type=int, default=0)
    return parser


def _error(message: str, code: int = 255) -> None:
    """ASP's Python ``raise_error``: ``Error: ...`` on stderr, exit code -1 (255)."""
    print(f"Error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _cxx_error(message: str) -> None:
    """A C++ ASP program's ASP_STANDARD_CATCHES: ``ERROR: ...``, exit 1."""
    print(f"\n\nERROR: {message}\n", file=sys.stderr, flush=True)
    sys.exit(1)


def _map_size() -> tuple[int, int]:
    text = os.environ.get("CTXDASK_STANDIN_MAP_SIZE", "64x48")
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def _write(path: str, data, *, crs: str | None, transform, nodata: float | None = None) -> None:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    warnings.simplefilter("ignore", NotGeoreferencedWarning)  # clouds and stats are not georeferenced

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    bands, height, width = data.shape
    profile = dict(driver="GTiff", width=width, height=height, count=bands, dtype=str(data.dtype))
    if crs:
        profile.update(crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(CTXDASK_STANDIN="placeholder written by a test stand-in")


# ----------------------------------------------------------------- mapproject
def mapproject(argv: list[str], fault: str | None) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    parser = _parser("mapproject")
    parser.add_argument("--tr", type=float)
    parser.add_argument("--t_srs", default="")
    parser.add_argument("--ref-map")
    parser.add_argument("--t_projwin", type=float, nargs=4)
    parser.add_argument("--nodata-value", type=float, default=-32768)
    parser.add_argument("--processes", type=int)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    if len(args.paths) not in (3, 4):
        parser.error("expected: dem camera-image [camera-model] output-image")
    dem, image, output = args.paths[0], args.paths[1], args.paths[-1]
    _require_raster(dem, 1)
    read_cube_label(image)  # an ISIS cube carries its camera
    _apply_fault(fault)
    width, height = _map_size()
    crs, gsd = args.t_srs or MARS_STEREOGRAPHIC, args.tr or MAP_GSD
    transform = from_origin(-width * gsd / 2, height * gsd / 2, gsd, gsd)
    if args.ref_map:
        with rasterio.open(args.ref_map) as ref:
            crs, transform = ref.crs.to_wkt(), ref.transform
            width, height = ref.width, ref.height
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = (0.05 + 0.1 * ((xx // 4 + yy // 4) % 2)).astype("float32")[None]
    _write(output, pixels, crs=crs, transform=transform, nodata=args.nodata_value)
    print(f"Writing: {output}")


# ------------------------------------------------------------- stereo programs
def _stereo_parser(name: str) -> argparse.ArgumentParser:
    parser = _parser(name)
    parser.add_argument("-s", "--stereo-file", default="./stereo.default")
    parser.add_argument("--stereo-algorithm", default="asp_bm")
    parser.add_argument("--subpixel-mode", type=int, default=1)
    parser.add_argument("--alignment-method", default="none")
    parser.add_argument("--corr-memory-limit-mb", type=int, default=5120)
    parser.add_argument("--dem")
    parser.add_argument("paths", nargs="+")
    return parser


def _positional(parser, args) -> tuple[list[str], str]:
    if len(args.paths) not in (3, 5):
        parser.error("expected: left right [left_cam right_cam] output_prefix")
    images, prefix = args.paths[:2], args.paths[-1]
    for path in args.paths[2:-1]:
        read_cube_label(path)
    return images, prefix


def _georef(path: str):
    import rasterio

    with rasterio.open(path) as src:
        if src.crs is None:
            _cxx_error(f"Missing georeference in: {path}")
        return src.crs, src.transform, src.width, src.height


def stereo_parse(argv: list[str], fault: str | None) -> None:
    import math

    parser = _stereo_parser("stereo_parse")
    parser.add_argument("--stereo-dist-tile-params", type=int, nargs=2)
    args = parser.parse_args(argv)
    images, prefix = _positional(parser, args)
    georefs = [_georef(p) for p in images]
    _apply_fault(fault)
    print(f"out_prefix,{prefix}")
    if not args.stereo_dist_tile_params:
        return
    size, padding = args.stereo_dist_tile_params
    if size <= 0 or padding <= 0:
        _cxx_error("Tile size and padding must be positive.")
    # the overlap of equal stand-in images is the whole left image
    width = min(g[2] for g in georefs)
    height = min(g[3] for g in georefs)
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    with open(prefix + TILE_LIST, "w") as f:
        for iy in range(math.ceil(height / size)):
            for ix in range(math.ceil(width / size)):
                x, y = ix * size, iy * size
                f.write(f"{x} {y} {min(size, width - x)} {min(size, height - y)} {padding}\n")
    print(f"Writing tile list: {prefix}{TILE_LIST}")


def _stats_files(prefix: str, images: list[str]) -> list[str]:
    # gather_stats: <prefix>-<image stem>-stats.tif for an image outside the prefix
    return [f"{prefix}-{os.path.splitext(os.path.basename(p))[0]}-stats.tif" for p in images]


def stereo_pprc(argv: list[str], fault: str | None) -> None:
    import numpy as np

    parser = _stereo_parser("stereo_pprc")
    parser.add_argument("--stop-after-stats", action="store_true")
    args = parser.parse_args(argv)
    images, prefix = _positional(parser, args)
    for image in images:
        _require_raster(image, 1)
    if not args.stop_after_stats:
        _cxx_error("this stand-in only computes statistics (--stop-after-stats)")
    _apply_fault(fault)
    for path in _stats_files(prefix, images):
        _write(path, np.array([[[0.0, 0.2, 0.1, 0.05, 0.0, 0.2]]], dtype="float32"), crs=None, transform=None)
    print("Stopping after computing image statistics.")


def _attempt(key: str) -> int:
    folder = os.environ.get("CTXDASK_STANDIN_TILE_COUNTS")
    if not folder:
        return 1
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, f"{key}.count"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        count = int(os.pread(fd, 32, 0).decode().strip() or 0) + 1
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(count).encode(), 0)
        return count
    finally:
        os.close(fd)


def _in(attempt: int, spec: str) -> bool:
    if not spec:
        return True
    if spec.endswith("+"):
        return attempt >= int(spec[:-1])
    low, _, high = spec.partition("-")
    return int(low) <= attempt <= int(high or low)


def tile_fault(index: int, attempt: int) -> str | None:
    """The fault requested for this tile and attempt, if any."""
    for item in filter(None, os.environ.get("CTXDASK_STANDIN_TILE_FAULTS", "").split(",")):
        where, _, what = item.strip().partition(":")
        fault, _, attempts = what.partition("@")
        if int(where) == index and _in(attempt, attempts):
            return fault
    return None


def stereo_tile(argv: list[str], fault: str | None) -> None:
    import numpy as np
    from rasterio.transform import from_origin

    parser = _stereo_parser("stereo_tile")
    parser.add_argument("--tile-index", type=int)
    parser.add_argument("-e", "--entry-point", type=int, default=0)
    parser.add_argument("--stop-point", type=int, default=9)
    parser.add_argument("--point2dem-options", default="")
    parser.add_argument("--run-dir")
    args = parser.parse_args(argv)
    if args.run_dir:
        os.chdir(args.run_dir)
    images, prefix = _positional(parser, args)
    if args.tile_index is None:
        _error("The option --tile-index is required.", 2)
    if args.dem is None:
        _error("The option --dem is required for tile processing.", 2)
    _require_raster(args.dem, 1)
    try:
        with open(prefix + TILE_LIST) as f:
            tiles = [tuple(int(v) for v in ln.split()) for ln in f if ln.strip()]
    except FileNotFoundError:
        raise SystemExit(f"Traceback (most recent call last):\nException: Tile list file not found: "
                         f"{prefix}{TILE_LIST}") from None
    if not 0 <= args.tile_index < len(tiles):
        _error(f"Tile index {args.tile_index} out of range [0, {len(tiles) - 1}]")
    x, y, w, h, padding = tiles[args.tile_index]
    p2d = shlex.split(args.point2dem_options)
    dem_step = args.entry_point <= 7 < args.stop_point
    if dem_step and "--tr" not in p2d:
        _error("The option --point2dem-options must include --tr to ensure consistent grid size "
               "across all tiles.")
    for stats in _stats_files(prefix, images):
        _require_raster(stats, 1)
    attempt = _attempt(f"{os.path.basename(images[0])}-{args.tile_index}")
    started = os.environ.get("CTXDASK_STANDIN_TILE_STARTED")
    if started:
        with open(started, "a") as f:
            f.write(f"{args.tile_index} {attempt} {os.getpid()}\n")
    print(f"Output prefix: {prefix}\nTile index: {args.tile_index}\nTile: {x}_{y}_{w}_{h}, padding: {padding}",
          flush=True)
    delay = float(os.environ.get("CTXDASK_STANDIN_TILE_SLEEP", "0") or 0)
    if delay:
        time.sleep(delay)
    fault = tile_fault(args.tile_index, attempt) or fault
    if fault == "child-crash":
        print("Traceback (most recent call last):\n  File \"stereo_tile\", line 1, in <module>\n"
              "Exception: Stereo step stereo_corr failed", file=sys.stderr, flush=True)
        sys.exit(1)
    if fault == "fail":
        _cxx_error(f"stereo_corr: tile {args.tile_index}: Not enough valid matches (stand-in fault 'fail')")
    if fault not in (None, "no-dem", "partial"):
        _apply_fault(fault)
    subdir = f"{prefix}-{x}_{y}_{w}_{h}"
    tile_prefix = os.path.join(subdir, os.path.basename(prefix))
    os.makedirs(subdir, exist_ok=True)
    crs, transform, _, _ = _georef(images[0])
    block = np.full((1, h, w), 0.1, dtype="float32")
    _write(f"{tile_prefix}-L.tif", block, crs=None, transform=None)
    _write(f"{tile_prefix}-PC.tif", np.full((4, h, w), 3396190.0), crs=None, transform=None)
    if not dem_step:
        return
    if fault == "no-dem":
        print("\n\nERROR: point2dem: stand-in fault 'no-dem'\n", file=sys.stderr, flush=True)
        sys.exit(0)  # stereo_tile runs point2dem with subprocess.call and ignores its status
    tr = float(p2d[p2d.index("--tr") + 1])
    x0, y0 = transform * (x, y)
    x1, y1 = transform * (x + w, y + h)
    cols, rows = max(1, round(abs(x1 - x0) / tr)), max(1, round(abs(y1 - y0) / tr))
    grid = from_origin(min(x0, x1), max(y0, y1), tr, tr)
    t_srs = p2d[p2d.index("--t_srs") + 1] if "--t_srs" in p2d else crs.to_wkt()
    nodata = float(np.finfo("float32").min)  # point2dem's default --nodata-value
    _write(f"{tile_prefix}-DEM.tif", np.full((1, rows, cols), -1500.0 - args.tile_index, dtype="float32"),
           crs=t_srs, transform=grid, nodata=nodata)
    if "--orthoimage" in p2d:
        _write(f"{tile_prefix}-DRG.tif", np.full((1, rows, cols), 0.1 + 0.02 * (args.tile_index % 5),
                                                 dtype="float32"), crs=t_srs, transform=grid, nodata=nodata)
    if "--errorimage" in p2d:
        _write(f"{tile_prefix}-IntersectionErr.tif", np.full((1, rows, cols), 0.5, dtype="float32"),
               crs=t_srs, transform=grid, nodata=nodata)
    if fault == "partial":
        with open(f"{tile_prefix}-DEM.tif", "r+b") as f:
            f.truncate(os.path.getsize(f"{tile_prefix}-DEM.tif") // 3)
    print("Percentage of valid pixels: 100%")


def dem_mosaic(argv: list[str], fault: str | None) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    parser = _parser("dem_mosaic")
    parser.add_argument("-l", "--dem-list")
    parser.add_argument("-o", "--output-prefix", required=True)
    parser.add_argument("--tr", type=float)
    parser.add_argument("--t_srs")
    parser.add_argument("--output-nodata-value", type=float)
    parser.add_argument("dems", nargs="*")
    args = parser.parse_args(argv)
    dems = list(args.dems)
    if args.dem_list:
        with open(args.dem_list) as f:
            dems += [ln.strip() for ln in f if ln.strip()]
    if not dems:
        _cxx_error("No input DEMs were specified.")
    for dem in dems:
        _require_raster(dem, 1)
    _apply_fault(fault)
    # every DEM on the grid of the first (as dem_mosaic does by default); the first valid value wins
    with rasterio.open(dems[0]) as first:
        crs, res = first.crs, (args.tr or first.res[0])
        nodata = args.output_nodata_value if args.output_nodata_value is not None else first.nodata
    bounds = []
    for dem in dems:
        with rasterio.open(dem) as src:
            bounds.append(src.bounds)
    left, top = min(b.left for b in bounds), max(b.top for b in bounds)
    width = round((max(b.right for b in bounds) - left) / res)
    height = round((top - min(b.bottom for b in bounds)) / res)
    transform = from_origin(left, top, res, res)
    data = np.full((1, height, width), nodata, dtype="float32")
    for dem in dems:
        with rasterio.open(dem) as src:
            block = src.read(1)
            col, row = round((src.bounds.left - left) / res), round((top - src.bounds.top) / res)
            target = data[0, row:row + block.shape[0], col:col + block.shape[1]]
            valid = (block != src.nodata) & (target == nodata)
            target[valid] = block[valid]
    out = args.output_prefix if args.output_prefix.endswith(".tif") else args.output_prefix + "-tile-0.tif"
    _write(out, data, crs=crs.to_wkt() if crs else None, transform=transform, nodata=nodata)
    print(f"Writing: {out}")


PROGRAMS = {
    "mapproject": mapproject,
    "stereo_parse": stereo_parse,
    "stereo_pprc": stereo_pprc,
    "stereo_tile": stereo_tile,
    "dem_mosaic": dem_mosaic,
}


def main(name: str) -> None:
    """Entry point of every tiled-stereo stand-in executable."""
    _standin.PROGRAMS.update(PROGRAMS)
    _standin.main(name)
