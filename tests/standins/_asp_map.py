"""Stand-ins for ASP's ``mapproject`` (the Python wrapper) and ``mapproject_single`` (ASP 3.7).

NOT THE REAL PROGRAMS. They follow NeoGeographyToolkit/StereoPipeline at 55bf46022:

``mapproject_single`` (src/asp/Tools/mapproject_single.cc)
    Options and positionals ``dem camera-image [camera-model] output-image`` as
    registered at :53-127 (three files: the image carries its camera, :143-146);
    ``--parse-options`` prints ``dem,``/``image,``/``camera,``/``output_file,`` and
    exits (:157-164); ``--ref-map`` may not meet ``--t_srs`` or ``--tr`` and lends its
    WKT and pixel size (:168-184); the DEM must be georeferenced with at most two
    bands (:186-204). The output projection is ``--t_srs``, else the DEM's when it is
    projected, else a local stereographic projection centred on the camera's
    footprint (``calcAutoProj`` :388-407, ``asp::setAutoProj`` in
    src/asp/Core/CartographyUtils.cc:29-48); the grid is ``--tr`` (or ``--mpp`` /
    ``--ppd``) else the camera's own ground resolution; the extent is ``--t_projwin``
    else the footprint; pixel centres snap to multiples of the grid size and the
    size counts both end points (``calc_target_geom`` :255-345). ``--query-projection``
    prints ``Query results:`` and ``image_width``, ``image_height``, ``pixel_size``,
    ``proj_box_*`` (pixel centres), ``model_occlusion`` and, with ``--write-wkt``,
    writes ``<output>.wkt`` and prints ``projection_wkt_file`` (:585-629). The written
    GeoTIFF records ``DEM_FILE`` (the DEM argument as given), ``INPUT_IMAGE_FILE``,
    ``CAMERA_FILE``, ``CAMERA_MODEL_TYPE``, ``BUNDLE_ADJUST_PREFIX`` (``NONE`` without one) and the
    adjustment read (``ADJUSTMENT_QUATERNION``, ``ADJUSTMENT_TRANSLATION``) in its metadata
    (src/asp/Camera/MapprojectImage.cc:215-243); ``--t_pixelwin`` crops it. With
    ``--bundle-adjust-prefix`` the camera is adjusted (:167, :455; the ``.adjust`` file as
    :mod:`_asp_adjust` finds it, a missing one stops the program).
``mapproject`` (src/asp/Tools/mapproject)
    Its own options (argparse, :245-307) and ``parse_known_args``: everything else goes
    to ``mapproject_single --parse-options`` (:309-340), whose failure is
    ``Exception: Failed executing: ...`` (asp_system_utils.run_and_parse_output,
    src/asp/Python/asp_system_utils.py:299-322), exit 1. It queries the projection,
    then WIPES ``--tr --mpp --ppd --t_projwin --ref-map --model-occlusion`` and passes
    the queried ``--tr`` and ``--t_projwin`` (widened by half a pixel) to every tile
    run, never ``--t_srs`` (:448-471, :539-556): a map made with ``--ref-map`` alone
    lands in the DEM's projection (or its own auto projection on a lon/lat DEM), not
    the reference map's. Tiles are 1024 pixels for ISIS cameras (:383-387), written
    to ``<output dir>/<output name with . -> _>_tiles/tile_X0_Y0_X1_Y1.tif`` and
    mosaicked into the output with the first tile's metadata (:486-629).

The stand-in camera: a CTX cube sees a ``CTXDASK_STANDIN_MAP_SIZE`` (default
``64x48``) footprint of 6 m pixels centred on the DEM's centre, shifted by a few
pixels that depend on the image's product id (so two images of a pair overlap but
do not coincide, and their automatic projections differ as real ones do).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _asp_adjust as adjust  # noqa: E402
import _asp_options as po  # noqa: E402
from _standin import _apply_fault, read_cube_label  # noqa: E402

R_MARS = 3396190.0
CTX_GSD = 6.0
LONLAT = f"+proj=longlat +a={R_MARS:.0f} +b={R_MARS:.0f} +no_defs"
ISIS_TILE = 1024
SINGLE_USAGE = ("[options] <dem> <camera-image> <camera-model> <output-image>\nInstead of the DEM file, a "
                "datum can be provided, such as\nWGS84, NAD83, NAD27, D_MOON, D_MARS, and MOLA.")


def map_size() -> tuple[int, int]:
    """``CTXDASK_STANDIN_MAP_SIZE`` as (width, height) in 6 m pixels."""
    width, _, height = os.environ.get("CTXDASK_STANDIN_MAP_SIZE", "64x48").lower().partition("x")
    return int(width), int(height)


def _product_id(image: str, label: dict) -> str:
    archive = label.get("Archive", {})
    return str(archive.get("ProductId") or os.path.basename(image).split(".")[0])


def footprint(image: str, dem_crs, dem_bounds) -> list[tuple[float, float]]:
    """Lon/lat points along the edge of what the stand-in camera ``image`` sees."""
    from rasterio.warp import transform

    label = read_cube_label(image)
    if dem_crs is None:  # a datum: the camera looks at 0 N 0 E
        lon0 = lat0 = 0.0
    else:
        cx, cy = (dem_bounds[0] + dem_bounds[2]) / 2, (dem_bounds[1] + dem_bounds[3]) / 2
        (lon0,), (lat0,) = transform(dem_crs, LONLAT, [cx], [cy])
    digest = hashlib.sha256(_product_id(image, label).encode()).digest()
    shift_x, shift_y = (digest[0] % 5 - 2) / 5, (digest[1] % 5 - 2) / 5  # a fraction of a pixel
    width, height = map_size()
    deg = 180.0 / (math.pi * R_MARS)
    lat0 += shift_y * CTX_GSD * deg
    lon0 += shift_x * CTX_GSD * deg / math.cos(math.radians(lat0))
    half_w = width * CTX_GSD / 2 * deg / math.cos(math.radians(lat0))
    half_h = height * CTX_GSD / 2 * deg
    edge = []
    for k in range(9):
        f = k / 8
        edge += [(lon0 - half_w + 2 * half_w * f, lat0 - half_h), (lon0 - half_w + 2 * half_w * f, lat0 + half_h),
                 (lon0 - half_w, lat0 - half_h + 2 * half_h * f), (lon0 + half_w, lat0 - half_h + 2 * half_h * f)]
    return edge


def _crs(text: str):
    from rasterio.crs import CRS

    try:
        return CRS.from_user_input(text)
    except Exception as exc:  # noqa: BLE001 - GDAL's own words
        po.fail(f"Failed to parse: {text!r}: {exc}")


def _geo_gsd(crs) -> float:
    """The camera's 6 m in the units of ``crs`` (degrees for a geographic one)."""
    return CTX_GSD if crs.is_projected else CTX_GSD * 180.0 / (math.pi * R_MARS)


def target_grid(opts: dict, dem: str, image: str) -> dict:
    """Projection, grid size, snapped extent and size of the output (``calc_target_geom``)."""
    import rasterio
    from rasterio.warp import transform

    if os.path.splitext(dem)[1]:
        try:
            with rasterio.open(dem) as src:
                dem_crs, bounds, bands = src.crs, src.bounds, src.count
        except rasterio.errors.RasterioIOError as exc:
            print(f"\n\nERROR: DiskImageResourceGDAL: Could not open {dem}: {exc}\n", file=sys.stderr)
            sys.exit(1)
        if dem_crs is None:
            po.fail(f"There is no georeference information in: {dem}.")
        if bands > 2:
            po.fail(f"Too many channels in: {dem}.")
    else:
        dem_crs, bounds = None, None
    edge = footprint(image, dem_crs, bounds)
    t_srs = opts.get("t_srs")
    if t_srs and t_srs.lower() != "auto":
        crs = _crs(t_srs)
    elif dem_crs is not None and dem_crs.is_projected and not t_srs:
        crs = dem_crs
    else:  # calcAutoProj: stereographic at the centre of the footprint's lon/lat box
        lons, lats = zip(*edge)
        lat, lon = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
        crs = _crs(f"+proj=stere +lat_0={lat!r} +lon_0={lon!r} +k=1 +x_0=0 +y_0=0 +R={R_MARS:.0f} +units=m "
                   "+no_defs")
    tr, mpp, ppd = opts.get("tr"), opts.get("mpp"), opts.get("ppd")
    if sum(v is not None for v in (tr, mpp, ppd)) >= 2:
        po.fail("Must specify at most one of the options: --tr, --mpp, --ppd.")
    if tr is not None:
        gsd = tr  # metres per pixel when projected, degrees per pixel otherwise
    elif mpp is not None:
        gsd = mpp if crs.is_projected else 360.0 * mpp / (2 * math.pi * R_MARS)
    elif ppd is not None:
        gsd = 1.0 / ppd if not crs.is_projected else 2 * math.pi * R_MARS / (360.0 * ppd)
    else:
        gsd = None
    projwin = opts.get("t_projwin")
    auto_res = -1.0
    if projwin is None or gsd is None:  # camera_bbox: the footprint in the target projection
        xs, ys = transform(LONLAT, crs, *zip(*edge))
        box = [min(xs), min(ys), max(xs), max(ys)]
        auto_res = _geo_gsd(crs)
    if gsd is None:
        gsd = auto_res
    if gsd < 0.001 * auto_res:
        po.fail("The user-set grid size (option --tr) is so small that likely it is in degrees, while meters "
                "are expected.")
    if projwin is not None:
        box = [projwin[0], min(projwin[1], projwin[3]), projwin[2], max(projwin[1], projwin[3])]
    # pixel edges -> centres, rounded (C's round: half away from zero) to multiples of the grid size
    xmin, ymin = gsd * _round((box[0] + gsd / 2) / gsd), gsd * _round((box[1] + gsd / 2) / gsd)
    xmax, ymax = gsd * _round((box[2] - gsd / 2) / gsd), gsd * _round((box[3] - gsd / 2) / gsd)
    width, height = _round((xmax - xmin) / gsd) + 1, _round((ymax - ymin) / gsd) + 1
    if width <= 0 or height <= 0:
        po.fail("Computed output image size is not positive. This can happen if the projection is in meters "
                "while the grid size is either in degrees or too large for the given input.")
    return {"crs": crs, "gsd": gsd, "box": (xmin, ymin, xmax, ymax), "width": width, "height": height}


def _round(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _floats(values: dict, name: str):
    if name not in values:
        return None
    try:
        items = [float(v) for v in " ".join(values[name]).replace(",", " ").split()]
    except ValueError:
        po.fail(f"Error parsing input:\nthe argument ('{' '.join(values[name])}') for option '--{name}' is "
                "invalid")
    return items if len(items) > 1 else items[0]


def mapproject_single(argv: list[str], fault: str | None) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    values, files = po.parse("mapproject_single", argv, po.MAPPROJECT_SINGLE,
                             ["dem", "camera-image", "camera-model", "output-image"], SINGLE_USAGE)
    if len(files) < 3:
        po.fail(f"Not all of the input DEM, image, and camera were specified.\n{SINGLE_USAGE}")
    dem, image, camera = files[:3]
    output = files[3] if len(files) == 4 else camera
    if len(files) == 3:
        camera = ""
    if "t_srs" in values and not values["t_srs"][0]:
        po.fail("The value of --t_srs is empty. Then it must not be set at all.")
    if output.endswith((".cub", ".json", ".xml", ".tsai")) and output != image:
        po.fail("The output file is a camera. Check your inputs.")
    if "parse-options" in values:
        print(f"dem,{dem}\nimage,{image}\ncamera,{camera}\noutput_file,{output}", flush=True)
        sys.exit(0)
    opts = {"t_srs": values.get("t_srs", [""])[0], "tr": _floats(values, "tr"), "mpp": _floats(values, "mpp"),
            "ppd": _floats(values, "ppd"), "t_projwin": _floats(values, "t_projwin")}
    if "ref-map" in values:
        if opts["t_srs"]:
            po.fail("Cannot specify both --ref-map and --t_srs.")
        if opts["tr"] is not None:
            po.fail("Cannot specify both --ref-map and --tr.")
        with rasterio.open(values["ref-map"][0]) as ref:
            if ref.crs is None:
                po.fail("The reference map has no georeference.")
            opts["t_srs"], opts["tr"] = ref.crs.to_wkt(), ref.transform.a
    read_cube_label(camera or image)  # the ISIS session loads the camera from the cube
    # session->camera_model (:455) adjusts it with --bundle-adjust-prefix (:167, _asp_adjust)
    ba_prefix = values.get("bundle-adjust-prefix", [""])[0]
    shift, rotation = adjust.load(ba_prefix, image, camera) if ba_prefix else ([0.0] * 3, [1.0, 0.0, 0.0, 0.0])
    grid = target_grid(opts, dem, image)
    _apply_fault(fault)
    gsd, (xmin, ymin, xmax, ymax) = grid["gsd"], grid["box"]
    crs = grid["crs"]
    if "query-projection" in values:
        lines = ["Query results:", f"image_width,{grid['width']}", f"image_height,{grid['height']}",
                 f"pixel_size,{gsd!r}", f"proj_box_xmin,{xmin!r}", f"proj_box_ymin,{ymin!r}",
                 f"proj_box_xmax,{xmax!r}", f"proj_box_ymax,{ymax!r}", "model_occlusion,0"]
        if "write-wkt" in values:
            with open(output + ".wkt", "w") as f:
                f.write(crs.to_wkt() + "\n")
            lines.append(f"projection_wkt_file,{output}.wkt")
        print("\n".join(lines), flush=True)
        return
    transform = from_origin(xmin - gsd / 2, ymax + gsd / 2, gsd, gsd)
    window = Window(0, 0, grid["width"], grid["height"])
    if "t_pixelwin" in values:
        x0, y0, x1, y1 = (int(v) for v in _floats(values, "t_pixelwin"))
        window = Window(x0, y0, x1 - x0, y1 - y0)
        transform = rasterio.windows.transform(window, transform)
    cols, rows = np.meshgrid(np.arange(window.col_off, window.col_off + window.width),
                             np.arange(window.row_off, window.row_off + window.height))
    pixels = (0.05 + 0.1 * ((cols // 4 + rows // 4) % 2)).astype("float32")[None]
    nodata = float(values.get("nodata-value", ["-32768"])[0])
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    print(f"Writing: {output}", flush=True)
    with rasterio.open(output, "w", driver="GTiff", width=int(window.width), height=int(window.height), count=1,
                       dtype="float32", crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(pixels)
        if "no-geoheader-info" not in values:
            dst.update_tags(BUNDLE_ADJUST_PREFIX=ba_prefix or "NONE", CAMERA_MODEL_TYPE="isis",
                            INPUT_IMAGE_FILE=image, CAMERA_FILE=camera, DEM_FILE=dem,
                            ADJUSTMENT_QUATERNION=",".join(f"{v:.17g}" for v in rotation),
                            ADJUSTMENT_TRANSLATION=",".join(f"{v:.17g}" for v in shift))


def _run_and_parse(argv: list[str]) -> dict[str, list[str]]:
    """``asp_system_utils.run_and_parse_output`` with separator ``,``."""
    program = shutil.which(argv[0]) or os.path.join(os.path.dirname(os.path.realpath(__file__)), "asp37", argv[0])
    proc = subprocess.run([program, *argv[1:]], capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout.rstrip())
        print(proc.stderr.rstrip(), flush=True)
        raise Exception("Failed executing: " + " ".join([program, *argv[1:]]))
    data = {}
    for line in proc.stdout.split("\n"):
        if "," in line:
            key, *rest = [item.strip(" \t\n\r") for item in line.split(",")]
            data[key] = rest
    return data


def _wipe(args: list[str], option: str, n: int) -> None:
    """``asp_cmd_utils.wipe_option`` (src/asp/Python/asp_cmd_utils.py:26-34)."""
    while option in args:
        r = args.index(option)
        del args[r:r + 1 + n]


def mapproject(argv: list[str], fault: str | None) -> None:
    import rasterio

    parser = argparse.ArgumentParser(usage="mapproject [options] <dem> <camera-image> <camera-model> "
                                           "<output-image>")
    parser.add_argument("--processes", dest="numProcesses", type=int, default=None)
    parser.add_argument("--num-processes", dest="numProcesses2", type=int, default=None)
    parser.add_argument("--nodes-list", dest="nodesListPath", default=None)
    parser.add_argument("--parallel-options", dest="parallel_options", default="--sshdelay 0.2")
    parser.add_argument("--tile-size", dest="tileSize", default=None, type=int)
    parser.add_argument("--work-dir", dest="workDir", default=None)
    parser.add_argument("--run-dir", dest="runDir", default=None)
    parser.add_argument("--suppress-output", action="store_true", default=False, dest="suppressOutput")
    parser.add_argument("--no-geoheader-info", action="store_true", default=False, dest="noGeoHeaderInfo")
    parser.add_argument("--keep", action="store_true", dest="keep", default=False)
    parser.add_argument("--convert-tiles", action="store_true", dest="convertTiles")
    parser.add_argument("--cog", action="store_true", dest="cog", default=False)
    parser.add_argument("-v", "--version", dest="version", default=False, action="store_true")
    for name in ("--pixelStartX", "--pixelStartY", "--pixelStopX", "--pixelStopY"):
        parser.add_argument(name, dest=name[2:], default=None, type=int, help=argparse.SUPPRESS)
    options, args = parser.parse_known_args(argv)
    if options.version:
        print(f"NASA Ames Stereo Pipeline {po.ASP_VERSION} (ctxdask test stand-in)")
        sys.exit(0)
    if not args:
        parser.print_help()
        sys.exit(1)
    if options.runDir is not None:
        os.chdir(options.runDir)
    settings = _run_and_parse(["mapproject_single", *args, "--parse-options"])
    dem, image, camera, output = (settings[k][0] for k in ("dem", "image", "camera", "output_file"))
    for v in (dem, image, camera, output):
        if v and v in args:
            args.remove(v)
    _apply_fault(fault)
    tile_size = options.tileSize or (ISIS_TILE if image.endswith(".cub") or camera.endswith(".cub") else 5120)
    folder = os.path.dirname(output) or "./"
    os.makedirs(folder, exist_ok=True)
    query = _run_and_parse(["mapproject_single", "--query-projection", dem, image, camera, output, *args])
    width, height = int(query["image_width"][0]), int(query["image_height"][0])
    print(f"Output image size is {width} by {height} pixels.")
    for option, n in (("--tr", 1), ("--mpp", 1), ("--ppd", 1), ("--t_projwin", 4), ("--ref-map", 1),
                      ("--model-occlusion", 0)):
        _wipe(args, option, n)
    half = 0.0 if "--gdal-tap" in args else 0.5 * float(query["pixel_size"][0])
    box = [float(query[f"proj_box_{k}"][0]) for k in ("xmin", "ymin", "xmax", "ymax")]
    args += ["--tr", query["pixel_size"][0], "--t_projwin", repr(box[0] - half), repr(box[1] - half),
             repr(box[2] + half), repr(box[3] + half)]
    work = options.workDir or os.path.join(folder, os.path.basename(output).replace(".", "_") + "_tiles/")
    os.makedirs(work, exist_ok=True)
    tiles = []
    for y0 in range(0, height, tile_size):
        for x0 in range(0, width, tile_size):
            x1, y1 = min(x0 + tile_size, width), min(y0 + tile_size, height)
            path = os.path.join(work, f"tile_{x0}_{y0}_{x1}_{y1}.tif")
            cmd = ["mapproject_single", "--t_pixelwin", str(x0), str(y0), str(x1), str(y1), dem, image, camera,
                   path, *(["--no-geoheader-info"] if options.noGeoHeaderInfo else []), *args]
            program = shutil.which(cmd[0]) or os.path.join(os.path.dirname(os.path.realpath(__file__)), "asp37",
                                                           cmd[0])
            subprocess.call([program, *cmd[1:]])
            if os.path.exists(path):
                tiles.append(path)
            else:
                print("Warning: Skipping non-existing file: ", path)
    if not tiles:
        shutil.rmtree(work, ignore_errors=True)
        raise Exception("No mapprojected tif tiles were generated. Examine the output above for more information.")
    with rasterio.open(tiles[0]) as first:
        profile, tags = first.profile, first.tags()
        res = first.res
    lefts, tops = [], []
    for path in tiles:
        with rasterio.open(path) as src:
            lefts.append(src.bounds.left)
            tops.append(src.bounds.top)
    profile.update(width=width, height=height,
                   transform=rasterio.transform.from_origin(min(lefts), max(tops), res[0], res[1]))
    with rasterio.open(output, "w", **profile) as dst:
        for path in tiles:
            with rasterio.open(path) as src:
                col = round((src.bounds.left - min(lefts)) / res[0])
                row = round((max(tops) - src.bounds.top) / res[1])
                dst.write(src.read(), window=rasterio.windows.Window(col, row, src.width, src.height))
        if not options.noGeoHeaderInfo:
            dst.update_tags(**tags)
    if not options.keep:
        print(f"Removing: {work}")
        shutil.rmtree(work, ignore_errors=True)
    print(f"Wrote: {output}")
