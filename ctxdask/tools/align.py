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
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from typing import Any

from ctxdask.io.atomic import atomic_path

__all__ = ["align_to_mola", "pc_align_argv"]

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


def _write_runs(path: str, records: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
