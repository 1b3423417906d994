"""The preview pass: a fast low-resolution stereo run of a pair before its full-resolution one.

ASP's own way to a low-resolution DEM of a pair is to run ASP itself, coarser
and faster (NeoGeographyToolkit/StereoPipeline ``docs/next_steps.rst``:435-443:
"a low-resolution smooth DEM can be obtained by running ASP itself ... subpixel
mode may be set to parabola (``subpixel-mode 1``) for speed ... the resolution
can be set to about 40 times coarser"), and then to mapproject the images onto
that DEM for the real run (:591-596; ``docs/examples/ctx.rst`` does the same
with the MOLA DEM). The preview steps (:data:`PREVIEW_STEPS`)::

    mapproject_grid  of both cubes onto lowres-dem.tif, --tr x preview-factor   (native, ctxdask.tools.mapgrid)
    mapproject       of each cube on that grid (docs/tools/mapproject.rst:409, --tr)
    parallel_stereo --stereo-algorithm asp_bm --subpixel-mode 1 [--stereo-file stereo.default] \\
        L.map.tif R.map.tif L.cal.cub R.cal.cub preview/out --dem lowres-dem.tif
        (mapprojected images, the DEM last: docs/next_steps.rst:158-163, docs/examples/ctx.rst:15-19)
    point2dem -r mars [--t_srs P] --errorimage preview/out-PC.tif
        (no --tr: point2dem's own grid, 4 x the coarse cloud's point spacing, docs/tools/point2dem.rst:15-19)
    [pc_align of the preview DEM onto MOLA, and its DEM on the preview's grid: with tools.asp.pc-align]
    preview_qa       valid fraction, CTX - MOLA, intersection error -> verdict  (native, ctxdask.quality.preview)

``asp_bm`` is ASP's fastest correlator (``docs/stereo_algorithms.rst``:10-18);
``--subpixel-mode 1`` (parabola) is the documentation's choice for speed.
A pair whose verdict is ``held`` waits before the full-resolution steps
(:mod:`ctxdask.batch.triage`); one that passes is mapprojected for the full pass
onto its preview DEM (:func:`seed_dem`, setting ``tools.asp.preview-seed``),
staged under the same relative name every full-pass step gives ``--dem``
(:data:`~ctxdask.tools.recipe.step.LOWRES_DEM`: ``mapproject`` records the DEM
argument and the stereo programs require their ``--dem`` to equal it,
``src/asp/Sessions/StereoSession.cc``:148-160).
"""

from __future__ import annotations

from ctxdask.settings import Settings
from ctxdask.tools.recipe.settings import pair_step
from ctxdask.tools.recipe.step import LEFT, LOWRES, LOWRES_DEM, MOLA, RIGHT, Input, Step, Upstream, flags

__all__ = ["PREVIEW_STEPS", "QA_STEP", "SEED_STEP", "VERDICT", "enabled", "preview_steps", "seed_dem", "seed_step"]

#: the preview pass's pair steps, in order (the two alignment steps with pc_align); the last writes the verdict
PREVIEW_STEPS = ("preview_grid", "preview_left", "preview_right", "preview_stereo", "preview_point2dem",
                 "preview_align", "preview_point2dem_aligned", "preview_qa")
QA_STEP = PREVIEW_STEPS[-1]
#: a passing pair's seed: its preview DEM hole-filled (dem_mosaic), the first step of its full pass
SEED_STEP = "preview_seed"
#: the preview DEM, and the same aligned to MOLA (pc_align)
_DEM = Input("preview/out-DEM.tif", Upstream("preview_point2dem", "dem"))
_ALIGNED = Input("preview/out-align-DEM.tif", Upstream("preview_point2dem_aligned", "dem"))
#: the verdict's output role and file (delivered with the pair's QA files)
VERDICT = ("preview", "preview/preview-verdict.json")
#: the preview's fast correlation (docs/stereo_algorithms.rst:10-18; docs/next_steps.rst:436-437)
FAST_STEREO = ("--stereo-algorithm", "asp_bm", "--subpixel-mode", "1")

_LOWRES = Input(LOWRES_DEM, LOWRES)
_CAMS = {"left_cam": Input("{left}.cal.cub", LEFT), "right_cam": Input("{right}.cal.cub", RIGHT)}


def enabled(s: Settings) -> bool:
    """Whether the recipe has the preview pass (``tools.asp.preview``, ``auto`` decided by
    :func:`~ctxdask.tools.recipe.settings.resolved`)."""
    return s.tools.asp.preview is True


def seed_dem(s: Settings) -> Input:
    """The DEM the full pass mapprojects onto: the preview DEM (aligned to MOLA with pc_align) when seeding,
    else ``lowres-dem``."""
    if enabled(s) and s.tools.asp.preview_seed:
        if s.tools.asp.preview_hole_fill:
            return Input(LOWRES_DEM, Upstream(SEED_STEP, "seed"))
        return Input(LOWRES_DEM, (_ALIGNED if s.tools.asp.pc_align else _DEM).source)
    return _LOWRES


def seed_step(s: Settings) -> Step | None:
    """``dem_mosaic --hole-fill-length N`` of the (aligned) preview DEM: the seed DEM should have no holes
    (``docs/next_steps.rst``:576-590, ``docs/tools/dem_mosaic.rst``:200-206); None without a fill or a seed."""
    asp = s.tools.asp
    if not (enabled(s) and asp.preview_seed and asp.preview_hole_fill):
        return None
    dem = _ALIGNED if asp.pc_align else _DEM
    # role "seed", not "dem": the pair's products are made of its full pass's DEMs only
    return pair_step(s, SEED_STEP, family="dem_mosaic", program="dem_mosaic",
                     args=("--hole-fill-length", str(int(asp.preview_hole_fill)), "{inputs[dem]}", "-o",
                           "{outputs[seed]}"),
                     inputs={"dem": dem}, outputs={"seed": "preview/out-seed-DEM.tif"})


def _alignment(s: Settings) -> tuple[Step, Step]:
    """``pc_align`` of the preview DEM onto MOLA (a DEM is a cloud to pc_align, docs/tools/pc_align.rst) and
    the aligned DEM on the preview's grid: the full pass's own alignment steps (:mod:`ctxdask.tools.recipe.dem`)."""
    asp, align = s.tools.asp, s.quality.dem_alignment
    outputs = {"transform": "preview/out-align-transform.txt", "runs": "preview/out-align-runs.json",
               "points": "preview/out-align-mola.csv"}
    pc_align = pair_step(
        s, "preview_align", family="pc_align", kind="native", callable="ctxdask.tools.align:align_to_mola",
        args=("{inputs[cloud]}", "{outputs[cloud]}", *flags("inputs", ("mola", "dem")), *flags("outputs", outputs)),
        # the DEM it measures the offset on is the same file, staged under a name of its own
        inputs={"cloud": _DEM, "mola": Input("mola.csv", MOLA),
                "dem": Input("preview/out-DEM-unaligned.tif", _DEM.source)},
        outputs={"cloud": "preview/out-align-trans_reference.tif", **outputs},
        options={"csv_format": asp.mola_csv_format, "datum": "D_MARS", "factor": align.factor,
                 "floor": align.floor, "reruns": align.reruns, "max_displacement": asp.max_displacement})
    grid = pair_step(
        s, "preview_point2dem_aligned", family="point2dem_aligned", kind="native",
        callable="ctxdask.tools.align:grid_aligned",
        args=("{inputs[cloud]}", "{outputs[dem]}", *flags("inputs", ("like",))),
        inputs={"cloud": Input("preview/out-align-trans_reference.tif", Upstream("preview_align", "cloud")),
                "like": _DEM},
        outputs={"dem": _ALIGNED.name}, options={"datum": str(asp.datum)})
    return pc_align, grid


def _map(s: Settings, side: str) -> Step:
    """``mapproject`` of one cube onto the low-resolution DEM on the preview's coarse grid."""
    return pair_step(s, f"preview_{side}", family="mapproject", kind="native",
                     callable="ctxdask.tools.mapgrid:mapproject_on_grid",
                     args=("{inputs[image]}", "{outputs[map]}", *flags("inputs", ("grid", "dem"))),
                     inputs={"image": _CAMS[f"{side}_cam"], "dem": _LOWRES,
                             "grid": Input("{pair}.preview-grid.json", Upstream("preview_grid", "grid"))},
                     outputs={"map": f"preview/{{{side}}}.map.tif"})


def preview_steps(s: Settings, stereo_file: dict[str, str]) -> tuple[Step, ...]:
    """The preview pass (:data:`PREVIEW_STEPS`); ``stereo_file``: the pair's ``stereo.default`` (may be empty)."""
    asp, limits = s.tools.asp, s.quality.preview
    grid = pair_step(s, "preview_grid", family="mapproject_grid", kind="native",
                     callable="ctxdask.tools.mapgrid:common_grid",
                     args=("{inputs[left]}", "{outputs[grid]}", *flags("inputs", ("right", "dem"))),
                     inputs={"left": _CAMS["left_cam"], "right": _CAMS["right_cam"], "dem": _LOWRES},
                     outputs={"grid": "{pair}.preview-grid.json"},
                     options={"t_srs": asp.t_srs, "tr": asp.mapproject_tr, "factor": asp.preview_factor})
    args = [*FAST_STEREO, *(("--stereo-file", "stereo.default") if stereo_file else ())]
    if asp.processes:
        args += ["--processes", str(int(asp.processes))]
    if asp.threads:
        args += ["--threads-multiprocess", str(int(asp.threads))]
    stereo = pair_step(
        s, "preview_stereo", family="parallel_stereo", program="parallel_stereo",
        args=(*args, "{inputs[left]}", "{inputs[right]}", "{inputs[left_cam]}", "{inputs[right_cam]}",
              "preview/out", "--dem", "{inputs[dem]}"),
        inputs={"left": Input("preview/{left}.map.tif", Upstream("preview_left", "map")),
                "right": Input("preview/{right}.map.tif", Upstream("preview_right", "map")), **_CAMS,
                "dem": _LOWRES},
        outputs={"pc": "preview/out-PC.tif"}, files=stereo_file)
    dem_args = ["-r", str(asp.datum), *(("--t_srs", str(asp.t_srs)) if asp.t_srs else ()), "--errorimage",
                "{inputs[cloud]}"]
    point2dem = pair_step(s, "preview_point2dem", family="point2dem", program="point2dem", args=tuple(dem_args),
                          inputs={"cloud": Input("preview/out-PC.tif", Upstream("preview_stereo", "pc"))},
                          outputs={"dem": "preview/out-DEM.tif", "error": "preview/out-IntersectionErr.tif"})
    qa_inputs = {"dem": _DEM, "error": Input("preview/out-IntersectionErr.tif", Upstream("preview_point2dem", "error"))}
    aligned: tuple[Step, ...] = ()
    if asp.pc_align:  # the MOLA shots come with alignment (tools.asp.mola-points): QA of the aligned DEM
        aligned = _alignment(s)
        qa_inputs.update(dem=_ALIGNED, dem_before=_DEM, mola=Input("mola.csv", MOLA))
    role, name = VERDICT
    qa = pair_step(s, QA_STEP, kind="native", callable="ctxdask.quality.preview:preview_verdict",
                   args=("{inputs[dem]}", f"{{outputs[{role}]}}", *flags("inputs", [r for r in qa_inputs
                                                                                   if r != "dem"])),
                   inputs=qa_inputs, outputs={role: name},
                   options={"csv_format": asp.mola_csv_format,
                            "thresholds": {k: getattr(limits, k) for k in (
                                "min_valid_fraction", "max_mola_nmad", "max_mola_median_abs",
                                "max_intersection_error")}})
    return grid, _map(s, "left"), _map(s, "right"), stereo, point2dem, *aligned, qa
