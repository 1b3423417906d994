"""Test stand-ins for the ISIS and ASP programs of the CTX stereo chain.

THESE ARE NOT THE REAL PROGRAMS. Each executable in this folder (``mroctx2isis``,
``spiceinit``, ``ctxcal``, ``ctxevenodd``, ``cam2map4stereo.py``,
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
def _group(name: str, keys: dict, kind: str = "Group", indent: str = "  ") -> str:
    lines = [f"{indent}{kind} = {name}"]
    for key, value in keys.items():
        if isinstance(value, str) and not value.replace("_", "").replace(".", "").isalnum():
            value = f'"{value}"'
        lines.append(f"{indent}  {key} = {value}")
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


def _isis_args(name: str, argv: list[str], required: set[str], optional: set[str]) -> dict:
    """Parse ISIS ``key=value`` parameters (keys case-insensitive)."""
    if any(a.lower() in ("-help", "--help", "-h") for a in argv):
        print(BANNER.format(name=name))
        print(f"usage: {name} " + " ".join(f"{k.upper()}=value" for k in sorted(required)))
        print("optional: " + " ".join(f"{k.upper()}=value" for k in sorted(optional)))
        sys.exit(0)
    params = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.strip().lower()
        if not sep or not value.strip():
            _isis_error(f"Invalid command line token [{arg}]; expected PARAMETER=value")
        if key not in required | optional:
            _isis_error(f"Unknown parameter [{key.upper()}] for {name}")
        params[key] = value.strip()
    missing = required - params.keys()
    if missing:
        _isis_error(f"Parameter [{sorted(missing)[0].upper()}] must be entered")
    return params


def _read_edr_label(path: str) -> dict:
    import pvl

    try:
        with open(path, "rb") as f:
            head = f.read(65536).decode("latin-1")
    except FileNotFoundError:
        _isis_error(f"Unable to open [{path}]: file does not exist")
    end = head.find("\nEND")
    try:
        label = pvl.loads(head[: end + 4] if end >= 0 else head)
    except Exception as exc:  # noqa: BLE001
        _isis_error(f"Unable to read PDS label of [{path}] ({exc})")
    if str(label.get("INSTRUMENT_ID", "")) != "CTX":
        _isis_error(f"Input file [{path}] does not appear to be in MRO-CTX EDR format")
    return label


def _check_output(path: str) -> None:
    if os.path.exists(path):
        # ISIS overwrites; keep that behaviour
        os.remove(path)


def mroctx2isis(argv: list[str], fault: str | None) -> None:
    p = _isis_args("mroctx2isis", argv, {"from", "to"}, set())
    label = _read_edr_label(p["from"])
    _apply_fault(fault)
    image = label.get("IMAGE", {})
    instrument = {
        "SpacecraftName": "MARS_RECONNAISSANCE_ORBITER",
        "InstrumentId": "CTX",
        "SpatialSumming": image.get("SAMPLING_FACTOR", label.get("SAMPLING_FACTOR", 1)),
        "StartTime": str(label.get("START_TIME", "")),
        "SampleFirstPixel": label.get("SAMPLE_FIRST_PIXEL", 0),
    }
    archive = {"ProductId": str(label.get("PRODUCT_ID", "UNKNOWN"))}
    _check_output(p["to"])
    write_cube(p["to"], {"Instrument": instrument, "Archive": archive,
                         "BandBin": {"FilterName": "BroadBand", "Center": 0.65, "Width": 0.15},
                         "StandIn": {"Note": "written by a test stand-in"}},
               truncate=fault == "partial")


def spiceinit(argv: list[str], fault: str | None) -> None:
    p = _isis_args("spiceinit", argv, {"from"},
                   {"web", "ck", "spk", "shape", "attach", "cksmithed", "ckrecon", "ckpredicted",
                    "spkpredicted", "spkrecon", "spksmithed", "url", "port"})
    label = read_cube_label(p["from"])
    _apply_fault(fault)
    if "Instrument" not in label:
        _isis_error(f"Unable to initialize camera model from [{p['from']}]: no Instrument group")
    groups = {k: v for k, v in label.items() if not k.startswith("_")}
    web = p.get("web", "no").lower() in ("yes", "true", "y", "t", "1")
    groups["Kernels"] = {"NaifFrameCode": -74021, "LeapSecond": "$base/kernels/lsk/naif0012.tls",
                         "TargetPosition": "Table", "InstrumentPointing": "Table",
                         "InstrumentPosition": "Table", "Source": "web" if web else "local",
                         "CameraVersion": 1}
    write_cube(p["from"], groups, truncate=fault == "partial")


def ctxcal(argv: list[str], fault: str | None) -> None:
    p = _isis_args("ctxcal", argv, {"from", "to"}, {"flatfile", "iof"})
    label = read_cube_label(p["from"])
    _apply_fault(fault)
    if "Kernels" not in label:
        _isis_error(f"Unable to create camera for [{p['from']}]: run spiceinit first")
    if label["_pixels"].get("Type") != "SignedWord":
        _isis_error(f"[{p['from']}] is not a level-0 cube (pixel type {label['_pixels'].get('Type')})")
    groups = {k: v for k, v in label.items() if not k.startswith("_")}
    groups["Radiometry"] = {"FlatFile": "$mro/calibration/ctxFlat_0001.cub",
                            "iof": 1.0 if p.get("iof", "yes").lower() in ("yes", "true") else 0.0}
    _check_output(p["to"])
    write_cube(p["to"], groups, pixel_type="Real", fill=0.1, truncate=fault == "partial")


def ctxevenodd(argv: list[str], fault: str | None) -> None:
    p = _isis_args("ctxevenodd", argv, {"from", "to"}, set())
    label = read_cube_label(p["from"])
    _apply_fault(fault)
    if label.get("Instrument", {}).get("SpatialSumming", 1) != 1:
        _isis_error("ctxevenodd works on summing-1 images only")
    groups = {k: v for k, v in label.items() if not k.startswith("_")}
    groups.setdefault("Radiometry", {})["EvenOddCorrected"] = "Yes"
    _check_output(p["to"])
    write_cube(p["to"], groups, pixel_type=label["_pixels"].get("Type", "Real"), fill=0.1,
               truncate=fault == "partial")


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


PROGRAMS = {
    "mroctx2isis": mroctx2isis,
    "spiceinit": spiceinit,
    "ctxcal": ctxcal,
    "ctxevenodd": ctxevenodd,
    "cam2map4stereo.py": cam2map4stereo,
    "parallel_stereo": parallel_stereo,
}  # point2dem, pc_align and dem_geoid: _asp_dem.py (built from ASP's source)


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
    PROGRAMS[name](argv, fault)
    sys.exit(0)
