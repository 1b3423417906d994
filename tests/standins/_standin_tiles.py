"""Test stand-ins for ASP 3.7's distributed-stereo programs.

THESE ARE NOT THE REAL PROGRAMS. The executables in ``tests/standins/asp37/``
(``mapproject``, ``mapproject_single``, ``stereo_parse``, ``stereo_pprc``,
``stereo_tile``, ``dem_mosaic``) live in their own folder so that a test chooses
which ASP it has: the plain stand-in folder is an ASP without ``stereo_tile``
(monolithic ``parallel_stereo`` only), adding ``asp37/`` to ``PATH`` gives the
tiled mode. ``mapproject``/``mapproject_single`` are in :mod:`_asp_map`, the
boost command-line parser and option tables in :mod:`_asp_options`. The rest
follows NeoGeographyToolkit/StereoPipeline at 55bf46022:

Stereo session (``stereo_parse``, ``stereo_pprc``; src/asp/Tools/stereo.cc)
    Every stereo option is accepted (``configStereoOpts`` :324-349), an unknown
    one is ``ERROR: Error parsing input: unrecognised option ...``, exit 1;
    ``stereo.default`` keys are options too (:793-812). Files are ``<images>
    [<cameras>] <prefix> [DEM]`` (``parseStereoFiles`` :539-612, ``--dem`` equal to
    a positional DEM). With a DEM and georeferenced images the session is
    map-projected: each image's recorded ``DEM_FILE`` must be the ``--dem`` string
    (src/asp/Sessions/StereoSession.cc:134-160, unless
    ``--accept-provided-mapproj-dem``), its camera is loaded from the recorded
    ``CAMERA_FILE``/``INPUT_IMAGE_FILE`` (:121-131, :171-204) and the DEM must exist
    (:265-271); a map image whose ``BUNDLE_ADJUST_PREFIX`` is not ``NONE`` needs that
    prefix's ``.adjust`` of its camera (:160-205). With ``--bundle-adjust-prefix`` (refused
    with ``--alignment-method epipolar``, stereo.cc:1044-1047) the cameras are adjusted
    (stereo.cc:1188-1190; the file as :mod:`_asp_adjust` finds it, a missing one stops the
    program). Then ``validateStereoOptions`` (stereo.cc:1220-1380): the images
    must be map-projected, "The left and right images must use the same
    projection" (WKT equality, :1265-1266) and the same ground resolution (:1269-1280).
``stereo_parse --stereo-dist-tile-params SIZE PAD``
    ``produceDistTileList`` (src/asp/Core/StereoTiling.cc:237-330): tiles over the
    overlap of the two images in left-image pixels (the overlap box grown by one
    pixel and cropped to the left image), ``x y w h padding`` per line, row by
    row, into ``<prefix>-distTileList.txt``. Otherwise it prints ``key,value``
    lines (src/asp/Tools/stereo_parse.cc:130-216).
``stereo_pprc --stop-after-stats``
    ``<prefix>-<image stem>-stats.tif`` per image (``gather_stats``,
    src/asp/Core/ImageUtils.cc:300-321), "Stopping after computing image
    statistics.", exit 0 (src/asp/Sessions/StereoSessionIo.cc:164-169).
``stereo_tile`` (src/asp/Tools/stereo_tile, Python)
    Its argparse options and ``parse_known_args`` (:119-167; the rest is for the
    stereo programs); ``--dem-mosaic-index``/``--dem-mosaic-master`` run one
    ``dem_mosaic`` block (:64-91, :179-184); missing files, ``--tile-index`` or
    ``--dem`` are ``Error: ...`` exit 2 (:186-196); crop windows are refused
    (:198-202, exit 255). It runs ``stereo_parse`` for the prefix (:214-217,
    failure: ``Exception: Failed executing``, exit 1), reads the tile
    (``readDistTileList``, asp_stereo_utils.py:715-733; a bad index exit 255),
    makes ``<prefix>-X_Y_W_H/``, symlinks ``<prefix>*stats.tif`` into it (:44-52),
    requires ``--tr`` in ``--point2dem-options`` when the DEM step runs (:242-245)
    and runs the steps ``entry-point <= step < stop-point`` (``Step``,
    asp_stereo_utils.py:58-68): pprc (``-L.tif``, ``-R.tif``), corr (``-D.tif``),
    rfne (``-RD.tif``), fltr (``-F.tif``), tri (``-PC.tif``), cleanup (a no-op,
    :269-271), then point2dem on ``-PC.tif`` with the options and the tile's
    ``-L.tif`` after ``--orthoimage`` (:93-116), through ``subprocess.call``: its
    status is ignored and stereo_tile exits 0. A failed step is "Stereo step X
    failed" (``stereo_run``, asp_stereo_utils.py:119-149), exit 1. The stages and
    point2dem run inside this process (same files, same order, same exit codes);
    the tile DEM holds ``-1500 - index`` over the tile's footprint on the
    ``--tr`` grid in ``--t_srs`` (else the map projection), so a mosaic shows
    real holes where tiles are missing.
``dem_mosaic`` (src/asp/Core/DemMosaicParse.cc, src/asp/Tools/dem_mosaic.cc)
    ``--dem-list`` or positional DEMs (not both: :329-347), ``-o`` required (:209);
    every DEM must be readable; the output is in the first DEM's projection (or
    ``--t_srs``), other projections are reprojected; ``-o X.tif`` writes X.tif,
    another prefix ``<prefix>-tile-0.tif`` (:1139-1183); the first valid value wins.

Behaviour on request, through the environment:

``CTXDASK_STANDIN_MAP_SIZE``
    ``WIDTHxHEIGHT`` of a camera's footprint in 6 m pixels (default ``64x48``).
``CTXDASK_STANDIN_TILE_FAULTS``
    Comma-separated ``INDEX:FAULT[@ATTEMPTS][/ALGORITHM]``; ATTEMPTS is ``N``, ``N-M`` or
    ``N+`` (1-based, default every attempt); ALGORITHM limits the fault to runs whose
    ``--stereo-algorithm`` (on the command line, else in the stereo file, else ASP's
    default ``asp_bm``, StereoSettings.cc:381-382) is that one: ``3:fail/asp_mgm`` is a
    tile MGM cannot correlate and SGM can. FAULT is one of ``_standin``'s
    (``hang``, ``ignore-term``, ``crash``, ``fail``, ...) or ``child-crash``
    (stereo_corr died of a signal: stereo_tile prints only "Stereo step
    stereo_corr failed" and exits 1), ``no-dem`` (point2dem failed with an
    ``ERROR:`` line; stereo_tile ignores its status and exits 0).
    ``slow=SECONDS`` is no fault: that attempt sleeps SECONDS more and then works (a straggler,
    e.g. ``3:slow=10@1``: slow on its first attempt only, so a duplicate can win).
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
import contextlib
import fcntl
import glob
import io
import math
import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _asp_adjust  # noqa: E402
import _asp_map  # noqa: E402
import _asp_options as po  # noqa: E402
import _standin  # noqa: E402
from _asp_holes import fill_holes  # noqa: E402
from _standin import _apply_fault, read_cube_label  # noqa: E402

TILE_LIST = "-distTileList.txt"
STEREO_USAGE = ("[options] <images> [<cameras>] <output_prefix> [DEM]\n  Extensions are automatically added to "
                "the output files.\n  Camera model arguments may be optional for some stereo session types (e.g., "
                "isis).\n  Stereo parameters should be set in the stereo.default file.")
IMAGE_EXT = (".tif", ".tiff", ".cub", ".ntf", ".jp2", ".img", ".vrt")
CAM_EXT = (".cub", ".json", ".xml", ".tsai", ".pinhole", ".isd")
STEPS = {"pprc": 0, "corr": 1, "blend": 2, "rfne": 3, "fltr": 4, "tri": 5, "clean": 6, "dem": 7, "mosaic": 8}


def _write(path: str, data, *, crs=None, transform=None, nodata: float | None = None) -> None:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    warnings.simplefilter("ignore", NotGeoreferencedWarning)  # clouds and stats are not georeferenced
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    bands, height, width = data.shape
    profile = dict(driver="GTiff", width=width, height=height, count=bands, dtype=str(data.dtype))
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(CTXDASK_STANDIN="placeholder written by a test stand-in")


def _open(path: str):
    """The image's georeference and mapprojection record, or a C++ ``ERROR:`` when unreadable.

    A ``.cub`` is read as an ISIS cube: georeferenced when cam2map gave it a ``Mapping`` group.
    """
    import json

    import rasterio

    if path.endswith(".cub"):
        label = read_cube_label(path)
        mapping = label.get("Mapping")
        return {"wkt": "ISIS Mapping " + json.dumps(mapping, sort_keys=True, default=str) if mapping else None,
                "transform": None, "width": _standin.CUBE_SIZE, "height": _standin.CUBE_SIZE, "tags": {},
                "crs": None}

    try:
        with rasterio.open(path) as src:
            return {"wkt": src.crs.to_wkt() if src.crs else None, "transform": src.transform,
                    "width": src.width, "height": src.height, "tags": src.tags(), "crs": src.crs}
    except rasterio.errors.RasterioIOError as exc:
        print(f"\n\nERROR: DiskImageResourceGDAL: Could not open {path}: {exc}\n", file=sys.stderr, flush=True)
        sys.exit(1)


# ----------------------------------------------------------- stereo session
def _mapprojection_adjustment(tags: dict, image: str, camera: str) -> None:
    """The camera that undoes a map projection, with the adjustment its ``BUNDLE_ADJUST_PREFIX`` records.

    ``read_mapproj_header_session`` (src/asp/Sessions/StereoSession.cc:160-164: ``NONE`` is
    none) and ``read_mapproj_cam`` (:169-205): a failed load is tried again in a new session,
    then is "Failed to load the camera model from ..." with both messages.
    """
    prefix = tags.get("BUNDLE_ADJUST_PREFIX", "NONE")
    if prefix in ("", "NONE"):
        return
    try:
        _asp_adjust.resolve(prefix, image, camera)
    except _asp_adjust.MissingAdjustment as exc:
        po.fail(f"Failed to load the camera model from {camera} for image: {image}.\nFirst error message: {exc}\n"
                f"\nSecond error message: {exc}\n")


def _stereo_file(path: str) -> dict[str, list[str]]:
    """``parse_asp_config_file``: ``key value...`` lines, keys being stereo options; a missing
    file means default settings (src/asp/Core/StereoSettingsParse.cc:131-143)."""
    if not os.path.exists(path):
        return {}
    values = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, *rest = line.split()
            if key not in {k.split(",")[0] for k in po.STEREO}:
                po.fail(f"Error parsing configuration file:\nunrecognised option '{key}'")
            values[key] = rest
    return values


_SESSIONS: dict[tuple, dict] = {}


def stereo_session(prog: str, argv: list[str]) -> dict:
    """Parse a stereo command line and run the session's checks (see the module docstring).

    stereo_tile's steps run in one process with one command line: the checks, which
    would pass or fail the same way for each step, run once (``_SESSIONS``).
    """
    key = (prog in ("stereo_corr", "stereo_rfne", "stereo_fltr", "stereo_tri"), *argv)
    if key in _SESSIONS:
        return _SESSIONS[key]
    _SESSIONS[key] = _stereo_session(prog, argv)
    return _SESSIONS[key]


def _stereo_session(prog: str, argv: list[str]) -> dict:
    values, files = po.parse(prog, argv, po.STEREO, None, STEREO_USAGE)
    stereo_file = values.get("stereo-file", ["./stereo.default"])[0]
    values = {**_stereo_file(stereo_file), **values}  # the command line wins
    if not files:
        po.fail(f"Missing input arguments.\n{STEREO_USAGE}")
    files = list(files)
    input_dem = ""
    if os.path.splitext(files[-1])[1] and os.path.exists(files[-1]) and _open(files[-1])["wkt"]:
        input_dem = files.pop()
    if len(files) < 3:
        po.fail("Expecting at least three inputs to stereo.")
    opt_dem = values.get("dem", [""])[0]
    if input_dem and opt_dem and os.path.realpath(input_dem) != os.path.realpath(opt_dem):
        po.fail("Cannot specify both a positional DEM and --dem with different values.")
    input_dem = input_dem or opt_dem
    prefix = files.pop()
    if prefix.endswith(IMAGE_EXT + CAM_EXT) or not prefix:
        po.fail(f"Invalid output prefix: {prefix}.")
    images = [f for f in files if f.endswith(IMAGE_EXT)][:2] if len(files) != 4 else files[:2]
    cameras = files[2:] if len(files) == 4 else []
    if len(images) < 2:
        po.fail("Missing the input files and/or output prefix.")
    if values.get("bundle-adjust-prefix", [""])[0] and values.get("alignment-method", [""])[0] == "epipolar":
        po.fail("Error: Epipolar alignment does not support using a bundle adjust prefix.")  # stereo.cc:1044-1047
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    left, right = (_open(p) for p in images)
    mapprojected = bool(input_dem) and bool(left["wkt"]) and bool(right["wkt"])
    if mapprojected:  # StereoSession::initialize -> read_mapproj_cams
        for image, info, camera in zip(images, (left, right), cameras or ["", ""]):
            dem_file = info["tags"].get("DEM_FILE", "")
            if not dem_file:
                print(f"Warning: Missing field value for: DEM_FILE in {image}.\nUsing DEM: {input_dem} instead.")
                dem_file = input_dem
            if input_dem != dem_file and "accept-provided-mapproj-dem" not in values:
                po.fail("The DEM used for map projection is different from the one provided currently.\n"
                        f"Mapprojection DEM: {dem_file}\nCurrent DEM: {input_dem}\n"
                        "To override this error, use: --accept-provided-mapproj-dem.\n"
                        "Or, to change the DEM name in the geoheader of mapprojected images, run\n"
                        "  image_calc -c var_0 --mo DEM_FILE=myDem.tif in.tif -o out.tif -d float32\n"
                        "but only if sure that the DEMs are equivalent.")
            recorded = info["tags"].get("INPUT_IMAGE_FILE", "") or image
            cam_file = info["tags"].get("CAMERA_FILE", "") or (recorded if "CAMERA_MODEL_TYPE" in info["tags"]
                                                               else camera)
            if not os.path.exists(cam_file):
                po.fail(f"Failed to load the camera model from {cam_file} for image: {recorded}.")
            read_cube_label(cam_file)
            _mapprojection_adjustment(info["tags"], recorded, cam_file)
        if not os.path.exists(input_dem):
            po.fail(f"StereoSession: DEM '{input_dem}' does not exist.")
    # the triangulation cameras (stereo.cc:1188-1190, StereoSession.cc:391-433), adjusted with
    # --bundle-adjust-prefix; a missing .adjust is an InputErr there, not caught
    ba_prefix = values.get("bundle-adjust-prefix", [""])[0]
    if ba_prefix:
        for image, info, camera in zip(images, (left, right), cameras or ["", ""]):
            _asp_adjust.load(ba_prefix, image, camera, info["tags"])
    # validateStereoOptions
    if input_dem and not (left["wkt"] and right["wkt"]):
        po.fail(f"The images are not map-projected, cannot use the provided DEM: {input_dem}")
    if input_dem and left["wkt"] != right["wkt"]:
        po.fail("The left and right images must use the same projection.")
    if input_dem and left["transform"] and right["transform"] and "allow-different-mapproject-gsd" not in values:
        a, b = left["transform"], right["transform"]
        if abs(a.a - b.a) > 1e-10 or abs(a.e - b.e) > 1e-10:
            po.fail("The input mapprojected images must have the same ground resolution for best results. This "
                    "can be overriden with the option --allow-different-mapproject-gsd, but is not recommended.")
    if "stereo-dist-mode" in values and not mapprojected:
        po.fail("In distributed stereo mode the session must be map-projected.")
    return {"values": values, "images": images, "cameras": cameras, "prefix": prefix, "dem": input_dem,
            "left": left, "right": right}


def stereo_parse(argv: list[str], fault: str | None) -> None:
    s = stereo_session("stereo_parse", argv)
    _apply_fault(fault)
    params = s["values"].get("stereo-dist-tile-params")
    if params and [int(v) for v in params] != [0, 0]:
        _dist_tile_list(s, *(int(v) for v in params))
        return
    for key, value in (("in_file1", s["images"][0]), ("in_file2", s["images"][1]),
                       ("cam_file1", (s["cameras"] + ["", ""])[0]), ("cam_file2", (s["cameras"] + ["", ""])[1]),
                       ("input_dem", s["dem"]), ("stereo_session", "isismapisis" if s["dem"] else "isis"),
                       ("out_prefix", s["prefix"])):
        print(f"{key},{value}")
    print(f"trans_left_image,{s['prefix']}-L.tif\ntrans_right_image,{s['prefix']}-R.tif", flush=True)


def _dist_tile_list(s: dict, size: int, padding: int) -> None:
    from rasterio.warp import transform_bounds

    if size <= 0 or padding <= 0:
        po.fail("Tile size and padding must be positive.")
    left, right = s["left"], s["right"]
    if not left["wkt"]:
        po.fail(f"Missing georeference in: {s['images'][0]}")
    if not right["wkt"]:
        po.fail(f"Missing georeference in: {s['images'][1]}")
    t1, t2 = left["transform"], right["transform"]
    box1 = (t1.c, t1.f + t1.e * left["height"], t1.c + t1.a * left["width"], t1.f)
    box2 = transform_bounds(right["crs"], left["crs"], t2.c, t2.f + t2.e * right["height"],
                            t2.c + t2.a * right["width"], t2.f)
    inter = (max(box1[0], box2[0]), max(box1[1], box2[1]), min(box1[2], box2[2]), min(box1[3], box2[3]))
    if inter[0] >= inter[2] or inter[1] >= inter[3]:
        po.fail("The two images do not overlap.")
    # point_to_pixel_bbox, grown by one pixel, cropped to the left image
    inv = ~t1
    (c0, r0), (c1, r1) = inv * (inter[0], inter[3]), inv * (inter[2], inter[1])
    x0, y0 = max(0, math.floor(c0) - 1), max(0, math.floor(r0) - 1)
    x1, y1 = min(left["width"], math.floor(c1) + 2), min(left["height"], math.floor(r1) + 2)
    prefix = s["prefix"]
    path = prefix + TILE_LIST
    print(f"Writing tile list: {path}\nTile size: {size}, padding: {padding}")
    with open(path, "w") as f:
        for iy in range(math.ceil((y1 - y0) / size)):
            for ix in range(math.ceil((x1 - x0) / size)):
                tx, ty = x0 + ix * size, y0 + iy * size
                f.write(f"{tx} {ty} {min(size, x1 - tx)} {min(size, y1 - ty)} {padding}\n")


def _stats_files(prefix: str, images: list[str]) -> list[str]:
    out = []
    for image in images:  # gather_stats (src/asp/Core/ImageUtils.cc:313-321)
        if image.startswith(prefix):
            out.append(os.path.splitext(image)[0] + "-stats.tif")
        else:
            out.append(f"{prefix}-{os.path.splitext(os.path.basename(image))[0]}-stats.tif")
    return out


def stereo_pprc(argv: list[str], fault: str | None) -> None:
    import numpy as np

    s = stereo_session("stereo_pprc", argv)
    _apply_fault(fault)
    prefix = s["values"].get("output-prefix-override", [s["prefix"]])[0] or s["prefix"]
    for path, image in zip(_stats_files(prefix, s["images"]), s["images"]):
        # reused when newer than the image (first_is_newer, ImageUtils.cc:324): a tile's symlinked stats
        if os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(image):
            continue
        print(f"Computing statistics for {image}")
        _write(path, np.array([[[0.0, 0.2, 0.1, 0.05, 0.0, 0.2]]], dtype="float32"))
    if "stop-after-stats" in s["values"]:
        print("Stopping after computing image statistics.", flush=True)
        return
    crop = [int(v) for v in s["values"].get("left-image-crop-win", ["0", "0", "0", "0"])]
    pad = int(s["values"].get("sgm-collar-size", ["512"])[0])
    width = (crop[2] or s["left"]["width"]) + 2 * pad
    height = (crop[3] or s["left"]["height"]) + 2 * pad
    for suffix in ("L", "R"):
        _write(f"{prefix}-{suffix}.tif", np.full((1, height, width), 0.1, dtype="float32"))


# --------------------------------------------------------------- stereo_tile
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


def tile_fault(index: int, attempt: int, algorithm: str = "asp_bm") -> str | None:
    """The fault requested for this tile, attempt and stereo algorithm, if any."""
    for item in filter(None, os.environ.get("CTXDASK_STANDIN_TILE_FAULTS", "").split(",")):
        where, _, what = item.strip().partition(":")
        what, _, only = what.partition("/")
        fault, _, attempts = what.partition("@")
        if int(where) == index and _in(attempt, attempts) and only in ("", algorithm):
            return fault
    return None


def _algorithm(args: list[str], stereo_file: str) -> str:
    """``--stereo-algorithm`` as the stereo programs will read it: the command line wins over the
    stereo file (stereo.cc:800-807); ASP's default is asp_bm (StereoSettings.cc:381-382)."""
    if "--stereo-algorithm" in args:
        return args[args.index("--stereo-algorithm") + 1]
    return _stereo_file(stereo_file).get("stereo-algorithm", ["asp_bm"])[0]


def _raise_error(message: str, code: int = -1) -> None:
    """``asp_system_utils.raise_error`` (src/asp/Python/asp_system_utils.py:32-35)."""
    print(f"Error: {message}", file=sys.stderr, flush=True)
    sys.exit(code & 0xFF)


def _exception(message: str) -> None:
    """An uncaught Python exception in an ASP script: a traceback and exit 1."""
    print(f"Traceback (most recent call last):\n  File \"stereo_tile\", line 1, in <module>\nException: {message}",
          file=sys.stderr, flush=True)
    sys.exit(1)


def _in_process(prog: str, func, argv: list[str]) -> tuple[int, str]:
    """Run a stereo program's stand-in in this process; (exit code, its output)."""
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            func(argv, None)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue()


def _stage(name: str, args: list[str], extra: list[str], tile_prefix: str, needs: str | None, makes: dict,
           fault: str | None) -> None:
    """One ``stereo_run``: the C++ step checks the session and its input, writes its outputs."""
    import numpy as np

    prog = f"stereo_{name}"
    if name == "corr" and fault == "child-crash":
        _exception(f"Stereo step {prog} failed")  # killed by a signal: the C++ program printed nothing
    code, text = _in_process(prog, lambda a, f: stereo_session(prog, a), [*args, *extra])
    sys.stdout.write(text)
    if code == 0 and name == "corr" and fault == "fail":
        print(f"\n\nERROR: {prog}: Not enough valid matches (stand-in fault 'fail')\n", flush=True)
        code = 1
    if code == 0 and needs and not os.path.exists(f"{tile_prefix}-{needs}.tif"):
        print(f"\n\nERROR: DiskImageResourceGDAL: Could not open {tile_prefix}-{needs}.tif\n", file=sys.stderr)
        code = 1
    if code != 0:
        _exception(f"Stereo step {prog} failed")
    for suffix, (bands, dtype) in makes.items():
        _write(f"{tile_prefix}-{suffix}.tif", np.full((bands, 8, 8), 0.1, dtype=dtype))


def _point2dem(tile_prefix: str, p2d: list[str], map_info: dict, tile: tuple, index: int, fault: str | None) -> None:
    """point2dem on the tile's cloud, as stereo_tile's ``subprocess.call`` (status ignored)."""
    import numpy as np
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds

    if fault == "no-dem":
        print("\n\nERROR: point2dem: stand-in fault 'no-dem'\n", file=sys.stderr, flush=True)
        return
    if not os.path.exists(f"{tile_prefix}-PC.tif"):
        print(f"\n\nERROR: point2dem: cannot open {tile_prefix}-PC.tif\n", file=sys.stderr, flush=True)
        return
    tr = float(p2d[p2d.index("--tr") + 1])
    crs = p2d[p2d.index("--t_srs") + 1] if "--t_srs" in p2d else map_info["wkt"]
    x, y, w, h = tile
    t = map_info["transform"]
    (ax, ay), (bx, by) = t * (x, y), t * (x + w, y + h)
    left, bottom, right, top = transform_bounds(map_info["crs"], crs, min(ax, bx), min(ay, by), max(ax, bx),
                                                max(ay, by))
    # point2dem's grid: nodes (pixel centres) at integer multiples of --tr, the box snapped outwards
    # (OrthoRasterizer.cc:634-645, CartographyUtils.cc:58-61), pixel corners half a node out
    # (PointToDem2.cc:485-491): tiles and the aligned DEM of their mosaic share one lattice
    nx0, nx1 = tr * math.floor(left / tr), tr * math.ceil(right / tr)
    ny0, ny1 = tr * math.floor(bottom / tr), tr * math.ceil(top / tr)
    cols, rows = round((nx1 - nx0) / tr) + 1, round((ny1 - ny0) / tr) + 1
    grid = from_origin(nx0 - tr / 2, ny1 + tr / 2, tr, tr)
    nodata = -1e6  # point2dem's default --nodata-value (src/asp/Tools/point2dem.cc:137)
    outputs = {"DEM": -1500.0 - index}
    if "--orthoimage" in p2d:
        outputs["DRG"] = 0.1 + 0.02 * (index % 5)
    if "--errorimage" in p2d:
        outputs["IntersectionErr"] = 0.5
    for suffix, value in outputs.items():
        _write(f"{tile_prefix}-{suffix}.tif", np.full((1, rows, cols), value, dtype="float32"), crs=crs,
               transform=grid, nodata=nodata)
    if fault == "partial":
        path = f"{tile_prefix}-DEM.tif"
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 3)
    print("Percentage of valid pixels: 100%")


def stereo_tile(argv: list[str], fault: str | None) -> None:
    p = argparse.ArgumentParser(usage="stereo_tile [options] <images> [<cameras>]\n                  "
                                      "<output_prefix>\n        Process a single tile for distributed stereo.\n")
    p.add_argument("--tile-index", dest="tile_index", default=None, type=int)
    p.add_argument("-e", "--entry-point", dest="entry_point", default=0, type=int)
    p.add_argument("--stop-point", dest="stop_point", default=9, type=int)
    p.add_argument("--dem", dest="dem", default=None)
    p.add_argument("--point2dem-options", dest="point2dem_options", default="")
    p.add_argument("-s", "--stereo-file", dest="stereo_file", default="./stereo.default")
    p.add_argument("--corr-seed-mode", dest="seed_mode", default=None, type=int)
    p.add_argument("--sparse-disp-options", dest="sparse_disp_options", default=None)
    p.add_argument("--dem-mosaic-index", dest="dem_mosaic_index", default=None, type=int)
    p.add_argument("--dem-mosaic-master", dest="dem_mosaic_master", default=None)
    p.add_argument("--run-dir", dest="runDir", default=None)
    p.add_argument("--verbose", dest="verbose", default=False, action="store_true")
    p.add_argument("--dry-run", dest="dryrun", default=False, action="store_true")
    p.add_argument("-v", "--version", dest="version", default=False, action="store_true")
    opt, args = p.parse_known_args(argv)
    if opt.version:
        print(f"NASA Ames Stereo Pipeline {po.ASP_VERSION} (ctxdask test stand-in)")
        sys.exit(0)
    if opt.runDir is not None:
        os.chdir(opt.runDir)
    if opt.dem_mosaic_index is not None:
        if opt.dem_mosaic_master is None:
            _raise_error("--dem-mosaic-master is required with --dem-mosaic-index.")
        with open(opt.dem_mosaic_master) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        if not 0 <= opt.dem_mosaic_index < len(lines):
            _raise_error(f"Block index {opt.dem_mosaic_index} out of range [0, {len(lines) - 1}]")
        parts = lines[opt.dem_mosaic_index].split()
        if len(parts) != 2:
            _raise_error("Invalid master file line: " + lines[opt.dem_mosaic_index])
        subprocess.call(["dem_mosaic", "--dem-list", parts[0], "-o", parts[1]])
        sys.exit(0)
    if not args:
        p.print_help()
        _raise_error("Missing input files.", code=2)
    if opt.tile_index is None:
        _raise_error("The option --tile-index is required.", code=2)
    if opt.dem is None:
        _raise_error("The option --dem is required for tile processing.", code=2)
    for bad in ("--left-image-crop-win", "--right-image-crop-win"):
        if bad in args:
            _raise_error(f"The option {bad} is not supported by stereo_tile.")
    args += ["--dem", opt.dem]
    if opt.seed_mode is not None:
        args += ["--corr-seed-mode", str(opt.seed_mode)]
    if os.path.exists(opt.stereo_file):
        args += ["--stereo-file", opt.stereo_file]
    code, text = _in_process("stereo_parse", stereo_parse, args)
    if code != 0:
        print(text.rstrip(), flush=True)
        _exception("Failed executing: stereo_parse " + " ".join(args))
    settings = dict(line.split(",", 1) for line in text.splitlines() if "," in line)
    prefix = settings["out_prefix"]
    print(f"Output prefix: {prefix}\nTile index: {opt.tile_index}")
    if not os.path.exists(prefix + TILE_LIST):
        _exception(f"Tile list file not found: {prefix}{TILE_LIST}")
    with open(prefix + TILE_LIST) as f:
        rows = [ln.split() for ln in f if ln.strip()]
    for row in rows:
        if len(row) != 5:
            _exception("Invalid tile list line: " + " ".join(row))
    if not 0 <= opt.tile_index < len(rows):
        _raise_error(f"Tile index {opt.tile_index} out of range [0, {len(rows) - 1}]")
    x, y, w, h, padding = (int(v) for v in rows[opt.tile_index])
    print(f"Tile: {x}_{y}_{w}_{h}, padding: {padding}", flush=True)
    subdir = f"{prefix}-{x}_{y}_{w}_{h}"
    os.makedirs(subdir, exist_ok=True)
    tile_prefix = subdir + "/" + os.path.basename(prefix)
    for f in glob.glob(prefix + "*stats.tif"):  # symlinkStatsFiles
        if not os.path.isdir(f):
            dst = f.replace(prefix, tile_prefix)
            if not os.path.lexists(dst):
                os.symlink(os.path.relpath(f, subdir), dst)
    extra = ["--output-prefix-override", tile_prefix, "--stereo-dist-mode", "--left-image-crop-win", str(x), str(y),
             str(w), str(h), "--sgm-collar-size", str(padding)]
    runs = lambda step: opt.entry_point <= STEPS[step] < opt.stop_point  # noqa: E731
    if runs("dem") and "--tr" not in opt.point2dem_options:
        _raise_error("The option --point2dem-options must include --tr to ensure consistent grid size across "
                     "all tiles.")
    # the left image as stereo_parse reports it (args[0] may be an option: --stereo-algorithm ...)
    left = os.path.basename(settings.get("in_file1", "tile"))
    attempt = _attempt(f"{left}-{opt.tile_index}")
    started = os.environ.get("CTXDASK_STANDIN_TILE_STARTED")
    if started:
        with open(started, "a") as f:
            f.write(f"{opt.tile_index} {attempt} {os.getpid()}\n")
    delay = float(os.environ.get("CTXDASK_STANDIN_TILE_SLEEP", "0") or 0)
    if delay:
        time.sleep(delay)
    fault = tile_fault(opt.tile_index, attempt, _algorithm(args, opt.stereo_file)) or fault
    if fault and fault.startswith("slow="):
        time.sleep(float(fault.removeprefix("slow=")))
        fault = None
    if fault not in (None, "no-dem", "partial", "child-crash", "fail"):
        _apply_fault(fault)
    if runs("pprc"):
        code, text = _in_process("stereo_pprc", stereo_pprc, [*args, *extra])
        sys.stdout.write(text)
        if code != 0:
            _exception("Stereo step stereo_pprc failed")
    stages = [("corr", "L", {"D": (3, "float32")}), ("rfne", "D", {"RD": (3, "float32")}),
              ("fltr", "RD", {"F": (3, "float32")}), ("tri", "F", {"PC": (4, "float64")})]
    for name, needs, makes in stages:
        if runs(name):
            _stage(name, args, extra, tile_prefix, needs, makes, fault)
    if runs("dem"):
        p2d = shlex.split(opt.point2dem_options)
        map_info = _open(settings["in_file1"])
        _point2dem(tile_prefix, p2d, map_info, (x, y, w, h), opt.tile_index, fault)
    sys.exit(0)


# ---------------------------------------------------------------- dem_mosaic
def dem_mosaic(argv: list[str], fault: str | None) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject, transform_bounds

    values, dems = po.parse("dem_mosaic", argv, po.DEM_MOSAIC, None,
                            "[options] <dem files or -l dem_files_list.txt> -o output_file_prefix")
    if "output-prefix" not in values:
        po.fail("No output prefix was specified.")
    dem_list = values.get("dem-list", [""])[0] or values.get("dem-list-file", [""])[0]
    if dem_list:
        if dems:
            po.fail("The DEMs were specified via a list. There were however extraneous files or options passed "
                    f"in: {''.join(dems)}.")
        with open(dem_list) as f:
            dems = [t for ln in f for t in ln.split()]
        if not dems:
            po.fail("No DEM files to mosaic.")
    elif not dems:
        po.fail("No input DEMs were specified.")
    hole_fill = _dem_mosaic_one_operation(values, dems)
    infos = [_open(d) for d in dems]
    for dem, info in zip(dems, infos):
        if not info["wkt"]:
            po.fail(f"No georeference found in: {dem}.")
    _apply_fault(fault)
    crs = values.get("t_srs", [None])[0] or infos[0]["crs"]
    res = float(values["tr"][0]) if "tr" in values else abs(infos[0]["transform"].a)
    with rasterio.open(dems[0]) as first:
        nodata = first.nodata if first.nodata is not None else -3.4028234663852886e38
    if "output-nodata-value" in values:
        nodata = float(values["output-nodata-value"][0])
    boxes = []
    for info in infos:
        t = info["transform"]
        box = (t.c, t.f + t.e * info["height"], t.c + t.a * info["width"], t.f)
        boxes.append(transform_bounds(info["crs"], crs, *box) if info["crs"] != crs else box)
    left, top = min(b[0] for b in boxes), max(b[3] for b in boxes)
    width = max(1, round((max(b[2] for b in boxes) - left) / res))
    height = max(1, round((top - min(b[1] for b in boxes)) / res))
    transform = from_origin(left, top, res, res)
    data = np.full((height, width), nodata, dtype="float32")
    for dem in dems:  # --first semantics: the first valid value wins
        with rasterio.open(dem) as src:
            block = np.full((height, width), nodata, dtype="float32")
            reproject(rasterio.band(src, 1), block, dst_transform=transform, dst_crs=crs, dst_nodata=nodata,
                      src_nodata=src.nodata, resampling=Resampling.nearest)
        fill = (block != nodata) & (data == nodata)
        data[fill] = block[fill]
    if hole_fill:  # on the loaded DEM, before it is blended (dem_mosaic.cc:476-479)
        data = fill_holes(data, nodata, hole_fill)
    prefix = values["output-prefix"][0]
    out = prefix if prefix.endswith(".tif") else prefix + "-tile-0.tif"
    print(f"Writing: {out}")
    _write(out, data[None], crs=crs, transform=transform, nodata=nodata)


def _dem_mosaic_one_operation(values: dict, dems: list[str]) -> int:
    """``--hole-fill-length`` (0: none) once ``handle_arguments`` has let it through
    (src/asp/Core/DemMosaicParse.cc:221-223 and 357-369 at 55bf46022)."""
    def number(name: str) -> float:
        return float(values.get(name, ["0"])[0])

    hole_fill = int(number("hole-fill-length"))
    if hole_fill < 0:
        po.fail("The hole fill length must not be negative.")
    operations = sum(number(name) > 0 for name in ("dem-blur-sigma", "hole-fill-length", "fill-search-radius",
                                                   "erode-length"))
    if operations > 1:
        po.fail("Cannot fill holes (based on size or search radius), blur, and erode the input DEM at the same "
                "time.")
    if operations and ("t_srs" in values or number("tr") > 0 or len(dems) > 1
                       or number("priority-blending-length") > 0):
        po.fail("Cannot fill holes (based on size or search radius), blur, or erode, if there is more than one "
                "input DEM, or reprojection, or priority blending is desired. These operations should be done "
                "one at a time as there may be issues due to the fact each input DEM has its own grid size and "
                "also the order of operations.")
    return hole_fill


PROGRAMS = {
    "mapproject": _asp_map.mapproject,
    "mapproject_single": _asp_map.mapproject_single,
    "stereo_parse": stereo_parse,
    "stereo_pprc": stereo_pprc,
    "stereo_tile": stereo_tile,
    "dem_mosaic": dem_mosaic,
}


def main(name: str) -> None:
    """Entry point of every tiled-stereo stand-in executable."""
    _standin.PROGRAMS.update(PROGRAMS)
    _standin.main(name)
