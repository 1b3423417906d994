"""Stand-in for ASP's ``bundle_adjust`` on ISIS cubes (ASP 3.7), built from ASP's source.

NOT THE REAL PROGRAM. It follows NeoGeographyToolkit/StereoPipeline at 55bf46022; nothing is
optimized: the residuals are made up (deterministic per image pair, final below initial) and
the adjustments are small fixed-looking rotations and shifts.

Command line (src/asp/Sessions/BundleAdjustParse.cc)
    The options ``handleBaArgs`` registers (:752-1297, table in :mod:`_asp_options`), parsed by
    ``check_command_line``: an unknown one is ``ERROR: Error parsing input: unrecognised option``
    on stdout, exit 1. Positionals are ``input-files`` (any number, :1299-1304). No ``-o`` is
    "Missing the output prefix." (:1317-1319); then the log file
    ``<prefix>-log-bundle_adjust-MM-DD-HHMM-<pid>.txt`` (:1322, src/asp/Core/AspLog.cc:94-110);
    ``--num-iterations`` with ``--max-iterations`` is refused (:1325-1328).
``loadValidateBaOptions`` (:47-730)
    ``.gcp`` files are set apart (:57-58); ``--image-list`` with files is refused (:65-67); the rest
    is split by ``separate_images_from_cameras`` (src/asp/Core/FileUtils.cc:257-386): a
    ``.adjust`` file is "an adjustment. Use the original cameras and the option
    --bundle-adjust-prefix.", an unknown extension "Unknown file type passed on input", a missing
    file "Cannot find the file: X." (:273-296); only ``.cub`` files are all images with empty
    cameras (:347-350, :382-385). Duplicate names (src/asp/Core/BundleAdjustUtils.cc:230-260),
    no images (:105-106), ``--ip-per-image`` with ``--ip-per-tile`` (:108-110), negative weights
    and a non-positive ``--min-triangulation-angle`` (:273-288), non-positive robust thresholds
    (:382-392), an empty ``--heights-from-dem`` (:395-398), it with ``--heights-from-dem-list``
    (:403-406), ``--heights-from-dem-uncertainty`` without a DEM (:411-414) or not positive with
    one (:415-418), a DEM without a georeference (:436-450). The datum is ``--datum``, else the
    cameras' (ISIS: the target's sphere, src/asp/Sessions/CameraUtils.cc:188-240).
Cameras (``asp::load_cameras``, bundle_adjust.cc:811-816)
    An ISIS cube needs spiceinit's ``Kernels`` group to be a camera.
Outputs (bundle_adjust.cc:802-911)
    ``<prefix>-<stem>-stats.tif`` per image (``gather_stats``, src/asp/Core/ImageUtils.cc:313-321);
    ``<prefix>-<stem1>__<stem2>.match`` (docs/tools/bundle_adjust.rst:677-685); per pass
    (:686-718, ``--num-passes`` 2 by default, below 1 "Error: Expecting at least one bundle adjust
    pass.") the first pass's ``-initial_residuals_{stats.txt,raw_pixels.txt,pointmap.csv}`` and
    ``-initial_points.kml`` (:279-292), each pass's ``-final_residuals_*`` and ``-final_points.kml``
    (:351-362, so the last pass's stay) in the formats of ``write_residual_logs`` and
    ``write_residual_map`` (src/asp/Camera/BundleAdjustResiduals.cc:164-222, 303-466: ``# Image,
    mean, median, count`` with the median the element at n/2 of the sorted norms; ``# lon, lat,
    height_above_datum, mean_residual, num_observations`` then ``# <datum>``, points on the
    ``--heights-from-dem`` DEM flagged ``# from DEM``); between passes the points whose error
    exceeds ``min(max(pct-th percentile * factor, err1), err2)`` of ``--remove-outliers-params``
    are outliers (docs/tools/bundle_adjust.rst:172-185), and fewer remaining points than
    ``--min-matches`` is "Error: Too few points remain after filtering." (:704-717). Then
    ``<prefix>-<stem>.adjust`` per image (src/asp/Camera/BundleAdjustIO.cc:583-610, the name of
    :mod:`_asp_adjust`), ``-image_list.txt``, ``-camera_list.txt`` (:656-667),
    ``-<stem1>__<stem2>-clean.match`` and ``-convergence_angles.txt``
    (src/asp/Camera/BundleAdjustCamera.cc:1113-1130, BundleAdjustIO.cc:391-407),
    ``-camera_offsets.txt`` (:766-770, BundleAdjustResiduals.cc:634-660) and
    ``-triangulation_offsets.txt`` (:774-776, BundleAdjustResiduals.cc:569-590).

Faults: ``CTXDASK_STANDIN_FAULT`` of :mod:`_standin` (``partial``: a truncated
``-initial_residuals_stats.txt`` and nothing more, exit 0).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _asp_adjust as adjust  # noqa: E402
import _asp_map  # noqa: E402
import _asp_options as po  # noqa: E402
import _standin  # noqa: E402
from _asp_dem import _usage, fail_other, parse_options  # noqa: E402
from _standin import _apply_fault, read_cube_label  # noqa: E402
from _standin_tiles import CAM_EXT, IMAGE_EXT, _write  # noqa: E402

USAGE = "<images> <cameras> <optional ground control points> -o <output prefix> [options]"
DEFAULTS = {"output-prefix": "", "image-list": "", "datum": "", "num-passes": 2, "num-iterations": 1000,
            "max-iterations": 1000, "min-matches": 5, "ip-per-tile": 0, "ip-per-image": 0, "camera-weight": 0.0,
            "rotation-weight": 0.0, "camera-position-weight": 0.0, "tri-weight": 0.1, "tri-robust-threshold": 0.1,
            "robust-threshold": 0.5, "camera-position-robust-threshold": 0.1, "min-triangulation-angle": 0.1,
            "heights-from-dem": "", "heights-from-dem-list": "", "heights-from-dem-uncertainty": -1.0,
            "heights-from-dem-robust-threshold": 0.1, "remove-outliers-params": "75.0 3.0 5.0 8.0"}
_FLOATS = ("camera-weight", "rotation-weight", "camera-position-weight", "tri-weight", "tri-robust-threshold",
           "robust-threshold", "camera-position-robust-threshold", "min-triangulation-angle",
           "heights-from-dem-uncertainty", "heights-from-dem-robust-threshold")
KINDS = {**dict.fromkeys(_FLOATS, float),
         **dict.fromkeys(("num-passes", "num-iterations", "max-iterations", "min-matches", "ip-per-tile",
                          "ip-per-image"), int)}
#: the camera datum of an ISIS Mars cube (the target's sphere)
MARS = "Geodetic Datum --> Name: D_MARS  Spheroid: MARS  Semi-major axis: 3396190  Semi-minor axis: 3396190  " \
       "Meridian: Reference Meridian at 0  Proj4 Str: +proj=longlat +a=3396190 +b=3396190 +no_defs"


def _log_file(prefix: str, argv: list[str]) -> None:
    stamp = datetime.datetime.now().strftime("%m-%d-%H%M")
    with open(f"{prefix}-log-bundle_adjust-{stamp}-{os.getpid()}.txt", "w") as f:
        f.write(f"ASP {po.ASP_VERSION} (ctxdask test stand-in)\nbundle_adjust {' '.join(argv)}\n")


def _separate(files: list[str]) -> list[str]:
    """``separate_images_from_cameras`` for ISIS cubes: the images (their cameras are empty)."""
    for path in files:
        if path.endswith(".adjust"):
            po.fail(f"The file {path} is an adjustment. Use the original cameras and the option "
                    "--bundle-adjust-prefix.")
        if not path.endswith(IMAGE_EXT + CAM_EXT):
            po.fail(f"Unknown file type passed on input: {path}.")
    for path in files:
        if not os.path.exists(path):
            po.fail(f"Cannot find the file: {path}.")
    images = [f for f in files if f.endswith(IMAGE_EXT)]
    if len(images) != len(files) or not all(f.endswith(".cub") for f in files):
        po.fail("This stand-in models ISIS cubes only (images that carry their cameras).")
    seen: set[str] = set()
    for image in images:
        name = os.path.basename(image)
        stem = adjust.file_name("", image)[1:]
        if name in seen:
            po.fail(f"Found duplicate image: {name}")
        if stem in seen:
            po.fail(f"Found duplicate adjustment name: {stem}")
        seen |= {name, stem}
    return images


def _check(o: dict) -> None:
    """The numeric and DEM rules of ``loadValidateBaOptions`` that a CTX run can meet."""
    if o["ip-per-image"] > 0 and o["ip-per-tile"] > 0:
        po.fail("Can set only one of --ip-per-image and --ip-per-tile.")
    for key, what in (("camera-weight", "camera weight"), ("rotation-weight", "rotation weight"),
                      ("camera-position-weight", "camera position weight"), ("tri-weight", "triangulation weight")):
        if o[key] < 0:
            po.fail(f"The {what} must be non-negative.")
    if o["min-triangulation-angle"] <= 0:
        po.fail("The minimum triangulation angle must be positive.")
    for key in ("robust-threshold", "tri-robust-threshold", "camera-position-robust-threshold"):
        if o[key] <= 0:
            po.fail(f"The value of --{key} must be positive.")
    given, dem = o["_given"], o["heights-from-dem"]
    if "heights-from-dem" in given and not dem:
        po.fail("The value of --heights-from-dem is empty. Then it must not be set at all.")
    if dem and o["heights-from-dem-list"]:
        po.fail("Cannot set both --heights-from-dem and --heights-from-dem-list. Use one or the other.")
    if "heights-from-dem-uncertainty" in given and not (dem or o["heights-from-dem-list"]):
        po.fail("The value of --heights-from-dem-uncertainty is set, but neither --heights-from-dem nor "
                "--heights-from-dem-list is set.")
    if dem and o["heights-from-dem-uncertainty"] <= 0:
        po.fail("The value of --heights-from-dem-uncertainty must be positive.")
    if dem:
        import rasterio

        try:
            with rasterio.open(dem) as src:
                georef = src.crs is not None
        except rasterio.errors.RasterioIOError as exc:
            fail_other(f"DiskImageResourceGDAL: Could not open {dem}: {exc}")
        if not georef:
            po.fail(f"The DEM {dem} does not have a georeference.")


def _outlier_limit(params: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in params.replace(",", " ").split())
    except ValueError:
        values = ()
    if len(values) != 4:
        po.fail(f"Error parsing input:\nthe argument ('{params}') for option '--remove-outliers-params' is invalid")
    return values


def _residuals(images: list[str], passes: int, limits) -> dict:
    """Made-up reprojection errors: per point and camera, initial and after each pass; outliers."""
    import numpy as np

    seed = int.from_bytes(hashlib.sha256("\0".join(os.path.basename(i) for i in images).encode()).digest()[:8],
                          "little")
    rng = np.random.default_rng(seed)
    n = 60 + seed % 40
    cams = len(images)
    initial = rng.rayleigh(1.2 + (seed >> 8) % 100 / 100.0, size=(n, cams, 1)) * _unit(rng, n, cams)
    blunders = rng.choice(n, size=3, replace=False)
    initial[blunders] *= 6.0
    final = initial * 0.15  # the solved cameras: a good fraction of a pixel
    final[blunders] = initial[blunders] * 0.9  # mismatches stay wrong
    inlier = np.ones(n, bool)
    for _ in range(passes - 1):  # outliers are removed between passes
        norms = np.linalg.norm(final, axis=2).mean(axis=1)
        pct, factor, err1, err2 = limits
        limit = min(max(np.percentile(norms[inlier], pct) * factor, err1), err2)
        inlier &= norms <= limit
    return {"n": n, "initial": initial, "final": final, "inlier": inlier, "rng": rng}


def _unit(rng, n: int, cams: int):
    import numpy as np

    angle = rng.uniform(0, 2 * np.pi, size=(n, cams))
    return np.stack([np.cos(angle), np.sin(angle)], axis=2)


def _write_logs(prefix: str, images: list[str], errors, keep, points, datum: str, truncate: bool = False) -> None:
    """``write_residual_logs`` and ``write_residual_map`` for one set of errors (points kept by ``keep``)."""
    import numpy as np

    norms = np.linalg.norm(errors, axis=2)
    lines = ["# Pixel reprojection error per camera", "# Image, mean, median, count"]
    raw = []
    for c, image in enumerate(images):
        these = norms[keep, c]
        median = float(np.sort(these)[len(these) // 2]) if len(these) else float("nan")
        lines.append(f"{image}, {float(these.mean()):.17g}, {median:.17g}, {len(these)}")
        raw.append(f"{image}, {len(these)}")
        raw += [f"{ex:.17g}, {ey:.17g}" for ex, ey in errors[keep, c]]
    text = "\n".join(lines) + "\n"
    with open(f"{prefix}_stats.txt", "w") as f:
        f.write(text[: len(text) // 2] if truncate else text)
    if truncate:
        return
    with open(f"{prefix}_raw_pixels.txt", "w") as f:
        f.write("\n".join(raw) + "\n")
    rows = ["# lon, lat, height_above_datum, mean_residual, num_observations", f"# {datum}"]
    for i in np.flatnonzero(keep):
        lon, lat, height, from_dem = points[i]
        rows.append(f"{lon:.17g}, {lat:.17g}, {height:.17g}, {float(norms[i].mean()):.17g}, {len(images)}"
                    + (" # from DEM" if from_dem else ""))
    with open(f"{prefix}_pointmap.csv", "w") as f:
        f.write("\n".join(rows) + "\n")


def _points(images: list[str], n: int, rng, dem: str) -> list[tuple[float, float, float, bool]]:
    """Triangulated points over the cameras' common footprint; on the DEM with ``--heights-from-dem``."""
    import numpy as np

    crs = bounds = None
    heights = None
    if dem:
        import rasterio
        from rasterio.warp import transform

        with rasterio.open(dem) as src:
            crs, bounds = src.crs, src.bounds
    lons, lats = zip(*_asp_map.footprint(images[0], crs, bounds))
    lon = rng.uniform(min(lons), max(lons), n)
    lat = rng.uniform(min(lats), max(lats), n)
    if dem:
        with rasterio.open(dem) as src:
            xs, ys = transform(_asp_map.LONLAT, src.crs, lon.tolist(), lat.tolist())
            heights = np.array([v[0] for v in src.sample(zip(xs, ys))], dtype=float)
    height = heights if heights is not None else rng.normal(-1500.0, 40.0, n)
    return [(float(a), float(b), float(h), heights is not None) for a, b, h in zip(lon, lat, height)]


def _kml(path: str, name: str, points, keep) -> None:
    marks = "".join(f"<Placemark><Point><coordinates>{p[0]!r},{p[1]!r},{p[2]!r}</coordinates></Point></Placemark>"
                    for p, k in zip(points, keep) if k)
    with open(path, "w") as f:
        f.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2">'
                f"<Document><name>{name}</name>{marks}</Document></kml>\n")


def bundle_adjust(argv: list[str], fault: str | None) -> None:
    import numpy as np

    o, files = parse_options("bundle_adjust", argv, po.BUNDLE_ADJUST, None, USAGE, DEFAULTS, KINDS)
    prefix = o["output-prefix"]
    if not prefix:
        po.fail(f"Missing the output prefix.\n{_usage('bundle_adjust', USAGE)}")  # usage as check_command_line made it
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    _log_file(prefix, argv)
    if {"num-iterations", "max-iterations"} <= o["_given"]:
        po.fail("Cannot set both --num-iterations and --max-iterations.")
    files = [f for f in files if not f.endswith(".gcp")]
    if o["image-list"] and files:
        po.fail("The option --image-list was specified, but also images or cameras on the command line.")
    images = _separate(files)
    if not images:
        po.fail("Missing input image files.")
    _check(o)
    limits = _outlier_limit(o["remove-outliers-params"])
    for image in images:  # the ISIS session makes each cube's camera
        if "Kernels" not in read_cube_label(image):
            fail_other(f"**ERROR** Unable to initialize camera model from group [Instrument] in [{image}]; "
                       "run spiceinit first.")
    datum = MARS if o["datum"].lower() in ("", "d_mars", "mars") else o["datum"]
    _apply_fault(fault)
    stems = [adjust.file_name("", image)[1:-len(".adjust")] for image in images]
    for stem in stems:
        _write(f"{prefix}-{stem}-stats.tif", np.array([[[0.0, 0.2, 0.1, 0.05, 0.0, 0.2]]], dtype="float32"))
    pairs = [(a, b) for a in range(len(images)) for b in range(a + 1, len(images))]
    for a, b in pairs:
        with open(f"{prefix}-{stems[a]}__{stems[b]}.match", "wb") as f:
            f.write(b"ctxdask stand-in match file (placeholder)\n")
    if o["num-passes"] <= 0:
        po.fail("Error: Expecting at least one bundle adjust pass.")
    r = _residuals(images, o["num-passes"], limits)
    points = _points(images, r["n"], r["rng"], o["heights-from-dem"])
    everyone = np.ones(r["n"], bool)
    _write_logs(f"{prefix}-initial_residuals", images, r["initial"], everyone, points, datum,
                truncate=fault == "partial")
    if fault == "partial":
        return
    _kml(f"{prefix}-initial_points.kml", "initial_points", points, everyone)
    if int(r["inlier"].sum()) < o["min-matches"]:
        po.fail(f"Error: Too few points remain after filtering. Number of remaining points is "
                f"{int(r['inlier'].sum())}, but value of --min-matches is {o['min-matches']}.")
    _write_logs(f"{prefix}-final_residuals", images, r["final"], r["inlier"], points, datum)
    _kml(f"{prefix}-final_points.kml", "final_points", points, r["inlier"])
    adjusts = []
    for i, image in enumerate(images):
        adjusts.append(adjust.file_name(prefix, image))
        print(f"Writing: {adjusts[-1]}")
        angle = 1e-6 * (i + 1)
        adjust.write(adjusts[-1], [0.5 * (i + 1), -0.25 * (i + 1), 0.1], [1.0 - angle * angle / 2, angle, 0.0, 0.0])
    for name, listed in (("image_list", images), ("camera_list", adjusts)):
        with open(f"{prefix}-{name}.txt", "w") as f:
            f.write("\n".join(listed) + "\n")
    for a, b in pairs:
        with open(f"{prefix}-{stems[a]}__{stems[b]}-clean.match", "wb") as f:
            f.write(b"ctxdask stand-in match file, outliers removed (placeholder)\n")
    with open(f"{prefix}-convergence_angles.txt", "w") as f:
        f.write("# Convergence angle percentiles (in degrees) for each image pair having matches\n"
                "# left_image right_image 25% 50% 75% num_matches\n")
        f.writelines(f"{images[a]} {images[b]} 14.5 15.2 15.9 {int(r['inlier'].sum())}\n" for a, b in pairs)
    with open(f"{prefix}-camera_offsets.txt", "w") as f:
        f.write("# Per-image absolute horizontal and vertical change in camera center (meters)\n")
        f.writelines(f"{image} {0.56 * (i + 1):.8g} 0.1\n" for i, image in enumerate(images))
    with open(f"{prefix}-triangulation_offsets.txt", "w") as f:
        f.write("# Per-image offsets between initial and final triangulated points (meters)\n"
                "# Image mean median count\n")
        f.writelines(f"{image} 2.5 2.1 {int(r['inlier'].sum())}\n" for image in images)


PROGRAMS = {"bundle_adjust": bundle_adjust}


def main(name: str) -> None:
    """Entry point of the ``bundle_adjust`` stand-in executable."""
    _standin.PROGRAMS.update(PROGRAMS)
    _standin.main(name)
