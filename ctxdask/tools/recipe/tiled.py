"""The tiled stereo stage: ASP's distributed stereo, run by ctxdask instead of ``stereo_dist``.

``stereo_dist`` (src/asp/Tools/stereo_dist in NeoGeographyToolkit/StereoPipeline)
drives its tiles with GNU Parallel over SSH on shared storage; ctxdask runs
the same programs itself: ``mapproject`` of both images onto the
low-resolution DEM on one explicit grid (``--t_srs --tr --t_projwin``, the
finer pixel size and the footprints' intersection, chosen by querying both
cameras as ``stereo_dist`` does: :mod:`ctxdask.tools.mapgrid`; ``--ref-map``
would leave the right image in another projection), ``stereo_parse
--stereo-dist-tile-params SIZE PAD`` (the tile list,
``<prefix>-distTileList.txt``), ``stereo_pprc --stop-after-stats`` (the
statistics every tile reuses), then one ``stereo_tile --tile-index i``
per tile (entry point 0 to stop point 8: preprocessing through point2dem)
and ``dem_mosaic`` of the tiles' DEMs, orthoimages and error images.

The tile and mosaic steps are templates, rendered per pair by
:mod:`ctxdask.tools.tiling` once the tile list is known. With bundle adjustment
(:mod:`ctxdask.tools.recipe.bundle`) every one of these steps that takes cameras
(the grid queries, ``mapproject``, ``stereo_parse``, ``stereo_pprc``, ``stereo_tile``)
gets the ``.adjust`` files and ``--bundle-adjust-prefix``.
"""

from __future__ import annotations

from ctxdask.settings import Settings
from ctxdask.tools.recipe.bundle import PREFIX, adjusted
from ctxdask.tools.recipe.preview import PREVIEW_STEPS, SEED_STEP, seed_dem
from ctxdask.tools.recipe.settings import pair_step, step_resources
from ctxdask.tools.recipe.step import LEFT, LOWRES_DEM, RIGHT, Input, Step, Upstream, flags
from ctxdask.tools.recipe.stereo import StereoStage, stereo_options

__all__ = ["CORR_MEMORY_SHARE", "LOWRES_DEM", "TILED_PREP_STEPS", "mapprojected_stereo", "tiled_stage"]

#: tiled stereo: the pair steps before the tiles, in order (the preview pass and bundle_adjust when there)
TILED_PREP_STEPS = (*PREVIEW_STEPS, SEED_STEP, "bundle_adjust", "mapproject_grid", "mapproject_left",
                    "mapproject_right", "stereo_parse", "stereo_stats")
#: fraction of a tile's memory resource given to the correlator (--corr-memory-limit-mb): the SGM/MGM
#: buffers are most of a tile's memory, and ASP stays "slightly above" the limit (docs/stereodefault.rst)
CORR_MEMORY_SHARE = 0.8

_CAMS = {"left_cam": Input("{left}.cal.cub", LEFT), "right_cam": Input("{right}.cal.cub", RIGHT)}


def _stereo_inputs(s: Settings) -> dict[str, Input]:
    """What every stereo program of the pair reads: the map images, the cameras (ISIS cubes carry them), the DEM
    (one relative name on every worker, :data:`ctxdask.tools.recipe.step.LOWRES_DEM`: lowres-dem, or the preview's)."""
    return {"left": Input("{left}.map.tif", Upstream("mapproject_left", "map")),
            "right": Input("{right}.map.tif", Upstream("mapproject_right", "map")), **_CAMS, "dem": seed_dem(s)}

#: images, cameras, output prefix, and the mapprojection DEM
_POSITIONAL = ("{inputs[left]}", "{inputs[right]}", "{inputs[left_cam]}", "{inputs[right_cam]}",
               "results/out", "--dem", "{inputs[dem]}")
#: a tile is a stereo run: it takes a "stereo" slot of a worker unless tools.resources.stereo_tile says otherwise
#: the dem_mosaic steps: (name, output role, file suffix)
_MOSAICS = (("dem_mosaic", "dem", "DEM"), ("dem_mosaic_ortho", "ortho", "DRG"),
            ("dem_mosaic_error", "error", "IntersectionErr"))


def _adjusted_native(s: Settings) -> tuple[dict[str, Input], dict[str, str]]:
    """A native mapproject step's ``.adjust`` inputs and ``bundle_adjust_prefix`` option (empty: not adjusted)."""
    inputs, args = adjusted(s)
    return inputs, ({"bundle_adjust_prefix": PREFIX} if args else {})


def _grid(s: Settings) -> Step:
    """The common map grid of both images (:func:`ctxdask.tools.mapgrid.common_grid`)."""
    asp = s.tools.asp
    adjust, prefix = _adjusted_native(s)
    return pair_step(s, "mapproject_grid", kind="native", callable="ctxdask.tools.mapgrid:common_grid",
                     args=("{inputs[left]}", "{outputs[grid]}", *flags("inputs", ("right", "dem"))),
                     inputs={"left": _CAMS["left_cam"], "right": _CAMS["right_cam"], "dem": seed_dem(s), **adjust},
                     outputs={"grid": "{pair}.grid.json"},
                     options={"t_srs": asp.t_srs, "tr": asp.mapproject_tr, **prefix})


def _on_grid(s: Settings, side: str) -> Step:
    """``mapproject`` of one image onto the low-resolution DEM (or the preview's) on the common grid.

    Its deadline and resources default to those set for ``mapproject`` (both sides).
    """
    adjust, prefix = _adjusted_native(s)
    return pair_step(s, f"mapproject_{side}", family="mapproject", kind="native",
                     callable="ctxdask.tools.mapgrid:mapproject_on_grid",
                     args=("{inputs[image]}", "{outputs[map]}", *flags("inputs", ("grid", "dem"))),
                     inputs={"image": _CAMS[f"{side}_cam"], "dem": seed_dem(s),
                             "grid": Input("{pair}.grid.json", Upstream("mapproject_grid", "grid")),
                             **({f"{side}_adjust": adjust[f"{side}_adjust"]} if adjust else {})},
                     outputs={"map": f"{{{side}}}.map.tif"}, options=prefix)


def mapprojected_stereo(s: Settings) -> tuple[tuple[Step, ...], dict[str, Input], tuple[str, ...]]:
    """The map projection steps, and what a stereo program of the map images reads and is given.

    Returns the three mapproject steps, the stereo inputs (map images, cameras, DEM and,
    when adjusted, the ``.adjust`` files) and the positional arguments with ``--dem`` (and
    ``--bundle-adjust-prefix``).
    """
    adjust, prefix = adjusted(s)
    steps = (_grid(s), _on_grid(s, "left"), _on_grid(s, "right"))
    return steps, {**_stereo_inputs(s), **adjust}, (*_POSITIONAL, *prefix)


def _tile(s: Settings, stereo_args: tuple[str, ...], files: dict[str, str], reads: dict[str, Input],
          positional: tuple[str, ...]) -> Step:
    """The ``stereo_tile`` template: one tile from preprocessing through its DEM."""
    asp, resources = s.tools.asp, step_resources(s, "stereo_tile")
    corr = asp.corr_memory_limit_mb
    if corr is None and resources.get("memory_mb"):
        corr = int(float(resources["memory_mb"]) * CORR_MEMORY_SHARE)
    args = ["--tile-index", "{tile_index}", "--entry-point", "0", "--stop-point", "8",
            "--point2dem-options", "{point2dem_options}"]
    if corr:
        args += ["--corr-memory-limit-mb", str(int(corr))]
    if asp.threads:
        args += ["--threads", str(int(asp.threads))]
    outputs = {"dem": "{tile_prefix}-DEM.tif"}
    if asp.orthoimage:
        outputs["ortho"] = "{tile_prefix}-DRG.tif"
    if asp.errorimage:
        outputs["error"] = "{tile_prefix}-IntersectionErr.tif"
    inputs = {**reads, "tiles": Input("results/out-distTileList.txt", Upstream("stereo_parse", "tiles")),
              "left_stats": Input("results/out-{left}.map-stats.tif", Upstream("stereo_stats", "left_stats")),
              "right_stats": Input("results/out-{right}.map-stats.tif", Upstream("stereo_stats", "right_stats"))}
    return pair_step(s, "stereo_tile", program="stereo_tile",
                     args=(*args, *stereo_args, *positional), inputs=inputs, outputs=outputs, files=files)


def _mosaic(s: Settings, name: str, role: str, suffix: str) -> Step:
    """``dem_mosaic`` of one output of the tiles (its inputs and list file come with the tiles)."""
    return pair_step(s, name, family="dem_mosaic", program="dem_mosaic",
                     args=("--dem-list", f"{suffix}-tiles.txt", "-o", f"{{outputs[{role}]}}"),
                     outputs={role: f"results/out-{suffix}.tif"})


def tiled_stage(s: Settings) -> StereoStage:
    """The prep steps (:data:`TILED_PREP_STEPS`), the tile template and the mosaics."""
    asp = s.tools.asp
    stereo_args, files = stereo_options(s)
    mapping, reads, positional = mapprojected_stereo(s)
    parse = pair_step(s, "stereo_parse", program="stereo_parse",
                      args=(*stereo_args, *positional, "--stereo-dist-tile-params", str(int(asp.tiles.size)),
                            str(int(asp.tiles.padding))),
                      inputs=reads, outputs={"tiles": "results/out-distTileList.txt"}, files=files)
    # gather_stats names them <prefix>-<image stem>-stats.tif (src/asp/Core/ImageUtils.cc)
    stats = pair_step(s, "stereo_stats", program="stereo_pprc",
                      args=(*stereo_args, *positional, "--stop-after-stats",
                            *(("--threads", str(int(asp.threads))) if asp.threads else ())),
                      inputs=reads, outputs={"left_stats": "results/out-{left}.map-stats.tif",
                                             "right_stats": "results/out-{right}.map-stats.tif"},
                      files=files)
    wanted = {"dem": True, "ortho": asp.orthoimage, "error": asp.errorimage}
    # pc_align reads a DEM as a cloud (docs/tools/pc_align.rst): align the mosaic
    dem = Input("results/out-DEM.tif", Upstream("dem_mosaic", "dem"))
    return StereoStage(
        steps=(*mapping, parse, stats),
        tile=_tile(s, stereo_args, files, reads, positional),
        mosaics=tuple(_mosaic(s, *m) for m in _MOSAICS if wanted[m[1]]),
        dem=dem, cloud=dem, unaligned=Input("results/out-DEM-mosaic.tif", Upstream("dem_mosaic", "dem")),
        texture=Input("results/out-DRG.tif", Upstream("dem_mosaic_ortho", "ortho")) if asp.orthoimage else None,
        # the mosaic's 3-band cloud has no error: drape the error mosaic
        error_texture=(Input("results/out-IntersectionErr.tif", Upstream("dem_mosaic_error", "error"))
                       if asp.errorimage else None),
    )
