"""Test stand-ins for the ISIS and ASP programs of the CTX stereo chain.

THESE ARE NOT THE REAL PROGRAMS. The ISIS ones (``mroctx2isis``, ``spiceinit``, ``ctxcal``,
``ctxevenodd``) live in :mod:`_isis`, built from ISIS's source. Each other executable
in this folder (``cam2map4stereo.py``,
``parallel_stereo``, ``point2dem``, ``pc_align``, ``dem_geoid``) has the
command-line contract of the real program (ISIS ``key=value`` parameters, ASP
options and positional arguments, the real output file names) and writes small
outputs of the right formats: ISIS cubes with a minimal, pvl-readable ISIS cube
label, and GeoTIFFs (written with rasterio) for the ASP products. Nothing is
computed: the pixels are placeholders.

Behaviour on request, through environment variables:

``CTXDASK_STANDIN_FAULT``
    ``hang`` (sleep forever), ``hang-grandchild`` (fork a child and a grandchild
    that inherit the log and sleep forever, then hang), ``escape-grandchild``
    (a grandchild that leaves the process group with ``setsid`` and sleeps
    forever, then hang), ``ignore-term`` (ignore SIGTERM, then hang),
    ``ignore-term-child`` (ignore SIGTERM, fork a child that ignores it too,
    then both hang), ``crash``
    (die of SIGSEGV), ``fail`` (print an error and exit 1), ``partial`` (write a
    truncated first output, skip the others, exit 0).
``CTXDASK_STANDIN_FAULT_PROGRAMS``
    Comma-separated program names the fault applies to (default: all).
``CTXDASK_STANDIN_PIDFILE``
    File to which every process of a stand-in appends ``<role> <pid>``.
``CTXDASK_STANDIN_CALLS``
    File to which every invocation appends one JSON line: program, argv, cwd.
``CTXDASK_STANDIN_SLEEP``
    Seconds to sleep before working (a slow but healthy program).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

BANNER = "ctxdask TEST STAND-IN for {name}: not the real ISIS/ASP program; outputs are placeholders"
VERSION = "ctxdask test stand-in 1.0 for {name} (NOT the real ISIS/ASP program)"

ISIS_PROGRAMS = {"mroctx2isis", "spiceinit", "ctxcal", "ctxevenodd"}
LABEL_BYTES = 65536
CUBE_SIZE = 32  # samples and lines of the placeholder cubes


# --------------------------------------------------------------------- faults
def _record_pid(role: str) -> None:
    path = os.environ.get("CTXDASK_STANDIN_PIDFILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{role} {os.getpid()}\n")


def _sleep_forever() -> None:
    while True:
        time.sleep(0.5)


def _fork_sleeper(role: str, *, new_session: bool = False) -> None:
    """Fork a process that sleeps forever, keeping stdout (the log) open."""
    pid = os.fork()
    if pid == 0:
        if new_session:
            os.setsid()
        _record_pid(role)
        print(f"{role} {os.getpid()} holding the log open", flush=True)
        _sleep_forever()


def _fault(name: str) -> str | None:
    fault = os.environ.get("CTXDASK_STANDIN_FAULT", "")
    programs = os.environ.get("CTXDASK_STANDIN_FAULT_PROGRAMS", "")
    if not fault or (programs and name not in programs.split(",")):
        return None
    return fault


def _apply_fault(fault: str | None) -> None:
    """Faults that happen before any output is written."""
    if fault is None or fault == "partial":
        return
    if fault == "hang":
        print("hanging (stand-in fault 'hang')", flush=True)
        _sleep_forever()
    elif fault == "hang-grandchild":
        pid = os.fork()
        if pid == 0:
            _record_pid("child")
            _fork_sleeper("grandchild")
            _sleep_forever()
        print("hanging with a child and grandchild (stand-in fault)", flush=True)
        _sleep_forever()
    elif fault == "escape-grandchild":
        pid = os.fork()
        if pid == 0:
            _record_pid("child")
            _fork_sleeper("grandchild", new_session=True)
            # outlive the first polls of the runner, then orphan the grandchild
            time.sleep(1.0)
            os._exit(0)
        print("hanging; a grandchild left the process group (stand-in fault)", flush=True)
        _sleep_forever()
    elif fault == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM and hanging (stand-in fault)", flush=True)
        _sleep_forever()
    elif fault == "ignore-term-child":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the child
        _fork_sleeper("child")
        print("ignoring SIGTERM and hanging with a child (stand-in fault)", flush=True)
        _sleep_forever()
    elif fault == "crash":
        print("crashing (stand-in fault)", flush=True)
        sys.stdout.flush()
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "fail":
        print("**PROGRAMMER ERROR** stand-in fault 'fail' requested", flush=True)
        sys.exit(1)
    else:
        print(f"unknown CTXDASK_STANDIN_FAULT {fault!r}", file=sys.stderr)
        sys.exit(2)


# ----------------------------------------------------------------- ISIS cubes
def _pvl_value(value) -> str:
    """A value pvl parsed from an ISIS label, written back as ISIS writes it."""
    import datetime

    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="milliseconds")
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_pvl_value(v) for v in value) + ")"
    if hasattr(value, "units") and hasattr(value, "value"):  # pvl Quantity
        return f"{_pvl_value(value.value)} <{value.units}>"
    if isinstance(value, str) and not value.replace("_", "").replace(".", "").replace("$", "") \
            .replace("/", "").isalnum():
        return f'"{value}"'
    return str(value)


def _group(name: str, keys: dict, kind: str = "Group", indent: str = "  ") -> str:
    lines = [f"{indent}{kind} = {name}"]
    for key, value in keys.items():
        lines.append(f"{indent}  {key} = {_pvl_value(value)}")
    lines.append(f"{indent}End_{kind}")
    return "\n".join(lines)


def write_cube(path: str, groups: dict[str, dict], pixel_type: str = "SignedWord",
               fill: int | float = 1000, truncate: bool = False) -> None:
    """Write a CUBE_SIZE² single-band ISIS cube with the given label groups."""
    import numpy as np

    dtype = {"SignedWord": "<i2", "Real": "<f4"}[pixel_type]
    core = "\n".join([
        "  Object = Core",
        f"    StartByte = {LABEL_BYTES + 1}",
        "    Format = BandSequential",
        _group("Dimensions", {"Samples": CUBE_SIZE, "Lines": CUBE_SIZE, "Bands": 1}, indent="    "),
        _group("Pixels", {"Type": pixel_type, "ByteOrder": "Lsb", "Base": 0.0, "Multiplier": 1.0},
               indent="    "),
        "  End_Object",
    ])
    body = "\n".join(_group(n, g) for n, g in groups.items())
    label = f"Object = IsisCube\n{core}\n{body}\nEnd_Object\nEnd\n".encode()
    assert len(label) < LABEL_BYTES
    data = np.full((CUBE_SIZE, CUBE_SIZE), fill, dtype=dtype).tobytes()
    blob = label.ljust(LABEL_BYTES, b"\0") + data
    with open(path, "wb") as f:
        f.write(blob[: len(blob) // 2] if truncate else blob)


def read_cube_label(path: str) -> dict:
    """Read an ISIS cube label into plain dicts; exit like ISIS when it is not a cube."""
    import pvl

    try:
        with open(path, "rb") as f:
            head = f.read(LABEL_BYTES)
        text = head.split(b"\0", 1)[0].decode("ascii")
        label = pvl.loads(text)
        cube = label["IsisCube"]
    except FileNotFoundError:
        _isis_error(f"Unable to open [{path}]: file does not exist")
    except Exception as exc:  # noqa: BLE001 - any parse failure is "not a cube"
        _isis_error(f"Unable to open [{path}]: not a valid ISIS cube ({exc})")
    size = os.path.getsize(path)
    if size < LABEL_BYTES + CUBE_SIZE * CUBE_SIZE * 2:
        _isis_error(f"Unable to read cube [{path}]: file is truncated ({size} bytes)")
    return {k: dict(v) for k, v in cube.items() if k != "Core"} | {"_pixels": dict(cube["Core"]["Pixels"])}


def _isis_error(message: str) -> None:
    print(f"**USER ERROR** {message}.", file=sys.stderr, flush=True)
    sys.exit(1)


def cam2map4stereo(argv: list[str], fault: str | None) -> None:
    parser = argparse.ArgumentParser(prog="cam2map4stereo.py", description=BANNER.format(name="cam2map4stereo.py"))
    parser.add_argument("-m", "--map")
    parser.add_argument("-p", "--pixres", default="MPP")
    parser.add_argument("-r", "--resolution")
    parser.add_argument("-i", "--interp")
    parser.add_argument("-a", "--lat")
    parser.add_argument("-o", "--lon")
    parser.add_argument("-s", "--suffix", default="map")
    parser.add_argument("-n", "--dry-run", action="store_true")
    parser.add_argument("--prefix", default="")
    parser.add_argument("images", nargs=2)
    args = parser.parse_args(argv)
    labels = [read_cube_label(c) for c in args.images]
    for cube, label in zip(args.images, labels):
        if "Kernels" not in label:
            print(f"**ERROR** camrange from= {cube}: run spiceinit first", file=sys.stderr)
            sys.exit(1)

    def mapfile(cube: str) -> str:
        # the real script: items = cube.split('.'); items[0] + '.' + suffix + '.cub'
        items = cube.split(".")
        name = ".".join([items[0], args.suffix, "cub"])
        if os.path.exists(name):
            items.insert(len(items) - 1, args.suffix)
            name = ".".join(items)
            if os.path.exists(name):
                print(f"The file {name} already exists, delete first.", file=sys.stderr)
                sys.exit(3)
        return args.prefix + name

    outputs = [mapfile(c) for c in args.images]
    _apply_fault(fault)
    for i, (cube, label, out) in enumerate(zip(args.images, labels, outputs)):
        print(f"cam2map from={cube} to={out} pixres={args.pixres} defaultrange=MAP")
        if args.dry_run:
            continue
        if fault == "partial" and i == 1:
            break
        groups = {k: v for k, v in label.items() if not k.startswith("_")}
        groups["Mapping"] = {"ProjectionName": "Sinusoidal", "TargetName": "Mars",
                             "EquatorialRadius": "3396190.0 <meters>",
                             "PolarRadius": "3376200.0 <meters>", "PixelResolution": "6.0 <meters/pixel>"}
        write_cube(out, groups, pixel_type=label["_pixels"].get("Type", "Real"), fill=0.1,
                   truncate=fault == "partial")
    print("Finished")


# ------------------------------------------------------------------------ ASP
MARS_CRS = "+proj=longlat +a=3396190 +b=3396190 +no_defs"


def _asp_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=name, description=BANNER.format(name=name))
    parser.add_argument("-v", "--version", action="version", version=VERSION.format(name=name))
    parser.add_argument("--threads", type=int, default=0)
    return parser


def _write_tif(path: str, bands: int, value: float, *, georef: bool, truncate: bool = False,
               dtype: str = "float32", nodata: float | None = None) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    profile = dict(driver="GTiff", width=CUBE_SIZE, height=CUBE_SIZE, count=bands, dtype=dtype)
    if georef:
        profile.update(crs=MARS_CRS, transform=from_origin(354.0, 2.3, 0.001, 0.001))
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((bands, CUBE_SIZE, CUBE_SIZE), value, dtype=dtype))
        dst.update_tags(CTXDASK_STANDIN="placeholder written by a test stand-in")
    if truncate:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 3)


def _require_raster(path: str, min_bands: int = 1) -> None:
    import rasterio

    try:
        with rasterio.open(path) as src:
            if src.count < min_bands:
                raise ValueError(f"{src.count} bands, need {min_bands}")
    except Exception as exc:  # noqa: BLE001
        print(f"Error: cannot read {path}: {exc}", file=sys.stderr)
        sys.exit(1)


def _read_stereo_file(path: str) -> dict:
    options = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                key, _, value = line.partition(" ")
                options[key] = value.strip()
    return options


def parallel_stereo(argv: list[str], fault: str | None) -> None:
    parser = _asp_parser("parallel_stereo")
    parser.add_argument("-s", "--stereo-file", default="./stereo.default")
    parser.add_argument("--stereo-algorithm", default="asp_bm")
    parser.add_argument("--subpixel-mode", type=int, default=1)
    parser.add_argument("--alignment-method", default="affineepipolar")
    parser.add_argument("--corr-kernel", type=int, nargs=2)
    parser.add_argument("--subpixel-kernel", type=int, nargs=2)
    parser.add_argument("--processes", type=int)
    parser.add_argument("--threads-multiprocess", type=int)
    parser.add_argument("--threads-singleprocess", type=int)
    parser.add_argument("--nodes-list")
    parser.add_argument("-e", "--entry-point", type=int, default=0)
    parser.add_argument("--stop-point", type=int, default=6)
    parser.add_argument("--bundle-adjust-prefix")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    if len(args.paths) not in (3, 5):
        parser.error("expected: left right [left_cam right_cam] output_prefix")
    images, prefix = args.paths[:2], args.paths[-1]
    for image in images:
        read_cube_label(image)
    stereo_file = {}
    if os.path.exists(args.stereo_file):
        stereo_file = _read_stereo_file(args.stereo_file)
        print(f'Using "{args.stereo_file}": {stereo_file}')
    elif args.stereo_file != "./stereo.default":
        print(f"Error: cannot open stereo file {args.stereo_file}", file=sys.stderr)
        sys.exit(1)
    if args.stereo_algorithm in ("asp_mgm", "asp_sgm") and args.subpixel_mode == 1:
        print("Warning: subpixel mode 1 with MGM/SGM produces artifacts")
    print(f"Using image files: {', '.join(images)}; algorithm {args.stereo_algorithm}, "
          f"subpixel mode {args.subpixel_mode}")
    _apply_fault(fault)
    truncate = fault == "partial"
    _write_tif(f"{prefix}-PC.tif", 4, 3396190.0, georef=False, truncate=truncate, dtype="float64")
    if truncate:
        return
    _write_tif(f"{prefix}-L.tif", 1, 0.1, georef=False)
    _write_tif(f"{prefix}-R.tif", 1, 0.1, georef=False)
    _write_tif(f"{prefix}-F.tif", 3, 1.0, georef=False)
    with open(f"{prefix}-log-stereo_parse.txt", "w") as f:
        f.write(BANNER.format(name="parallel_stereo") + "\n" + json.dumps(vars(args)) + "\n")


def _default_prefix(path: str) -> str:
    if path.endswith("-PC.tif"):
        return path[: -len("-PC.tif")]
    return os.path.splitext(path)[0]


def point2dem(argv: list[str], fault: str | None) -> None:
    parser = _asp_parser("point2dem")
    parser.add_argument("-r", "--reference-spheroid", "--datum", dest="datum")
    parser.add_argument("-s", "--tr", "--dem-spacing", dest="tr", type=float, default=0.0)
    parser.add_argument("-o", "--output-prefix", default="")
    parser.add_argument("--orthoimage", action="store_true")
    parser.add_argument("--errorimage", action="store_true")
    parser.add_argument("--nodata-value", type=float, default=-3.40282347e38)
    parser.add_argument("--t_srs", default="")
    parser.add_argument("--stereographic", action="store_true")
    parser.add_argument("--auto-proj-center", action="store_true")
    parser.add_argument("--proj-lon", type=float)
    parser.add_argument("--proj-lat", type=float)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if args.datum and args.datum.lower() not in ("mars", "d_mars", "mola", "moon", "d_moon", "earth", "wgs_1984"):
        print(f"Error: unknown datum {args.datum}", file=sys.stderr)
        sys.exit(1)
    clouds = [f for f in args.files if not f.endswith("-L.tif")]
    textures = [f for f in args.files if f.endswith("-L.tif")]
    if args.orthoimage and len(textures) != len(clouds):
        print("Error: --orthoimage needs one <prefix>-L.tif per point cloud, after the clouds",
              file=sys.stderr)
        sys.exit(1)
    for cloud in clouds:
        _require_raster(cloud, 3)
    prefix = args.output_prefix or _default_prefix(clouds[0])
    _apply_fault(fault)
    truncate = fault == "partial"
    nodata = args.nodata_value
    _write_tif(f"{prefix}-DEM.tif", 1, -1500.0, georef=True, truncate=truncate, nodata=nodata)
    if truncate:
        return
    if args.orthoimage:
        _write_tif(f"{prefix}-DRG.tif", 1, 0.1, georef=True, nodata=nodata)
    if args.errorimage:
        _write_tif(f"{prefix}-IntersectionErr.tif", 1, 0.5, georef=True, nodata=nodata)
    print("Percentage of valid pixels: 100%")


def pc_align_args(argv: list[str]) -> argparse.Namespace:
    """pc_align's command line and input checks (docs/tools/pc_align.rst), shared by both stand-ins."""
    parser = _asp_parser("pc_align")
    parser.add_argument("--max-displacement", type=float, required=True)
    parser.add_argument("--datum", default="")
    parser.add_argument("--csv-format", default="")
    parser.add_argument("--alignment-method", default="point-to-plane")
    parser.add_argument("--compute-translation-only", action="store_true")
    parser.add_argument("--highest-accuracy", action="store_true")
    parser.add_argument("--num-iterations", type=int, default=1000)
    parser.add_argument("--save-inv-transformed-reference-points", action="store_true")
    parser.add_argument("--save-transformed-source-points", action="store_true")
    parser.add_argument("-o", "--output-prefix", required=True)
    parser.add_argument("reference")
    parser.add_argument("source")
    args = parser.parse_args(argv)
    _require_raster(args.reference, 1)
    if not os.path.exists(args.source):
        print(f"Error: cannot open {args.source}", file=sys.stderr)
        sys.exit(1)
    if args.source.endswith((".csv", ".txt")) and not (args.datum or args.csv_format):
        print("Error: a CSV cloud needs --datum or a --csv-format with radius", file=sys.stderr)
        sys.exit(1)
    return args


def pc_align(argv: list[str], fault: str | None) -> None:
    args = pc_align_args(argv)
    _apply_fault(fault)
    prefix = args.output_prefix
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    identity = "1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n"
    with open(f"{prefix}-transform.txt", "w") as f:
        f.write(identity if fault != "partial" else identity[:9])
    if fault == "partial":
        return
    with open(f"{prefix}-inverse-transform.txt", "w") as f:
        f.write(identity)
    for which in ("beg", "end"):
        with open(f"{prefix}-{which}_errors.csv", "w") as f:
            f.write("# lat,lon,height_above_datum,error\n0,0,0,1.0\n")
    if args.save_inv_transformed_reference_points:
        _write_tif(f"{prefix}-trans_reference.tif", 4, 3396190.0, georef=False, dtype="float64")
    if args.save_transformed_source_points:
        with open(f"{prefix}-trans_source.csv", "w") as f:
            f.write("0,0,3396.19\n")
    print("Translation vector magnitude (meters): 0")


def dem_geoid(argv: list[str], fault: str | None) -> None:
    parser = _asp_parser("dem_geoid")
    parser.add_argument("--geoid", default="")
    parser.add_argument("--geoid-path", default="")
    parser.add_argument("-o", "--output-prefix", default="")
    parser.add_argument("--double", action="store_true")
    parser.add_argument("--reverse-adjustment", action="store_true")
    parser.add_argument("--nodata-value", type=float, default=-32768)
    parser.add_argument("dem")
    args = parser.parse_args(argv)
    _require_raster(args.dem, 1)
    prefix = args.output_prefix or os.path.splitext(args.dem)[0]
    _apply_fault(fault)
    _write_tif(f"{prefix}-adj.tif", 1, -1200.0, georef=True, truncate=fault == "partial",
               dtype="float64" if args.double else "float32", nodata=args.nodata_value)


PROGRAMS = {
    "cam2map4stereo.py": cam2map4stereo,
    "parallel_stereo": parallel_stereo,
    "point2dem": point2dem,
    "pc_align": pc_align,
    "dem_geoid": dem_geoid,
}


def main(name: str) -> None:
    """Entry point of every stand-in executable."""
    argv = sys.argv[1:]
    calls = os.environ.get("CTXDASK_STANDIN_CALLS")
    if calls:
        with open(calls, "a") as f:
            f.write(json.dumps({"program": name, "argv": argv, "cwd": os.getcwd()}) + "\n")
    _record_pid("main")
    if not any(a in ("-h", "--help", "-help", "-HELP", "--version", "-v") for a in argv):
        print(BANNER.format(name=name), flush=True)
    delay = float(os.environ.get("CTXDASK_STANDIN_SLEEP", "0") or 0)
    if delay:
        time.sleep(delay)
    fault = _fault(name)
    if name in ISIS_PROGRAMS:
        from _isis import PROGRAMS as ISIS  # imported here: _isis uses this module's fault hooks

        ISIS[name](argv, fault)
    else:
        PROGRAMS[name](argv, fault)
    sys.exit(0)
