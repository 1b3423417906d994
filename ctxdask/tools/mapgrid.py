"""Map-project both images of a pair onto one grid, as ASP's ``stereo_dist`` does.

ASP 3.7's ``mapproject`` wrapper resolves ``--ref-map`` into ``--tr`` and
``--t_projwin`` for its per-tile runs but never passes ``--t_srs``
(NeoGeographyToolkit/StereoPipeline ``src/asp/Tools/mapproject``:448-471,
539-556): a right image map-projected with ``--ref-map`` alone lands in the
low-resolution DEM's projection (on a lon/lat DEM, in a stereographic
projection centred on its own footprint), and ``stereo_parse``/``stereo_pprc``
stop with "The left and right images must use the same projection"
(``src/asp/Tools/stereo.cc``:1265-1266). ``stereo_dist`` avoids this in
``runMapprojection`` (``src/asp/Python/asp_dist_utils.py``:166-288), and so do
these native recipe steps:

:func:`common_grid` (step ``mapproject_grid``)
    ``mapproject_single --query-projection --write-wkt`` of the left image (with
    ``--t_srs`` when ``tools.asp.t-srs`` is set; otherwise ASP picks the DEM's
    projection, or a local stereographic one for a lon/lat DEM:
    ``mapproject_single.cc``:524-529), then of the right image with the left
    projection forced (``--t_srs``); the grid is the finer of the two pixel sizes
    (or ``tools.asp.mapproject-tr``), the extent the intersection of the two
    footprints (asp_dist_utils.py:195-263). Written as JSON: ``t_srs`` (the
    projection's WKT text, not the path of the ``.wkt`` file, so that it means
    the same on every worker), ``tr``, ``t_projwin``.
:func:`mapproject_on_grid` (steps ``mapproject_left``, ``mapproject_right``)
    ``mapproject --t_srs WKT --tr TR --t_projwin XMIN YMIN XMAX YMAX DEM IMAGE OUT``
    (asp_dist_utils.py:265-286).

The DEM is passed by the name the step sees it under in its work dir (the
recipe stages it as :data:`ctxdask.tools.recipe.LOWRES_DEM` in every tiled
step): ``mapproject`` records that string as ``DEM_FILE`` in the map images
(``src/asp/Camera/MapprojectImage.cc``:243) and the stereo programs require
it to equal their ``--dem`` (``src/asp/Sessions/StereoSession.cc``:148-160),
whichever worker runs them.

With bundle adjustment both take ``bundle_adjust_prefix``: every query and
``mapproject`` run gets ``--bundle-adjust-prefix`` (``mapproject_single.cc``:90,
167; the ``mapproject`` wrapper passes it on to its query and tiles, as it does
every option it does not know, ``src/asp/Tools/mapproject``:309-340), so the grid
is chosen on the adjusted footprints and the map images record the prefix
(``MapprojectImage.cc``:215-217). The prefix is relative to the step's work dir,
where the recipe stages the ``.adjust`` files (:mod:`ctxdask.tools.recipe.bundle`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ctxdask.exceptions import ToolError

__all__ = ["common_grid", "mapproject_argv", "mapproject_on_grid", "parse_query", "query_argv"]

_QUERY_KEYS = ("image_width", "image_height", "pixel_size", "proj_box_xmin", "proj_box_ymin",
               "proj_box_xmax", "proj_box_ymax")


def query_argv(dem: str, image: str, output: str, t_srs: str | None = None,
               bundle_adjust_prefix: str | None = None) -> list[str]:
    """``mapproject_single --query-projection --write-wkt`` (``queryMapproject``, asp_dist_utils.py:155-164)."""
    return ["mapproject_single", "--query-projection", "--write-wkt", dem, image, output,
            *(["--t_srs", t_srs] if t_srs else []), *_adjusted(bundle_adjust_prefix)]


def _adjusted(prefix: str | None) -> list[str]:
    return ["--bundle-adjust-prefix", prefix] if prefix else []


def parse_query(text: str, source: str = "mapproject_single") -> dict[str, str]:
    """The ``key,value`` lines of a projection query (``run_and_parse_output`` with ``,``)."""
    data = {}
    for line in text.splitlines():
        if "," in line:
            key, value = line.split(",", 1)
            data[key.strip()] = value.strip()
    missing = [k for k in (*_QUERY_KEYS, "projection_wkt_file") if k not in data]
    if missing:
        raise ToolError(source, f"projection query printed no {', '.join(missing)}")
    return data


def _query(argv: list[str], cwd: str, log: str, timeout: float, env) -> dict[str, str]:
    from ctxdask.tools.runner import run

    run(argv, cwd, timeout, env=env, log=log)
    with open(os.path.join(cwd, log), encoding="utf-8", errors="replace") as f:
        return parse_query(f.read(), f"{argv[0]} (log {log})")


def common_grid(left: str, destination: str, *, right: str, dem: str, t_srs: str | None = None,
                tr: float | None = None, bundle_adjust_prefix: str | None = None, factor: float = 1.0,
                timeout: float = 3600.0, env: dict[str, Any] | None = None) -> dict:
    """Choose the pair's common projection, grid size and extent (``runMapprojection`` steps 1-5).

    Parameters
    ----------
    left, right : str
        The level-1 cubes (ISIS cubes carry their cameras).
    destination : str
        The grid, as JSON.
    dem : str
        The low-resolution DEM, by the name it has in the work dir.
    t_srs : str, optional
        ``tools.asp.t-srs``: used for the left query and for both images.
    tr : float, optional
        ``tools.asp.mapproject-tr``: the grid size instead of the finer queried one.
    bundle_adjust_prefix : str, optional
        Query the adjusted cameras (relative to the work dir).
    factor : float
        The grid size is this multiple of ``tr`` (or of the finer queried one): the preview
        pass's coarse ``--tr`` (``tools.asp.preview-factor``; ``mapproject --tr``,
        docs/tools/mapproject.rst:409).

    Raises
    ------
    ctxdask.exceptions.ToolError
        A query failed or the footprints do not overlap.
    """
    cwd = os.getcwd()
    rel = lambda p: os.path.relpath(p, cwd)  # noqa: E731 - the names the programs record
    ba = bundle_adjust_prefix
    lq = _query(query_argv(rel(dem), rel(left), "left_query.tif", t_srs, ba), cwd, "query-left.log", timeout, env)
    with open(os.path.join(cwd, lq["projection_wkt_file"]), encoding="utf-8") as f:
        left_wkt = f.read().strip()
    rq = _query(query_argv(rel(dem), rel(right), "right_query.tif", left_wkt, ba), cwd, "query-right.log",
                timeout, env)
    boxes = [[float(q[f"proj_box_{k}"]) for k in ("xmin", "ymin", "xmax", "ymax")] for q in (lq, rq)]
    box = [max(boxes[0][0], boxes[1][0]), max(boxes[0][1], boxes[1][1]),
           min(boxes[0][2], boxes[1][2]), min(boxes[0][3], boxes[1][3])]
    if box[0] >= box[2] or box[1] >= box[3]:
        raise ToolError("mapproject_single", f"the images {left} and {right} do not overlap in projected space")
    gsd = min(abs(float(lq["pixel_size"])), abs(float(rq["pixel_size"])))
    grid = {"t_srs": t_srs or left_wkt, "tr": (float(tr) if tr else gsd) * float(factor), "t_projwin": box,
            "left": {k: lq[k] for k in _QUERY_KEYS}, "right": {k: rq[k] for k in _QUERY_KEYS}}
    with open(destination, "w", encoding="utf-8") as f:
        json.dump(grid, f, indent=1)
    print(f"common grid: --tr {grid['tr']!r} --t_projwin {' '.join(repr(v) for v in box)}", flush=True)
    return grid


def mapproject_argv(grid: dict, dem: str, image: str, output: str,
                    bundle_adjust_prefix: str | None = None) -> list[str]:
    """``mapproject`` with the pair's explicit grid (asp_dist_utils.py:265-278)."""
    return ["mapproject", "--t_srs", str(grid["t_srs"]), "--tr", repr(float(grid["tr"])), "--t_projwin",
            *(repr(float(v)) for v in grid["t_projwin"]), *_adjusted(bundle_adjust_prefix), dem, image, output]


def mapproject_on_grid(image: str, destination: str, *, grid: str, dem: str, bundle_adjust_prefix: str | None = None,
                       timeout: float = 3600.0, env: dict[str, Any] | None = None) -> None:
    """Map-project ``image`` onto the common grid written by :func:`common_grid` (with its adjustment, if given)."""
    from ctxdask.tools.runner import run

    with open(grid, encoding="utf-8") as f:
        spec = json.load(f)
    cwd = os.getcwd()
    argv = mapproject_argv(spec, os.path.relpath(dem, cwd), os.path.relpath(image, cwd),
                           os.path.relpath(destination, cwd), bundle_adjust_prefix)
    run(argv, cwd, timeout, env=env, log="mapproject.log")
