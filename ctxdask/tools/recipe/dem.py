"""The DEM stages after stereo: alignment to MOLA (optional) and areoid heights (optional).

::

    pc_align --max-displacement D --datum D_MARS --csv-format '1:lon 2:lat 3:radius_km' \\
        --save-inv-transformed-reference-points results/out-PC.tif mola.csv -o results/out-align
        (native step ctxdask.tools.align: D = 3 x median |DEM - MOLA|, rerun on pc_align's warning)
    point2dem -r mars --tr S --t_srs P --orthoimage --errorimage \\
        results/out-align-trans_reference.tif results/out-L.tif -o results/out-align
        (native step ctxdask.tools.align:grid_aligned: S and P of the unaligned DEM)
    dem_geoid --geoid MOLA results/out[-align]-DEM.tif -o results/out[-align]-DEM
        -> results/out[-align]-DEM-adj.tif (without -o: ./out[-align]-DEM-adj.tif, dem_geoid.cc:248)

Tiled stereo aligns the DEM mosaic: pc_align then writes a 3-band cloud
(pc_align_utils.cc:462-486), which has no triangulation error, so the aligned
orthoimage and error image are the mosaics' draped on the moved points
(point2dem ``--orthoimage`` with them as textures, see :func:`ctxdask.tools.align.grid_aligned`).
"""

from __future__ import annotations

from ctxdask.settings import Settings
from ctxdask.tools.recipe.step import Input, Step, Upstream, flags
from ctxdask.tools.recipe.stereo import MOLA, StereoStage, pair_step

__all__ = ["alignment_steps", "areoid_step"]

#: pc_align's outputs besides the moved cloud; the callable is told where to put the first three
_ALIGN_OUTPUTS = {"transform": "results/out-align-transform.txt",
                  "runs": "results/out-align-runs.json",
                  "beg_errors": "results/out-align-beg_errors.csv",
                  "end_errors": "results/out-align-end_errors.csv",
                  "points": "results/out-align-mola.csv"}


def _pc_align(s: Settings, stage: StereoStage) -> Step:
    """Native ``pc_align`` onto MOLA: max displacement from the data, a rerun when pc_align warns."""
    asp, align = s.tools.asp, s.quality.dem_alignment
    return pair_step(
        s, "pc_align", kind="native", callable="ctxdask.tools.align:align_to_mola",
        args=("{inputs[cloud]}", "{outputs[cloud]}", *flags("inputs", ("mola", "dem")),
              *flags("outputs", ("transform", "runs", "points"))),
        inputs={"cloud": stage.cloud, "mola": Input("mola.csv", MOLA), "dem": stage.unaligned},
        outputs={"cloud": "results/out-align-trans_reference.tif", **_ALIGN_OUTPUTS},
        options={"csv_format": asp.mola_csv_format, "datum": "D_MARS", "factor": align.factor,
                 "floor": align.floor, "reruns": align.reruns, "max_displacement": asp.max_displacement},
    )


def _point2dem_aligned(s: Settings, stage: StereoStage) -> Step:
    """Native ``point2dem`` of the moved cloud on the unaligned DEM's projection and grid size."""
    asp = s.tools.asp
    inputs = {"cloud": Input("results/out-align-trans_reference.tif", Upstream("pc_align", "cloud")),
              "like": stage.unaligned}
    outputs = {"dem": "results/out-align-DEM.tif"}
    if asp.orthoimage:
        inputs["texture"] = stage.texture
        outputs["ortho"] = "results/out-align-DRG.tif"
    if asp.errorimage:
        if stage.error_texture is not None:
            inputs["error_texture"] = stage.error_texture
        outputs["error"] = "results/out-align-IntersectionErr.tif"
    return pair_step(
        s, "point2dem_aligned", kind="native", callable="ctxdask.tools.align:grid_aligned",
        args=("{inputs[cloud]}", "{outputs[dem]}", *flags("inputs", [r for r in inputs if r != "cloud"]),
              *flags("outputs", [r for r in outputs if r != "dem"])),
        inputs=inputs, outputs=outputs, options={"datum": str(asp.datum)},
    )


def alignment_steps(s: Settings, stage: StereoStage) -> tuple[list[Step], Input]:
    """``pc_align`` and the aligned DEM's ``point2dem``, and the aligned DEM as the next stage reads it."""
    return ([_pc_align(s, stage), _point2dem_aligned(s, stage)],
            Input("results/out-align-DEM.tif", Upstream("point2dem_aligned", "dem")))


def areoid_step(s: Settings, dem: Input) -> Step:
    """``dem_geoid`` of ``dem`` (heights above the areoid) with an explicit output prefix.

    Without ``-o`` the output is ``./<stem>-adj.tif`` (dem_geoid.cc:248-249, 489).
    """
    stem, geoid = dem.name.removesuffix(".tif"), s.tools.asp.geoid
    geoid = ("--geoid", str(geoid)) if geoid else ()
    return pair_step(s, "dem_geoid", program="dem_geoid", args=(*geoid, "{inputs[dem]}", "-o", stem),
                     inputs={"dem": dem}, outputs={"dem": f"{stem}-adj.tif"})
