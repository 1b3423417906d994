"""The stereo stage's shape and its monolithic form: map projection, ``parallel_stereo``, ``point2dem``.

The commands follow the ASP documentation's CTX example (``docs/examples/ctx.rst``)::

    cam2map4stereo.py L.cal.cub R.cal.cub               -> L.map.cub R.map.cub
    parallel_stereo --stereo-algorithm asp_mgm --subpixel-mode 9 \\
        L.map.cub R.map.cub results/out                 -> results/out-PC.tif, -L.tif
    point2dem -r mars [--tr S] [--t_srs P] --orthoimage --errorimage results/out-PC.tif results/out-L.tif

With bundle adjustment (:mod:`ctxdask.tools.recipe.bundle`) ``cam2map4stereo.py`` cannot be
used (``docs/examples/ctx.rst``:86-89: ISIS ``cam2map`` knows no ``.adjust``): with a
low-resolution DEM the images are mapprojected onto it as in tiled mode, and
``parallel_stereo L.map.tif R.map.tif L.cal.cub R.cal.cub results/out --dem DEM``; without
one, ``parallel_stereo L.cal.cub R.cal.cub results/out`` (``docs/bundle_adjustment.rst``:96-101)
with ASP's own alignment of unprojected images (``--alignment-method affineepipolar``,
``src/asp/Core/StereoSettings.cc``:111) where ``stereo-default`` asks for none. Both get
``--bundle-adjust-prefix`` and the ``.adjust`` files.

The tiled form is :mod:`ctxdask.tools.recipe.tiled`; both return a
:class:`StereoStage`, which also names the files the alignment and areoid
stages read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ctxdask.settings import Settings
from ctxdask.tools.recipe.bundle import adjusted
from ctxdask.tools.recipe.settings import step_resources, step_timeout
from ctxdask.tools.recipe.step import External, Input, Step, Upstream

__all__ = ["LEFT", "MOLA", "RIGHT", "StereoStage", "monolithic_stage", "pair_step", "stereo_options"]

#: the pair's image cubes and the MOLA points, given by the caller of ``pair_calls``
LEFT, RIGHT, MOLA = External("left"), External("right"), External("mola")


@dataclasses.dataclass(frozen=True)
class StereoStage:
    """The pair steps from the image cubes to the DEM, and what the later stages read of them.

    Attributes
    ----------
    steps : tuple of Step
        The pair steps in order (tiled: the steps before the tiles).
    tile : Step or None
        Tiled: the per-tile ``stereo_tile`` template.
    mosaics : tuple of Step
        Tiled: the ``dem_mosaic`` templates (their inputs are the tiles' outputs).
    dem : Input
        The DEM, as the areoid step reads it.
    cloud : Input
        What ``pc_align`` moves onto MOLA.
    unaligned : Input
        The DEM ``pc_align`` measures against and whose grid the aligned DEM keeps.
    texture : Input or None
        With ``orthoimage``: the image draped on the aligned DEM.
    error_texture : Input or None
        Tiled with ``errorimage``: the error image draped on the aligned DEM.
    """

    steps: tuple[Step, ...]
    dem: Input
    cloud: Input
    unaligned: Input
    texture: Input | None = None
    error_texture: Input | None = None
    tile: Step | None = None
    mosaics: tuple[Step, ...] = ()


def _stereo_default_text(options: Mapping[str, Any]) -> str:
    lines = ["# stereo.default written by ctxdask (settings tools.asp.stereo-default)"]
    for key, value in options.items():
        if value is True:
            lines.append(key)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            lines.append(f"{key} {' '.join(str(v) for v in value)}")
        else:
            lines.append(f"{key} {value}")
    return "\n".join(lines) + "\n"


def stereo_options(s: Settings) -> tuple[tuple[str, ...], dict[str, str]]:
    """The options every stereo program of a pair takes, and the files they name (``stereo.default``)."""
    asp = s.tools.asp
    args: tuple[str, ...] = ("--stereo-algorithm", str(asp.stereo_algorithm), "--subpixel-mode", str(asp.subpixel_mode))
    files = {}
    if asp.stereo_default:
        files["stereo.default"] = _stereo_default_text(asp.stereo_default)
        args += ("--stereo-file", "stereo.default")
    return args, files


def pair_step(s: Settings, name: str, *, family: str | None = None, **fields) -> Step:
    """A pair-scope step with its configured deadline and resources (``family``'s where it has none of its own).

    A native step also gets its deadline among its options: the callable runs
    the ASP program itself and gives it that deadline.
    """
    timeout = step_timeout(s, name, family)
    if fields.get("kind") == "native":
        fields["options"] = {**fields.get("options", {}), "timeout": timeout}
    resources = step_resources(s, name) or (step_resources(s, family) if family else {})
    return Step(name=name, timeout=timeout, resources=resources, scope="pair", **fields)


def _point2dem(s: Settings, cloud: Input, texture: Input) -> Step:
    """``point2dem`` of the whole pair's cloud: the DEM, and the orthoimage and error image if asked for."""
    asp = s.tools.asp
    args = ["-r", str(asp.datum)]
    if asp.dem_spacing:
        args += ["--tr", f"{float(asp.dem_spacing):g}"]
    if asp.t_srs:
        args += ["--t_srs", str(asp.t_srs)]
    inputs = {"cloud": cloud}
    outputs = {"dem": "results/out-DEM.tif"}
    if asp.orthoimage:
        args.append("--orthoimage")
        inputs["texture"] = texture
        outputs["ortho"] = "results/out-DRG.tif"
    if asp.errorimage:
        args.append("--errorimage")
        outputs["error"] = "results/out-IntersectionErr.tif"
    # texture files follow the point clouds on the command line
    args += [f"{{inputs[{role}]}}" for role in inputs]
    return pair_step(s, "point2dem", program="point2dem", args=tuple(args), inputs=inputs, outputs=outputs)


def monolithic_stage(s: Settings) -> StereoStage:
    """``cam2map4stereo.py`` (adjusted: see the module docstring), ``parallel_stereo``, ``point2dem``."""
    asp = s.tools.asp
    stereo_args, files = stereo_options(s)
    if asp.processes:
        stereo_args += ("--processes", str(int(asp.processes)))
    if asp.threads:
        stereo_args += ("--threads-multiprocess", str(int(asp.threads)))
    outputs = {"pc": "results/out-PC.tif", "aligned_left": "results/out-L.tif"}
    if adjusted(s)[1]:
        steps: tuple[Step, ...] = _adjusted_stereo(s, stereo_args, files, outputs)
    else:
        steps = _cam2map_stereo(s, stereo_args, files, outputs)
    cloud = Input("results/out-PC.tif", Upstream("parallel_stereo", "pc"))
    texture = Input("results/out-L.tif", Upstream("parallel_stereo", "aligned_left"))
    dem = Input("results/out-DEM.tif", Upstream("point2dem", "dem"))
    return StereoStage(steps=(*steps, _point2dem(s, cloud, texture)), dem=dem, cloud=cloud, unaligned=dem,
                       texture=texture if asp.orthoimage else None)


def _adjusted_stereo(s: Settings, stereo_args: tuple[str, ...], files: dict[str, str],
                     outputs: dict[str, str]) -> tuple[Step, ...]:
    """``parallel_stereo`` with the adjustments: of the images mapprojected onto the DEM, else of the cubes."""
    from ctxdask.tools.recipe.tiled import mapprojected_stereo

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
