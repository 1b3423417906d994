"""Align a pair's point cloud to MOLA shots with pc_align, as the USGS pipeline does.

The recipe's ``pc_align`` step is native (:mod:`ctxdask.tools.native`): this
callable runs in its own interpreter under the step's deadline, and starts
``pc_align`` through :func:`ctxdask.tools.runner.run` (argv list, own session,
log file; the outer step's process-tree kill reaches it too). Following the
USGS Kaguya TC DTM workflow (planetary-ard ``content/data/moon/kaguyatc_dtms.md``,
"Iterative Alignment"), ``--max-displacement`` is three times the median
|CTX - MOLA| difference before alignment, measured here on the unaligned DEM
at the shots (:func:`ctxdask.quality.dem_qa.sample_dem`); when pc_align warns
that the observed displacement exceeded it ("The input --max-displacement value
is smaller than the final observed displacement", src/asp/Tools/pc_align.cc),
it runs again with the observed displacement (times a small margin), at most
``reruns`` times. Each run's argv, times, exit code, log and warning go to
``runs`` (JSON) for the pair's provenance; the last run's outputs are the
step's.

Command line of the real tool (docs/tools/pc_align.rst)::

    pc_align --max-displacement D --datum D_MARS --csv-format '1:lon 2:lat 3:radius_km' \\
        --save-inv-transformed-reference-points results/out-PC.tif mola.csv -o results/out-align

The aligned cloud is gridded by :func:`grid_aligned` (the recipe's native
``point2dem_aligned`` step) on the grid of the unaligned DEM: "grid the
resulting transformed cloud with the same projection and grid size" with
``point2dem --tr --t_srs`` (docs/tools/pc_align.rst:221-225), over the same
extent (``--t_projwin``). point2dem puts grid nodes at integer multiples of
``--tr`` (docs/tools/point2dem.rst:15-19, 28-30), so the aligned DEM has the
unaligned DEM's grid; without ``--tr`` it would be four times coarser than a
DEM-derived cloud (src/asp/Tools/point2dem.cc:202).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from typing import Any

from ctxdask.io.atomic import atomic_path

__all__ = ["align_to_mola", "grid_aligned", "pc_align_argv", "point2dem_like_argv"]

#: margin on the observed displacement for a rerun (the observed value itself is a bare maximum)
RERUN_MARGIN = 1.2


def pc_align_argv(cloud: str, mola: str, prefix: str, max_displacement: float, *, datum: str = "D_MARS",
                  csv_format: str = "1:lon 2:lat 3:radius_km", extra: tuple[str, ...] = ()) -> list[str]:
    """The pc_align command line: the denser CTX cloud is the reference, MOLA the source."""
    return ["pc_align", "--max-displacement", f"{max_displacement:.6g}", "--datum", datum,
            "--csv-format", csv_format, "--save-inv-transformed-reference-points", *extra,
            cloud, mola, "-o", prefix]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def align_to_mola(
    cloud: str,
    destination: str,
    *,
    mola: str,
    dem: str,
    runs: str,
    transform: str | None = None,
    points: str | None = None,
    csv_format: str = "1:lon 2:lat 3:radius_km",
    datum: str = "D_MARS",
    factor: float = 3.0,
    floor: float = 10.0,
    reruns: int = 2,
    max_displacement: float | None = None,
    timeout: float = 7200.0,
    env: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run pc_align (again when it warns) and record every run.

    Parameters
    ----------
    cloud : str
        The stereo point cloud (``results/out-PC.tif``), pc_align's reference.
    destination : str
        ``<prefix>-trans_reference.tif``: the cloud moved onto MOLA; the
        output prefix is taken from it.
    mola : str
        MOLA PEDR CSV (``csv_format`` columns, heights relative to ``datum``).
    dem : str
        The unaligned DEM (point2dem of ``cloud``), to measure the offset.
    runs : str
        JSON file listing the runs.
    points : str, optional
        Where to keep a copy of the MOLA shots (an output, so it travels with
        the step's results to the pair's QA and delivery).
    max_displacement : float, optional
        Fixed first value instead of the data-driven one.

    Raises
    ------
    ctxdask.quality.QualityError
        Unreadable MOLA file, or no shot on a valid DEM pixel.
    ctxdask.exceptions.ToolError
        pc_align failed or timed out.
    """
    from ctxdask.exceptions import ToolError
    from ctxdask.quality.alignment import parse_pc_align_log, read_mola_csv, suggest_max_displacement
    from ctxdask.quality.dem import open_dem
    from ctxdask.quality.dem_qa import points_in_crs, sample_dem
    from ctxdask.tools.runner import run

    suffix = "-trans_reference.tif"
    if not destination.endswith(suffix):
        raise ValueError(f"destination {destination!r} must end with {suffix}")
    prefix = destination[: -len(suffix)]
    shots = read_mola_csv(mola, csv_format, datum=datum)
    heights = open_dem(dem)
    x, y = points_in_crs(shots, heights.rio.crs)
    before = sample_dem(heights, x, y) - shots.height
    if max_displacement is None:
        max_displacement = suggest_max_displacement(before, factor=factor, floor=floor)
    print(f"{int((before == before).sum())} of {len(shots)} MOLA shots on valid DEM pixels; "
          f"first --max-displacement {max_displacement:.6g} m", flush=True)
    cwd = os.getcwd()
    records: list[dict[str, Any]] = []
    for attempt in range(1, int(reruns) + 2):
        argv = pc_align_argv(os.path.relpath(cloud, cwd), os.path.relpath(mola, cwd),
                             os.path.relpath(prefix, cwd), max_displacement, datum=datum, csv_format=csv_format)
        log = f"pc_align-run{attempt}.log"
        started = _now()
        record = {"program": "pc_align", "argv": argv, "started": started, "log": log,
                  "max_displacement": max_displacement}
        try:
            result = run(argv, cwd, timeout, env=env, log=log)
        except ToolError as err:
            records.append({**record, "ended": _now(), "exit_code": getattr(err, "returncode", None)})
            _write_runs(runs, records)
            raise
        with open(os.path.join(cwd, log), encoding="utf-8", errors="replace") as f:
            report = parse_pc_align_log(f.read())
        records.append({**record, "ended": _now(), "exit_code": result.returncode,
                        "displacement_warning": report.displacement_warning,
                        "observed_displacement": report.observed_displacement})
        _write_runs(runs, records)
        print(f"pc_align run {attempt}: --max-displacement {max_displacement:.6g} m, observed "
              f"{report.observed_displacement} m{', WARNED' if report.displacement_warning else ''}", flush=True)
        if not report.displacement_warning or not report.observed_displacement:
            break
        if attempt > int(reruns):
            print(f"pc_align still warns after {reruns} reruns; keeping the last run", flush=True)
            break
        max_displacement = report.observed_displacement * RERUN_MARGIN
    if points:
        shutil.copyfile(mola, points)
    if transform and os.path.abspath(transform) != os.path.abspath(f"{prefix}-transform.txt"):
        os.replace(f"{prefix}-transform.txt", transform)
    return records


def point2dem_like_argv(like: str, *, datum: str = "mars") -> list[str]:
    """``point2dem -r DATUM --tr S --t_srs P --t_projwin ...``: the grid of the DEM ``like``.

    Its projection and grid size (docs/tools/pc_align.rst:221-225) and its extent
    (``--t_projwin``, snapped so that grid nodes stay at multiples of ``--tr``,
    src/asp/Core/OrthoRasterizer.cc:646-659): the aligned DEM has the same grid
    as the unaligned one, pixel for pixel; what alignment moved out of it is cut,
    what it moved in is nodata.
    """
    import rasterio

    with rasterio.open(like) as src:
        if src.crs is None:
            raise ValueError(f"{like}: the DEM has no georeference; cannot grid the aligned cloud like it")
        b = src.bounds
        return ["point2dem", "-r", datum, "--tr", f"{abs(src.res[0]):.17g}", "--t_srs", src.crs.to_wkt(),
                "--t_projwin", *(f"{v:.17g}" for v in (b.left, b.bottom, b.right, b.top))]


def grid_aligned(
    cloud: str,
    destination: str,
    *,
    like: str,
    ortho: str | None = None,
    error: str | None = None,
    texture: str | None = None,
    error_texture: str | None = None,
    datum: str = "mars",
    timeout: float = 7200.0,
    env: dict[str, Any] | None = None,
) -> list[list[str]]:
    """Grid pc_align's ``-trans_reference.tif`` on the grid of the unaligned DEM ``like``.

    Parameters
    ----------
    cloud : str
        The aligned cloud. From a stereo cloud it keeps its 4 bands (the
        triangulation error); from a DEM (tiled stereo: the mosaic) it has 3
        (src/asp/PcAlign/pc_align_utils.cc:462-500).
    destination : str
        ``<prefix>-DEM.tif``.
    like : str
        The unaligned DEM: its projection and grid size (:func:`point2dem_like_argv`).
    ortho, texture : str, optional
        The orthoimage to write and the image draped on the moved points: the
        stereo ``-L.tif`` (pixel for pixel with a stereo cloud) or the mosaic's
        orthoimage (pixel for pixel with the mosaic DEM, hence with its cloud).
        point2dem takes textures after the clouds, one per cloud, of the
        cloud's dimensions (src/asp/Core/PointToDem.cc:110-127).
    error, error_texture : str, optional
        The intersection error to write. A 4- or 6-band cloud gives it with
        ``--errorimage``; a 3-band cloud has none (point2dem writes nothing and
        exits 0, src/asp/Core/PointToDem2.cc:336-341), so the mosaic's error
        image is draped like an orthoimage instead (``--no-dem --orthoimage``).

    Returns
    -------
    list of list of str
        The point2dem command lines run (also printed to the step's log).
    """
    import rasterio

    from ctxdask.exceptions import ToolFailedError
    from ctxdask.tools.runner import run

    suffix = "-DEM.tif"
    if not destination.endswith(suffix):
        raise ValueError(f"destination {destination!r} must end with {suffix}")
    if ortho and not texture:
        raise ValueError("an orthoimage needs the texture to drape (the stereo -L.tif or the mosaic's -DRG.tif)")
    prefix = destination[: -len(suffix)]
    cwd = os.getcwd()
    rel = lambda p: os.path.relpath(p, cwd)  # noqa: E731
    grid = point2dem_like_argv(like, datum=datum)
    with rasterio.open(cloud) as src:
        bands = src.count
    with_error = bool(error) and bands in (4, 6)
    if error and not with_error and not error_texture:
        raise ValueError(f"{cloud} has {bands} bands and no triangulation error; give the error image to drape")
    argv = [*grid, *(["--orthoimage"] if ortho else []), *(["--errorimage"] if with_error else []),
            rel(cloud), *([rel(texture)] if ortho else []), "-o", rel(prefix)]
    runs = [argv]
    # wanted path -> (what point2dem writes, the run that writes it)
    made = {destination: (destination, 0), **({ortho: (f"{prefix}-DRG.tif", 0)} if ortho else {}),
            **({error: (f"{prefix}-IntersectionErr.tif", 0)} if with_error else {})}
    if error and not with_error:
        runs.append([*grid, "--no-dem", "--orthoimage", rel(cloud), rel(error_texture), "-o", rel(f"{prefix}-error")])
        made[error] = (f"{prefix}-error-DRG.tif", 1)
    for number, command in enumerate(runs, 1):
        print("running: " + " ".join(command), flush=True)
        run(command, cwd, timeout, env=env, log=f"point2dem-run{number}.log")
    for wanted, (written, number) in made.items():
        if not os.path.isfile(written):
            raise ToolFailedError(written, "point2dem exited 0 but did not write it", command=runs[number])
        if os.path.abspath(written) != os.path.abspath(wanted):
            os.replace(written, wanted)
    return runs


def _write_runs(path: str, records: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
