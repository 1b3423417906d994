"""Stand-ins for ASP's monolithic chain: ``cam2map4stereo.py`` and ``parallel_stereo`` (ASP 3.7).

NOT THE REAL PROGRAMS. They follow NeoGeographyToolkit/StereoPipeline at 55bf46022:

``cam2map4stereo.py`` (src/asp/Tools/cam2map4stereo.py)
    ``optparse`` with the real options (:143-172): an unknown option is optparse's
    ``error: no such option``, exit 2; no files is "need .cub files" (:176). It runs
    ``camrange`` on both cubes (an ISIS camera is needed: a cube without the
    ``Kernels`` group of spiceinit fails, ``Exception: ProcessError``, exit 1), maps
    both onto the intersection of their ranges at the coarser resolution (:201-217)
    and names the outputs with ``mapfile`` (:67-88): ``<first dot-part>.<suffix>.cub``,
    or the suffix inserted before the extension when that exists or starts with a
    dot, ``<prefix>-<basename>`` with ``--prefix``; an existing output is "The file X
    already exists, delete first.", exit 3. ``--dry-run`` only prints the ``cam2map``
    lines. The cam2map output here is a stand-in cube with a ``Mapping`` group.
``parallel_stereo`` (src/asp/Tools/parallel_stereo)
    Its argparse options (:634-707) and ``parse_known_args``: the rest goes to
    ``stereo_parse`` (:749-751), whose refusal (unknown option, bad files) makes
    parallel_stereo fail with ``Exception: Failed executing``, exit 1. No files is
    ``Error: Missing input files``, exit 2 (:715-717); ``--job-size-w`` without
    ``--job-size-h`` is refused (:795-796). The steps ``entry-point <= step <
    stop-point`` (pprc 0 .. tri 5, clean 6) write ``<prefix>-L.tif``, ``-R.tif``,
    ``-D.tif``, ``-RD.tif``, ``-F.tif`` and ``-PC.tif`` (the combined outputs kept by
    ``--keep-only all_combined``); a step whose input is missing fails as
    "Stereo step X failed", exit 1.
"""

from __future__ import annotations

import argparse
import optparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _asp_map  # noqa: E402
import _standin  # noqa: E402
import _standin_tiles as tiles  # noqa: E402
import _terrain as terrain  # noqa: E402
from _standin import _apply_fault, _write_tif, correlate_time, read_cube_label, write_cube  # noqa: E402

C2M_USAGE = ("usage: cam2map4stereo.py [--help][--manual][--map mapfile][--pixres CAMERA|MAP|MPP|PPD]"
             "[--resolution float][--interp NN|BI|CC][--lat min:max][--lon min:max][--prefix string] "
             "[--suffix string] image1.cub image2.cub")


def _mapfile(cube: str, prefix: str, suffix: str) -> str:
    items = cube.split(".")
    name = ".".join([items[0], suffix, "cub"])
    if os.path.exists(name) or name[0] == ".":
        items.insert(len(items) - 1, suffix)
        name = ".".join(items)
    if prefix != "":
        name = prefix + "-" + os.path.basename(name)
    os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
    if os.path.exists(name):
        print(f"The file {name} already exists, delete first.", file=sys.stderr, flush=True)
        sys.exit(3)
    return name


def _camrange(cube: str) -> dict:
    """``camrange``: the cube's lat/lon range and resolution (stand-in camera, _asp_map.footprint)."""
    label = read_cube_label(cube)
    if "Kernels" not in label:
        print(f"**ERROR** Unable to initialize camera model from group [Instrument] in [{cube}]; run spiceinit "
              f"first.\nTraceback (most recent call last):\nException: ('ProcessError', 'Non zero return code "
              "(1)')", file=sys.stderr, flush=True)
        sys.exit(1)
    lons, lats = zip(*_asp_map.footprint(cube, None, None))
    return {"minlat": min(lats), "maxlat": max(lats), "minlon": min(lons) % 360, "maxlon": max(lons) % 360,
            "resolution": _asp_map.CTX_GSD}


def cam2map4stereo(argv: list[str], fault: str | None) -> None:
    parser = optparse.OptionParser(usage=C2M_USAGE, prog="cam2map4stereo.py")
    parser.set_defaults(dryrun=False, pixres="MPP", prefix="", suffix="map")
    parser.add_option("--manual", action="store_true")
    parser.add_option("-m", "--map", dest="map")
    parser.add_option("-p", "--pixres", dest="pixres")
    parser.add_option("-r", "--resolution", dest="resolution")
    parser.add_option("-i", "--interp", dest="interp")
    parser.add_option("-a", "--lat", dest="lat")
    parser.add_option("-o", "--lon", dest="lon")
    parser.add_option("--prefix", dest="prefix")
    parser.add_option("-s", "--suffix", dest="suffix")
    parser.add_option("-n", "--dry-run", dest="dryrun", action="store_true")
    options, args = parser.parse_args(argv)
    if not args:
        parser.error("need .cub files")
    first, second = _camrange(args[0]), _camrange(args[1])
    out = {"minlat": max(first["minlat"], second["minlat"]), "maxlat": min(first["maxlat"], second["maxlat"]),
           "minlon": max(first["minlon"], second["minlon"]), "maxlon": min(first["maxlon"], second["maxlon"]),
           "resolution": max(first["resolution"], second["resolution"])}
    if options.resolution:
        out["resolution"] = options.resolution
    for key, value in (("lat", options.lat), ("lon", options.lon)):
        if value:
            low, _, high = value.partition(":")
            out[f"min{key}"] = low or out[f"min{key}"]
            out[f"max{key}"] = high or out[f"max{key}"]
    _apply_fault(fault)
    for i, cube in enumerate(args[:2]):
        target = _mapfile(cube, options.prefix, options.suffix)
        cmd = ["cam2map", f"from={cube}", f"to={target}", *([f"map={options.map}"] if options.map else []),
               *([f"interp={options.interp}"] if options.interp else []), f"pixres={options.pixres}",
               f"resolution={out['resolution']}", "defaultrange=MAP",
               *(f"{k}={out[k]}" for k in ("minlat", "maxlat", "minlon", "maxlon"))]
        print(" ".join(cmd), flush=True)
        if options.dryrun:
            continue
        if fault == "partial" and i == 1:
            return
        label = read_cube_label(cube)
        groups = {k: v for k, v in label.items() if not k.startswith("_")}
        groups["Mapping"] = {"ProjectionName": "Sinusoidal", "TargetName": "Mars",
                             "EquatorialRadius": "3396190.0 <meters>", "PolarRadius": "3396190.0 <meters>",
                             "PixelResolution": f"{float(out['resolution'])} <meters/pixel>",
                             **{k[0].upper() + k[1:]: str(out[k]) for k in ("minlat", "maxlat", "minlon",
                                                                               "maxlon")}}
        write_cube(target, groups, pixel_type=label["_pixels"].get("Type", "Real"), fill=0.1,
                   truncate=fault == "partial")
    print("Finished")


def parallel_stereo(argv: list[str], fault: str | None) -> None:
    p = argparse.ArgumentParser(usage="parallel_stereo [options] <images> [<cameras>] <output_file_prefix> "
                                      "[DEM]")
    p.add_argument("--nodes-list", dest="nodes_list", default=None)
    p.add_argument("--ssh", dest="ssh", default=None)
    p.add_argument("--processes", dest="processes", default=None, type=int)
    p.add_argument("--threads-multiprocess", dest="threads_multi", default=None, type=int)
    p.add_argument("--threads-singleprocess", dest="threads_single", default=None, type=int)
    p.add_argument("--corr-seed-mode", dest="seed_mode", default=None, type=int)
    p.add_argument("-e", "--entry-point", dest="entry_point", default=0, type=int)
    p.add_argument("--stop-point", dest="stop_point", default=7, type=int)
    p.add_argument("--job-size-w", dest="job_size_w", default=-1, type=int)
    p.add_argument("--job-size-h", dest="job_size_h", default=-1, type=int)
    p.add_argument("--sgm-collar-size", dest="sgm_collar_size", default=-1, type=int)
    p.add_argument("--resume-at-corr", dest="resume_at_corr", default=False, action="store_true")
    p.add_argument("--prev-run-prefix", dest="prev_run_prefix", default=None)
    p.add_argument("--keep-only", dest="keep_only", default="all_combined")
    p.add_argument("--sparse-disp-options", dest="sparse_disp_options", default=None)
    p.add_argument("-v", "--version", dest="version", default=False, action="store_true")
    p.add_argument("-s", "--stereo-file", dest="stereo_file", default="./stereo.default")
    p.add_argument("--verbose", dest="verbose", default=False, action="store_true")
    p.add_argument("--parallel-options", dest="parallel_options", default="--sshdelay 0.2")
    p.add_argument("--tile-id", dest="tile_id", default=None, type=int)
    p.add_argument("--work-dir", dest="work_dir", default=None)
    p.add_argument("--isisroot", dest="isisroot", default=None)
    p.add_argument("--isisdata", dest="isisdata", default=None)
    p.add_argument("--dry-run", dest="dryrun", default=False, action="store_true")
    opt, args = p.parse_known_args(argv)
    if opt.version:
        print("NASA Ames Stereo Pipeline 3.7.0 (ctxdask test stand-in)")
        sys.exit(0)
    if not args:
        p.print_help()
        tiles._raise_error("Missing input files", code=2)
    if opt.resume_at_corr:
        opt.entry_point = 1
    if opt.seed_mode is not None:
        args += ["--corr-seed-mode", str(opt.seed_mode)]
    if os.path.exists(opt.stereo_file):
        args += ["--stereo-file", opt.stereo_file]
    code, text = tiles._in_process("stereo_parse", tiles.stereo_parse, args)
    if code != 0:
        print(text.rstrip(), flush=True)
        tiles._exception("Failed executing: stereo_parse " + " ".join(args))
    settings = dict(line.split(",", 1) for line in text.splitlines() if "," in line)
    prefix = settings["out_prefix"]
    if int(opt.job_size_h < 0) + int(opt.job_size_w < 0) == 1:
        tiles._exception("Must set neither or both of --job-size-h and --job-size-w.")
    print(f"Using image files: {settings['in_file1']}, {settings['in_file2']}", flush=True)
    _apply_fault(fault)
    truncate = fault == "partial"
    if opt.entry_point <= 1 < opt.stop_point:  # stereo_corr: time in proportion to the pixels (test knob)
        correlate_time(settings["in_file1"])
    doomed = terrain.doomed(settings["in_file1"], settings["in_file2"])
    # (step, input it reads, outputs: suffix -> bands, value, dtype)
    steps = [(0, None, {"L": (1, 0.1, "float32"), "R": (1, 0.1, "float32")}),
             (1, "L", {"D": (3, 1.0, "float32")}), (3, "D", {"RD": (3, 1.0, "float32")}),
             (4, "RD", {"F": (3, 1.0, "float32")}), (5, "F", {"PC": (4, 3396190.0, "float64")})]
    names = {0: "stereo_pprc", 1: "stereo_corr", 3: "stereo_rfne", 4: "stereo_fltr", 5: "stereo_tri"}
    for step, needs, makes in steps:
        if not opt.entry_point <= step < opt.stop_point:
            continue
        if needs and not os.path.exists(f"{prefix}-{needs}.tif"):
            print(f"\n\nERROR: DiskImageResourceGDAL: Could not open {prefix}-{needs}.tif\n", file=sys.stderr)
            tiles._exception(f"Stereo step {names[step]} failed")
        for suffix, (bands, value, dtype) in makes.items():
            _write_tif(f"{prefix}-{suffix}.tif", bands, value, georef=False, dtype=dtype,
                       truncate=truncate and suffix == "PC")
            if doomed and suffix == "PC" and not truncate:  # a doomed pair's cloud (test knob, _terrain)
                import rasterio

                with rasterio.open(f"{prefix}-PC.tif", "r+") as dst:
                    dst.update_tags(**{terrain.DOOMED_TAG: "1"})
            if truncate and suffix == "PC":
                return


PROGRAMS = {"cam2map4stereo.py": cam2map4stereo, "parallel_stereo": parallel_stereo}


def main(name: str) -> None:
    """Entry point of the monolithic-chain stand-in executables."""
    _standin.PROGRAMS.update(PROGRAMS)
    _standin.main(name)
