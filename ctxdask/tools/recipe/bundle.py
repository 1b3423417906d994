"""Bundle adjustment of a pair's cubes before stereo, and what the later steps read of it.

The USGS CTX DTM archive bundle-adjusts each pair before stereo, and ASP recommends it for CTX
(NeoGeographyToolkit/StereoPipeline ``docs/examples/ctx.rst``:86-89)::

    bundle_adjust --camera-weight 0 --tri-weight 0.1 --tri-robust-threshold 0.1 \\
        [--heights-from-dem lowres-dem.tif --heights-from-dem-uncertainty U] \\
        L.cal.cub R.cal.cub -o ba/run
        -> ba/run-L.cal.adjust, ba/run-R.cal.adjust,
           ba/run-{initial,final}_residuals_{stats.txt,pointmap.csv}, ...

(options: setting ``tools.asp.bundle-adjust-options``, by default the documentation's for ISIS
cameras, ``docs/tools/bundle_adjust.rst``:29-46). ``bundle_adjust`` names each adjustment
``<prefix>-<camera file name up to its last dot>.adjust`` (``bundle_adjust_file_name``,
``src/asp/Core/BaseCameraUtils.cc``:34-57; an ISIS cube is its own camera), and every program
given ``--bundle-adjust-prefix <prefix>`` looks for that same name (``load_adjusted_model``,
:62-110): ``mapproject`` (``mapproject_single.cc``:90, 167), ``parallel_stereo`` and the stereo
programs (``StereoSettings.cc``:513, ``StereoSession.cc``:391-433). There is no shared
filesystem, so each later step has the two ``.adjust`` files staged into its own work dir
under those names (:func:`adjust_inputs`) and the prefix :data:`PREFIX` is relative: it
resolves in every work dir. It must: ``mapproject`` records the prefix in the map image
(``BUNDLE_ADJUST_PREFIX``, ``src/asp/Camera/MapprojectImage.cc``:215-217) and the stereo
programs load the map projection's cameras with the recorded prefix
(``StereoSession.cc``:160-205), in whichever work dir they run.

The residual files (``write_residual_logs``, ``src/asp/Camera/BundleAdjustResiduals.cc``:303-466)
are outputs too: the pair's QA reads them (:mod:`ctxdask.quality.bundle`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctxdask.exceptions import RecipeError
from ctxdask.settings import Settings
from ctxdask.tools.recipe.settings import pair_step
from ctxdask.tools.recipe.step import LEFT, LOWRES, LOWRES_DEM, RIGHT, Input, Step, Upstream

__all__ = ["PREFIX", "RESIDUAL_FILES", "STEP", "adjust_inputs", "adjusted", "bundle_adjust_step", "prefix_args"]

#: the step's name, and the output prefix, relative to every work dir that uses the adjustments
STEP, PREFIX = "bundle_adjust", "ba/run"
#: output role -> file (``-initial_residuals`` once, ``-final_residuals`` after the last pass)
RESIDUAL_FILES = {f"{when}_{kind}": f"{PREFIX}-{when}_residuals_{name}" for when in ("initial", "final")
                  for kind, name in (("stats", "stats.txt"), ("pointmap", "pointmap.csv"))}
#: options the recipe sets itself (the output prefix, the DEM constraint) or that change what it names
_OWN = frozenset({"o", "output-prefix", "heights-from-dem", "heights-from-dem-list", "heights-from-dem-uncertainty",
                  "image-list", "camera-list", "inline-adjustments", "input-adjustments-prefix", "session-type", "t"})


def _adjust(side: str) -> str:
    """The ``.adjust`` of one side's cube ``{side}.cal.cub``: ``ba/run-{side}.cal.adjust``."""
    return f"{PREFIX}-{{{side}}}.cal.adjust"


def adjust_inputs() -> dict[str, Input]:
    """The inputs a step that takes cameras adds: both ``.adjust`` files, staged under their own names."""
    return {f"{side}_adjust": Input(_adjust(side), Upstream(STEP, f"{side}_adjust")) for side in ("left", "right")}


def prefix_args() -> tuple[str, str]:
    """``--bundle-adjust-prefix ba/run``."""
    return ("--bundle-adjust-prefix", PREFIX)


def _options(options: Mapping[str, Any]) -> tuple[str, ...]:
    """``--key value`` for each configured option (``True``: a bare flag; ``False``/``None``: left out)."""
    args: list[str] = []
    for key, value in options.items():
        name = str(key).lstrip("-")
        if name in _OWN:
            raise RecipeError(None, f"tools.asp.bundle-adjust-options: --{name} is set by the recipe itself; "
                                    "remove it (see tools.asp.heights-from-dem for the DEM constraint)")
        if value is True:
            args.append(f"--{name}")
        elif value is not False and value is not None:
            args += [f"--{name}", " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)]
    return tuple(args)


def bundle_adjust_step(s: Settings) -> Step:
    """``bundle_adjust`` of the pair's two level-1 cubes (see the module docstring)."""
    asp = s.tools.asp
    args = list(_options(asp.bundle_adjust_options))
    inputs = {"left": Input("{left}.cal.cub", LEFT), "right": Input("{right}.cal.cub", RIGHT)}
    if asp.heights_from_dem:
        # docs/bundle_adjustment.rst:340-388; the uncertainty is required with it (BundleAdjustParse.cc:415-418)
        inputs["dem"] = Input(LOWRES_DEM, LOWRES)
        args += ["--heights-from-dem", "{inputs[dem]}", "--heights-from-dem-uncertainty",
                 f"{float(asp.heights_from_dem_uncertainty):g}"]
    outputs = {"left_adjust": _adjust("left"), "right_adjust": _adjust("right"), **RESIDUAL_FILES}
    return pair_step(s, STEP, program="bundle_adjust", args=(*args, "{inputs[left]}", "{inputs[right]}", "-o", PREFIX),
                     inputs=inputs, outputs=outputs)


def adjusted(s: Settings) -> tuple[dict[str, Input], tuple[str, ...]]:
    """What a step that takes cameras adds when the pair is bundle-adjusted: the inputs and the option.

    Empty unless ``tools.asp.bundle-adjust`` is on (``auto`` decided by
    :func:`~ctxdask.tools.recipe.settings.resolved`).
    """
    if s.tools.asp.bundle_adjust is not True:
        return {}, ()
    return adjust_inputs(), prefix_args()
