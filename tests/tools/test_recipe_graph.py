"""The recipe's dependency check (ctxdask.tools.recipe.graph): run once per recipe, one-line typed errors."""

from __future__ import annotations

import pytest

from ctxdask.exceptions import CTXError, RecipeError
from ctxdask.settings import Settings
from ctxdask.tools.recipe import External, Input, Recipe, Step, Upstream
from ctxdask.tools.recipe import chain as recipe_chain
from ctxdask.tools.recipe.graph import check_graph


def step(name: str, reads: dict[str, Upstream | External] | None = None, makes=("out",)) -> Step:
    return Step(name=name, program=name, inputs={role: Input(f"{role}.tif", src) for role, src in (reads or {}).items()},
                outputs={role: f"{name}-{role}.tif" for role in makes}, timeout=1, scope="pair")


def refused(steps, **kwargs) -> str:
    with pytest.raises(RecipeError) as info:
        check_graph(steps, scope="pair", external=kwargs.pop("external", ("left",)), **kwargs)
    message = str(info.value)
    assert isinstance(info.value, CTXError) and isinstance(info.value, ValueError)
    assert "\n" not in message
    return message


def test_a_chain_whose_inputs_are_all_made_upstream_passes_in_any_order():
    steps = [step("c", {"x": Upstream("b", "out")}), step("a", {"img": External("left")}, makes=("out", "extra")),
             step("b", {"x": Upstream("a", "out"), "y": Upstream("a", "extra")})]
    check_graph(steps, scope="pair", external=("left",))


def test_an_input_no_step_produces_names_the_step_and_the_input():
    message = refused([step("a"), step("b", {"cloud": Upstream("stereo", "pc")})])
    assert message == "recipe step 'b': input 'cloud' reads 'stereo:pc', which no pair step produces"
    # the producer exists but does not make that role
    assert "input 'dem' reads 'a:dem'" in refused([step("a"), step("b", {"dem": Upstream("a", "dem")})])


def test_an_external_file_the_scope_is_not_given_is_refused():
    message = refused([step("a", {"points": External("mola")})], external=("edr",))
    assert message == "recipe step 'a': input 'points' reads 'mola', which is not given to the pair steps (edr)"


def test_a_cycle_is_refused_with_its_steps():
    steps = [step("a", {"x": External("left")}), step("b", {"x": Upstream("a", "out"), "y": Upstream("d", "out")}),
             step("c", {"x": Upstream("b", "out")}), step("d", {"x": Upstream("c", "out")})]
    assert refused(steps) == "recipe steps wait on each other: b -> d -> c -> b (pair steps)"
    assert refused([step("a", {"x": Upstream("a", "out")})]) == "recipe steps wait on each other: a -> a (pair steps)"


def test_a_step_name_used_twice_is_refused():
    assert "'a' is defined twice" in refused([step("a"), step("b"), step("a")])


def test_inputs_given_at_render_time_are_checked_too():
    tile = step("stereo_tile", makes=("dem",))
    mosaics = [step("dem_mosaic", makes=("dem",)), step("dem_mosaic_ortho", makes=("ortho",))]
    extra = {m.name: [Upstream("stereo_tile", role) for role in m.outputs] for m in mosaics}
    check_graph([tile, mosaics[0]], scope="pair", external=(), extra=extra)
    assert "'dem_mosaic_ortho': input '<ortho of each stereo_tile>' reads 'stereo_tile:ortho'" in refused(
        [tile, *mosaics], extra=extra)


def test_the_recipe_is_checked_when_built(monkeypatch):
    settings = Settings().override({"tools.asp.dem-geoid": True, "tools.asp.pc-align": True,
                                    "tools.asp.stereo-mode": "tiled"})
    Recipe(settings)
    wrong = step("dem_geoid", {"dem": Upstream("point2dem", "dem")})  # tiled: no point2dem, the mosaic is the DEM
    monkeypatch.setattr(recipe_chain, "areoid_step", lambda s, dem: wrong)
    with pytest.raises(RecipeError, match="^recipe step 'dem_geoid': input 'dem' reads 'point2dem:dem', which no pair"):
        Recipe(settings)
