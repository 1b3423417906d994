"""The stereo stage's shape, and what its two forms share: stereo options, pair steps, ``point2dem``.

A stereo stage turns the pair's level-1 cubes into a DEM: monolithic
(:mod:`ctxdask.tools.recipe.monolithic`: ``parallel_stereo`` of the whole pair,
then ``point2dem``) or tiled (:mod:`ctxdask.tools.recipe.tiled`: one
``stereo_tile`` per tile, then ``dem_mosaic``). Both return a
:class:`StereoStage`, which also names the files the alignment and areoid
stages read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ctxdask.settings import Settings
from ctxdask.tools.recipe.settings import pair_step
from ctxdask.tools.recipe.step import LEFT, MOLA, RIGHT, Input, Step

__all__ = ["LEFT", "MOLA", "RIGHT", "StereoStage", "pair_step", "point2dem_step", "stereo_options"]


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


def point2dem_step(s: Settings, cloud: Input, texture: Input) -> Step:
    """Monolithic ``point2dem`` of the pair's cloud: the DEM, and the orthoimage and error image if asked for."""
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
