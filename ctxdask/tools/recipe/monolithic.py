"""The monolithic stereo stage: map projection, ``parallel_stereo`` of the whole pair, ``point2dem``.

The commands follow the ASP documentation's CTX example (``docs/examples/ctx.rst``)::

    cam2map4stereo.py L.cal.cub R.cal.cub               -> L.map.cub R.map.cub
    parallel_stereo --stereo-algorithm asp_mgm --subpixel-mode 9 \\
        L.map.cub R.map.cub results/out                 -> results/out-PC.tif, -L.tif
    point2dem -r mars [--tr S] [--t_srs P] --orthoimage --errorimage results/out-PC.tif results/out-L.tif

With bundle adjustment (:mod:`ctxdask.tools.recipe.bundle`) ``cam2map4stereo.py`` cannot be
used (``docs/examples/ctx.rst``:86-89: ISIS ``cam2map`` knows no ``.adjust``): with a
low-resolution DEM the images are mapprojected onto it as in tiled mode, and
``parallel_stereo L.map.tif R.map.tif L.cal.cub R.cal.cub results/out --dem DEM``; without
one, ``parallel_stereo L.cal.cub R.cal.cub results/out`` (``docs/bundle_adjustment.rst``:109-114)
with ASP's own alignment of unprojected images (``--alignment-method affineepipolar``,
``src/asp/Core/StereoSettings.cc``:111) where ``stereo-default`` asks for none. Both get
``--bundle-adjust-prefix`` and the ``.adjust`` files.

With the preview pass (:mod:`ctxdask.tools.recipe.preview`) the images are mapprojected as in
tiled mode too, onto the preview DEM (``tools.asp.preview-seed``) or the low-resolution DEM.
"""

from __future__ import annotations

from ctxdask.settings import Settings
from ctxdask.tools.recipe.bundle import adjusted
from ctxdask.tools.recipe.preview import enabled as preview_enabled
from ctxdask.tools.recipe.step import LEFT, RIGHT, Input, Step, Upstream
from ctxdask.tools.recipe.stereo import StereoStage, pair_step, point2dem_step, stereo_options
from ctxdask.tools.recipe.tiled import mapprojected_stereo

__all__ = ["monolithic_stage"]


def monolithic_stage(s: Settings) -> StereoStage:
    """``cam2map4stereo.py`` (adjusted: see the module docstring), ``parallel_stereo``, ``point2dem``."""
    asp = s.tools.asp
    stereo_args, files = stereo_options(s)
    if asp.processes:
        stereo_args += ("--processes", str(int(asp.processes)))
    if asp.threads:
        stereo_args += ("--threads-multiprocess", str(int(asp.threads)))
    outputs = {"pc": "results/out-PC.tif", "aligned_left": "results/out-L.tif"}
    if adjusted(s)[1] or preview_enabled(s):  # the preview DEM seeds a mapprojected full pass
        steps: tuple[Step, ...] = _adjusted_stereo(s, stereo_args, files, outputs)
    else:
        steps = _cam2map_stereo(s, stereo_args, files, outputs)
    cloud = Input("results/out-PC.tif", Upstream("parallel_stereo", "pc"))
    texture = Input("results/out-L.tif", Upstream("parallel_stereo", "aligned_left"))
    dem = Input("results/out-DEM.tif", Upstream("point2dem", "dem"))
    return StereoStage(steps=(*steps, point2dem_step(s, cloud, texture)), dem=dem, cloud=cloud, unaligned=dem,
                       texture=texture if asp.orthoimage else None)


def _adjusted_stereo(s: Settings, stereo_args: tuple[str, ...], files: dict[str, str],
                     outputs: dict[str, str]) -> tuple[Step, ...]:
    """``parallel_stereo`` with the adjustments: of the images mapprojected onto the DEM, else of the cubes."""
    adjust, prefix = adjusted(s)
    if s.tools.asp.lowres_dem:
        mapping, reads, positional = mapprojected_stereo(s)
        return (*mapping, pair_step(s, "parallel_stereo", program="parallel_stereo",
                                    args=(*stereo_args, *positional), inputs=reads, outputs=outputs, files=files))
    default = s.tools.asp.stereo_default or {}
    align = ("--alignment-method", "affineepipolar") if str(default.get("alignment-method")) == "none" else ()
    return (pair_step(s, "parallel_stereo", program="parallel_stereo",
                      args=(*stereo_args, *align, *prefix, "{inputs[left]}", "{inputs[right]}", "results/out"),
                      inputs={"left": Input("{left}.cal.cub", LEFT), "right": Input("{right}.cal.cub", RIGHT),
                              **adjust}, outputs=outputs, files=files),)


def _cam2map_stereo(s: Settings, stereo_args: tuple[str, ...], files: dict[str, str],
                    outputs: dict[str, str]) -> tuple[Step, ...]:
    """``cam2map4stereo.py`` and ``parallel_stereo`` of its map cubes (docs/examples/ctx.rst)."""
    cam2map = pair_step(
        s, "cam2map4stereo", program="cam2map4stereo.py", args=("{inputs[left]}", "{inputs[right]}"),
        inputs={"left": Input("{left}.cal.cub", LEFT), "right": Input("{right}.cal.cub", RIGHT)},
        # cam2map4stereo.py names its outputs <first dot-part>.map.cub
        outputs={"left": "{left}.map.cub", "right": "{right}.map.cub"})
    stereo = pair_step(
        s, "parallel_stereo", program="parallel_stereo",
        args=(*stereo_args, "{inputs[left]}", "{inputs[right]}", "results/out"),
        inputs={"left": Input("{left}.map.cub", Upstream("cam2map4stereo", "left")),
                "right": Input("{right}.map.cub", Upstream("cam2map4stereo", "right"))},
        outputs=outputs, files=files)
    return cam2map, stereo
