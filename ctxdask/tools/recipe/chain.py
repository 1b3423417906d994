"""The CTX chain for given settings: the stages composed, checked once, and rendered per image and pair.

A :class:`Recipe` is two tuples of :class:`~ctxdask.tools.recipe.step.Step`:
the image steps, run once per image (:mod:`~ctxdask.tools.recipe.image`), and
the pair steps, run once per stereo pair (:mod:`~ctxdask.tools.recipe.stereo`
or :mod:`~ctxdask.tools.recipe.tiled`, then :mod:`~ctxdask.tools.recipe.dem`).
Nothing here runs anything: :meth:`Recipe.image_calls` and
:meth:`Recipe.pair_calls` render the templates for concrete product ids into
:class:`~ctxdask.tools.recipe.step.StepCall` objects, which
:func:`ctxdask.tools.tasks.run_step` executes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ctxdask.product_id import check_product_id
from ctxdask.settings import Settings, current
from ctxdask.tools.recipe.bundle import bundle_adjust_step
from ctxdask.tools.recipe.dem import alignment_steps, areoid_step
from ctxdask.tools.recipe.graph import check_graph
from ctxdask.tools.recipe.image import image_stage
from ctxdask.tools.recipe.monolithic import monolithic_stage
from ctxdask.tools.recipe.preview import enabled as preview_enabled
from ctxdask.tools.recipe.preview import preview_steps, seed_step
from ctxdask.tools.recipe.settings import resolved, with_changes
from ctxdask.tools.recipe.step import Ref, Step, StepCall, Upstream, resolve_sources
from ctxdask.tools.recipe.stereo import StereoStage, stereo_options
from ctxdask.tools.recipe.tiled import tiled_stage

__all__ = ["IMAGE_EXTERNAL", "PAIR_EXTERNAL", "Recipe", "build_recipe", "pair_stages"]

#: the files the caller gives: to image_calls, and to pair_calls (tile_call gives the same but mola)
IMAGE_EXTERNAL = ("edr",)
PAIR_EXTERNAL = ("left", "right", "mola", "lowres_dem")


def pair_stages(s: Settings) -> tuple[StereoStage, tuple[Step, ...]]:
    """The stereo stage for ``tools.asp.stereo-mode``, and the pair steps: [the preview pass,] [bundle
    adjustment,] stereo, alignment, areoid."""
    asp = s.tools.asp
    stereo = tiled_stage(s) if asp.stereo_mode == "tiled" else monolithic_stage(s)
    steps, dem = list(stereo.steps), stereo.dem
    if asp.bundle_adjust is True:
        steps.insert(0, bundle_adjust_step(s))
    if preview_enabled(s):  # first: a pair held after it spends nothing more
        seed = seed_step(s)  # the full pass's first step (a held pair never fills its preview DEM)
        steps[:0] = (*preview_steps(s, stereo_options(s)[1]), *((seed,) if seed else ()))
    if asp.pc_align:
        aligned, dem = alignment_steps(s, stereo)
        steps += aligned
    if asp.dem_geoid:
        steps.append(areoid_step(s, dem))
    return stereo, tuple(steps)


class Recipe:
    """The CTX chain for given settings.

    Parameters
    ----------
    settings : ctxdask.settings.Settings
        The settings it reads (:data:`~ctxdask.tools.recipe.settings.RECIPE_SETTINGS`).

    Attributes
    ----------
    settings : ctxdask.settings.Settings
        The settings given, :func:`~ctxdask.tools.recipe.settings.resolved` here.
    image_steps, pair_steps : tuple of Step
        The chain, in order.
    tile_step : Step or None
        Tiled mode: the per-tile template (rendered by :mod:`ctxdask.tools.tiling`).
    mosaic_steps : tuple of Step
        Tiled mode: the mosaics of the tiles' outputs.

    Raises
    ------
    RecipeError
        When a step reads an output no step of its scope produces, or steps wait on each other.
    """

    def __init__(self, settings: Settings):
        self.settings = settings = resolved(settings)  # stereo-mode auto: what is installed decides
        self.image_steps: tuple[Step, ...] = image_stage(settings)
        stereo, self.pair_steps = pair_stages(settings)
        self.tile_step: Step | None = stereo.tile
        self.mosaic_steps: tuple[Step, ...] = stereo.mosaics
        check_graph(self.image_steps, scope="image", external=IMAGE_EXTERNAL)
        tiled = (self.tile_step,) if self.tile_step is not None else ()
        # a mosaic reads its role from every tile; tiling.mosaic_calls adds those inputs per pair
        mosaic_reads = {m.name: [Upstream(self.tile_step.name, role) for role in m.outputs]
                        for m in self.mosaic_steps}
        check_graph((*self.pair_steps, *tiled, *self.mosaic_steps), scope="pair", external=PAIR_EXTERNAL,
                    extra=mosaic_reads)

    # ------------------------------------------------------------------ queries
    @property
    def steps(self) -> tuple[Step, ...]:
        """All steps, image steps first."""
        return self.image_steps + self.pair_steps

    def programs(self) -> dict[str, list[str]]:
        """Executable -> names of the steps that run it (native steps need ``python``)."""
        out: dict[str, list[str]] = {}
        for step in self.steps:
            out.setdefault(step.program or "python", []).append(step.name)
        return out

    def __repr__(self) -> str:
        names = " -> ".join(s.name for s in self.image_steps)
        pairs = " -> ".join(s.name for s in self.pair_steps)
        return f"<Recipe image: {names} | pair: {pairs}>"

    # ---------------------------------------------------------------- rendering
    def image_calls(self, product_id: str, edr: str, *, summing: int | None = None) -> list[StepCall]:
        """Render the image steps for one EDR.

        Parameters
        ----------
        product_id : str
            The product id (validated by :func:`check_product_id`).
        edr : str
            Path of the EDR on the worker.
        summing : int, optional
            SAMPLING_FACTOR of the image. Summing-2 images skip the even/odd
            correction, which ISIS defines for summing 1 only.
        """
        names, tools = {"id": check_product_id(product_id)}, self.settings.tools
        skip_evenodd = summing == 2 or not tools.even_odd
        keys = {step.name: step.key_for(names) for step in self.image_steps}
        calls: list[StepCall] = []
        for step in self.image_steps:
            if step.name == "ctxevenodd" and skip_evenodd:
                continue
            if step.kind == "native" and skip_evenodd:
                step = dataclasses.replace(step, options={**step.options, "even_odd": False})
            calls.append(step.render(names, resolve_sources(step, keys, {"edr": edr}), env=tools.env))
        return calls

    def pair_calls(
        self,
        left: StepCall | str,
        right: StepCall | str,
        *,
        left_id: str | None = None,
        right_id: str | None = None,
        mola: str | None = None,
        lowres_dem: str | None = None,
    ) -> list[StepCall]:
        """Render the pair steps.

        Parameters
        ----------
        left, right : StepCall or str
            The last image call of each image (its ``cube`` output is used), or a
            path to an existing level-1, spiceinit-ed cube.
        left_id, right_id : str, optional
            Product ids; taken from the image calls when those are given.
        mola : str, optional
            MOLA point file (CSV) for ``pc_align``; required when it is enabled.
        lowres_dem : str, optional
            Tiled mode: the low-resolution DEM to mapproject onto (default:
            setting ``tools.asp.lowres-dem``). The tile and mosaic steps are
            rendered by :mod:`ctxdask.tools.tiling`; steps after the mosaic
            refer to it by its deterministic key.
        """
        lid, lsrc = _side(left, left_id, "left")
        rid, rsrc = _side(right, right_id, "right")
        names = {"left": check_product_id(lid), "right": check_product_id(rid), "pair": f"{lid}-{rid}"}
        tools = self.settings.tools
        if tools.asp.pc_align and not mola:
            raise ValueError("pc_align is enabled (tools.asp.pc-align) but no MOLA point file was given")
        lowres_dem = lowres_dem or tools.asp.lowres_dem
        if (self.tile_step is not None or preview_enabled(self.settings)) and not lowres_dem:
            raise ValueError("tiled stereo and the preview pass need a low-resolution DEM to mapproject onto (MOLA "
                             "MEGDR or the MOLA/HRSC blend, ellipsoid heights): set tools.asp.lowres-dem")
        if tools.asp.bundle_adjust is True and tools.asp.heights_from_dem and not lowres_dem:
            raise ValueError("tools.asp.heights-from-dem constrains bundle adjustment to the low-resolution DEM: "
                             "set tools.asp.lowres-dem")
        keys = self.pair_keys(names)
        external = {"left": lsrc, "right": rsrc, "mola": mola, "lowres_dem": lowres_dem}
        return [step.render(names, resolve_sources(step, keys, external), env=tools.env)
                for step in self.pair_steps]

    def pair_keys(self, names: Mapping[str, str]) -> dict[str, str]:
        """Step name -> task key of every pair-scope step but the tiles (the mosaics' keys are fixed too)."""
        return {step.name: step.key_for(names) for step in (*self.pair_steps, *self.mosaic_steps)}


def _side(value: StepCall | str, product_id: str | None, which: str) -> tuple[str, str | Ref]:
    """(product id, cube source) of one side of a pair: an image chain's last call, or a cube path."""
    if isinstance(value, StepCall):
        return (product_id or value.names["id"]), Ref(value.key, "cube")
    if product_id is None:
        raise ValueError(f"{which}_id is needed when {which} is a path")
    return product_id, value


def build_recipe(settings: Settings | None = None, /, **changes: Any) -> Recipe:
    """Build the CTX recipe from ``settings`` (default: the configuration now) with ``changes``.

    Parameters
    ----------
    settings : ctxdask.settings.Settings, optional
        Default :func:`ctxdask.settings.current`.
    **changes
        Each the field name of one setting the recipe reads (``calibration``,
        ``stereo_mode``, ``lowres_dem``, ``timeouts``, ...; see
        :func:`~ctxdask.tools.recipe.settings.with_changes`). A mapping is merged
        into the configured one.

    Raises
    ------
    TypeError
        A change that names no setting the recipe reads, or several.
    ctxdask.settings.SettingsError
        A change to a value its setting may not have.
    RecipeError
        A recipe whose steps do not fit together (a step without a deadline).

    Examples
    --------
    >>> recipe = build_recipe(timeouts={"parallel_stereo": 3600}, calibration="native")
    >>> [s.name for s in recipe.image_steps]
    ['calibrate', 'spiceinit']
    """
    return Recipe(with_changes(current() if settings is None else settings, changes))
