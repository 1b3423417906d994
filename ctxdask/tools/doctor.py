"""``ctxdask doctor``: what this machine can run of the CTX stereo chain."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ctxdask.settings import Settings, current
from ctxdask.tools.discovery import ASP_PROGRAMS, ISIS_PROGRAMS, IsisEnvironment, ProgramInfo, survey
from ctxdask.tools.recipe.settings import resolved

__all__ = ["TILED_PROGRAMS", "add_arguments", "capabilities", "run", "stereo_modes"]

#: what tiled stereo runs (ASP 3.7+, ctxdask.tools.tiling); point2dem runs inside stereo_tile
TILED_PROGRAMS = ("mapproject", "mapproject_single", "stereo_parse", "stereo_pprc", "stereo_tile", "dem_mosaic",
                  "point2dem")
MONOLITHIC_PROGRAMS = ("cam2map4stereo.py", "parallel_stereo", "point2dem")


def stereo_modes(programs: dict[str, ProgramInfo]) -> list[str]:
    """The ``tools.asp.stereo-mode`` values the programs found allow."""
    modes = []
    if all(programs[n].found for n in TILED_PROGRAMS):
        modes.append("tiled")
    if all(programs[n].found for n in MONOLITHIC_PROGRAMS):
        modes.append("monolithic")
    return modes


def capabilities(programs: dict[str, ProgramInfo], isis: IsisEnvironment,
                 settings: Settings) -> list[tuple[str, bool, str]]:
    """(what, possible, why) for each part of the batch, given the programs found."""
    tools = settings.tools

    def have(*names: str) -> tuple[bool, str]:
        missing = [n for n in names if not programs[n].found]
        return (not missing, "missing " + ", ".join(missing) if missing else "found " + ", ".join(names))

    caps: list[tuple[str, bool, str]] = []
    caps.append(("read, validate and calibrate EDRs natively (ctxdask)", True, "pure Python"))
    ok, why = have("mroctx2isis", "ctxcal", "ctxevenodd")
    caps.append(("calibrate with ISIS (mroctx2isis, ctxcal, ctxevenodd)", ok, why))
    ok, why = have("spiceinit")
    if ok and not isis.mro_data and not tools.isis.spiceinit_web:
        ok, why = False, "no MRO kernels under ISISDATA; set tools.isis.spiceinit-web: true"
    caps.append(("attach SPICE (spiceinit" + (" web=yes)" if tools.isis.spiceinit_web else ")"), ok, why))
    if tools.asp.stereo_mode == "tiled":
        ok, why = have(*TILED_PROGRAMS)
        caps.append(("tiled stereo DEMs and orthoimages, one dask task per tile (ASP 3.7+: "
                     + ", ".join(TILED_PROGRAMS) + ")", ok, why))
    elif tools.asp.bundle_adjust is True:  # no cam2map4stereo.py (ctxdask.tools.recipe.stereo)
        maps = ("mapproject", "mapproject_single") if tools.asp.lowres_dem else ()
        stereo = ["parallel_stereo", "point2dem", *maps]
        caps.append((f"stereo DEMs and orthoimages of adjusted cameras ({', '.join(stereo)})", *have(*stereo)))
    else:
        stereo = list(MONOLITHIC_PROGRAMS)
        if programs["cam2map4stereo.py"].found and not programs["cam2map4stereo.py"].standin:
            stereo += ["cam2map", "camrange", "getkey"]  # what the real script calls
        ok, why = have(*stereo)
        caps.append(("stereo DEMs and orthoimages (cam2map4stereo.py, parallel_stereo, point2dem)", ok, why))
    if tools.asp.bundle_adjust is True:
        caps.insert(-1, ("bundle-adjust each pair before stereo (bundle_adjust)", *have("bundle_adjust")))
    caps.append(("align DEMs to MOLA (pc_align)", *have("pc_align")))
    caps.append(("areoid heights (dem_geoid)", *have("dem_geoid")))
    return caps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ctxdask doctor``."""
    parser.epilog = ("exit status: 0 when every configured step can run here with the real programs; 1 when a "
                     "program is missing or is a test stand-in (the report says which, and what still works)")
    parser.add_argument("--json", action="store_true", help="print a JSON report for scripts")


def run(args: argparse.Namespace) -> int:
    """Print the report; exit 0 when the whole configured chain can run, else 1."""
    settings = resolved(current())  # stereo-mode and bundle-adjust auto: as a recipe built here decides them
    tools = settings.tools
    programs, isis = survey()
    caps = capabilities(programs, isis, settings)
    standins = [p.name for p in programs.values() if p.standin]
    all_ok = all(ok for _, ok, _ in caps) and not standins
    if args.json:
        json.dump({
            "programs": {n: dataclasses.asdict(p) for n, p in programs.items()},
            "isis": dataclasses.asdict(isis) | {"problems": isis.problems},
            "capabilities": [{"what": w, "ok": ok, "why": why} for w, ok, why in caps],
            "stereo_modes": stereo_modes(programs), "stereo_mode": tools.asp.stereo_mode,
            "standins": standins,
            "ok": all_ok,
        }, sys.stdout, indent=2)
        print()
        return 0 if all_ok else 1

    out = sys.stdout
    width = max(len(n) for n in programs)
    for title, names in (("ISIS", ISIS_PROGRAMS), ("Ames Stereo Pipeline", ASP_PROGRAMS)):
        print(f"{title} programs:", file=out)
        for name in names:
            p = programs[name]
            where = p.path or "NOT FOUND"
            extra = f"  [{p.version}]" if p.version else ""
            extra += f"  ({p.problem})" if p.problem else ""
            print(f"  {name:<{width}}  {where}{extra}", file=out)
    print("ISIS environment:", file=out)
    print(f"  ISISROOT  {isis.isisroot or '(not set)'}"
          + (f"  [ISIS {isis.version}]" if isis.version else ""), file=out)
    print(f"  ISISDATA  {isis.isisdata or '(not set)'}", file=out)
    for problem in isis.problems:
        print(f"  ! {problem}", file=out)
    print(f"Recipe: calibration={tools.calibration}, stereo {tools.asp.stereo_algorithm} "
          f"subpixel-mode {tools.asp.subpixel_mode}", file=out)
    modes = stereo_modes(programs)
    print(f"Stereo modes the installed ASP allows: {', '.join(modes) or 'none'}; configured: "
          f"{tools.asp.stereo_mode} (tools.asp.stereo-mode)"
          + ("" if "tiled" in modes else "; tiled stereo needs ASP 3.7+ (stereo_tile)")
          + ("; tiled stereo needs tools.asp.lowres-dem (MOLA MEGDR or the HRSC/MOLA blend)"
             if "tiled" in modes and not tools.asp.lowres_dem else ""), file=out)
    print("This machine can:", file=out)
    for what, ok, why in caps:
        print(f"  [{'yes' if ok else 'NO '}] {what}: {why}", file=out)
    if standins:
        print("WARNING: test stand-ins, not the real programs, are first on PATH: "
              + ", ".join(standins), file=out)
    return 0 if all_ok else 1
