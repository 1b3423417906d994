"""The CTX stereo chain as data.

A :class:`Recipe` is two tuples of :class:`Step`: the image steps, run once per
image (ingest, SPICE, calibration), and the pair steps, run once per stereo pair
(map projection, correlation, DEM, optional alignment to MOLA and areoid
heights). Each stage has its builder, a function of the settings
(:class:`ctxdask.settings.Settings`, the one typed model; :func:`build_recipe`
takes it, or the configuration now, with keyword changes):

- :mod:`~ctxdask.tools.recipe.step`: the step template (keyword fields), its
  inputs (:class:`Upstream` outputs, :class:`External` files) and the
  :class:`StepCall` it renders to;
- :mod:`~ctxdask.tools.recipe.settings`: the settings a recipe reads (``tools.*``,
  ``quality.dem-alignment.*``, ``flat.dir``), the keyword changes, ``auto`` decided here;
- :mod:`~ctxdask.tools.recipe.image`: the image stage, ISIS or native calibration;
- :mod:`~ctxdask.tools.recipe.stereo`: the stereo stage's shape and shared parts; its
  forms :mod:`~ctxdask.tools.recipe.monolithic` (``parallel_stereo``) and
  :mod:`~ctxdask.tools.recipe.tiled` (``stereo_tile``);
- :mod:`~ctxdask.tools.recipe.bundle`: bundle adjustment before stereo, and the
  ``.adjust`` files every later step that takes cameras reads;
- :mod:`~ctxdask.tools.recipe.dem`: alignment to MOLA and areoid heights;
- :mod:`~ctxdask.tools.recipe.graph`: the dependency check made once per recipe;
- :mod:`~ctxdask.tools.recipe.chain`: :class:`Recipe`, which composes the
  stages and renders them for concrete product ids (:func:`build_recipe`).
"""

from __future__ import annotations

from ctxdask.product_id import check_product_id
from ctxdask.tools.recipe.chain import Recipe, build_recipe
from ctxdask.tools.recipe.image import NATIVE_QUALITY_OUTPUTS
from ctxdask.tools.recipe.step import External, Input, Ref, StagedInput, Step, StepCall, Upstream
from ctxdask.tools.recipe.tiled import LOWRES_DEM, TILED_PREP_STEPS

__all__ = [
    "LOWRES_DEM",
    "NATIVE_QUALITY_OUTPUTS",
    "External",
    "Input",
    "Ref",
    "Recipe",
    "Step",
    "StepCall",
    "StagedInput",
    "TILED_PREP_STEPS",
    "Upstream",
    "build_recipe",
    "check_product_id",
]
