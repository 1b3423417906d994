"""Test stand-ins for the ISIS and ASP programs of the CTX stereo chain.

THESE ARE NOT THE REAL PROGRAMS. The ISIS ones (``mroctx2isis``, ``spiceinit``, ``ctxcal``,
``ctxevenodd``) live in :mod:`_isis`, built from ISIS's source; ``cam2map4stereo.py`` and
``parallel_stereo`` in :mod:`_asp_mono`, ``bundle_adjust`` in :mod:`_asp_ba` (how the
others find its ``.adjust`` files: :mod:`_asp_adjust`), the distributed-stereo ones (``asp37/``) in
:mod:`_standin_tiles`, all built from ASP's source. Each other executable
in this folder (``point2dem``, ``pc_align``, ``dem_geoid``) has the
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
``CTXDASK_STANDIN_SECONDS_PER_MEGAPIXEL``
    Correlation time: ``parallel_stereo`` sleeps this many seconds per megapixel of
    its left image (:func:`correlate_time`), so a coarse preview costs less than the
    full pass in proportion to its pixels.
``CTXDASK_STANDIN_DOOMED``
    Product ids whose pairs correlate almost nothing (:mod:`_terrain`).

This module models no program itself: it dispatches a launcher to its model and injects the
faults above. The models cite their sources line by line: ISIS at 7ca57fa91
(isis/src/mro/apps/mroctx2isis/main.cpp, ctxcal/ctxcal.cpp, ctxevenodd/main.cpp,
isis/src/base/apps/spiceinit/spiceinit.cpp) in :mod:`_isis`; ASP at 55bf46022
(src/asp/Tools/point2dem.cc, pc_align.cc, dem_geoid.cc, parallel_stereo, cam2map4stereo.py,
stereo_parse.cc, dem_mosaic.cc, bundle_adjust.cc) in :mod:`_asp_dem`, :mod:`_asp_mono`,
:mod:`_standin_tiles` and :mod:`_asp_ba`.
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
    from ctxdask import pvltext

    try:
        with open(path, "rb") as f:
            head = f.read(LABEL_BYTES)
        text = head.split(b"\0", 1)[0].decode("ascii")
        label = pvltext.loads(text)
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


# ------------------------------------------------------------------------ ASP
MARS_CRS = "+proj=longlat +a=3396190 +b=3396190 +no_defs"


def _asp_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=name, description=BANNER.format(name=name))
    parser.add_argument("-v", "--version", action="version", version=VERSION.format(name=name))
    parser.add_argument("--threads", type=int, default=0)
    return parser


def pixels(path: str) -> int:
    """Pixels of an image: a GeoTIFF's, or an ISIS cube's (its label's Core dimensions)."""
    if path.endswith(".cub"):  # every stand-in cube is CUBE_SIZE square
        return CUBE_SIZE * CUBE_SIZE
    import rasterio

    with rasterio.open(path) as src:
        return src.width * src.height


def correlate_time(image: str) -> float:
    """Sleep ``CTXDASK_STANDIN_SECONDS_PER_MEGAPIXEL`` x the megapixels of ``image``; the seconds slept."""
    rate = float(os.environ.get("CTXDASK_STANDIN_SECONDS_PER_MEGAPIXEL", "0") or 0)
    seconds = rate * pixels(image) / 1e6 if rate else 0.0
    if seconds:
        print(f"correlating {pixels(image)} pixels: {seconds:.3f} s (stand-in)", flush=True)
        time.sleep(seconds)
    return seconds


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


#: the stand-ins run by this module's main(); the ISIS ones come from _isis, the ASP ones register
#: themselves (point2dem, pc_align, dem_geoid: _asp_dem.py, built from ASP's source)
PROGRAMS: dict = {}


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
