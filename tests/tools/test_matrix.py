"""The configuration matrix (issue 19 deliver 3), run through the recipe and the stand-ins.

Axes: calibration (native, isis) x stereo mode (monolithic, tiled) x pc_align x dem_geoid x
low-resolution DEM (projected, lon/lat) x ``tools.asp.t-srs`` (unset, set). Every chain runs
step by step here (:func:`ctxdask.tools.tasks.run_step` on each rendered call, tiles and mosaics
rendered by :mod:`ctxdask.tools.tiling` as the batch does) and must deliver the right products:
the delivered DEM (aligned when pc_align ran) on the grid of the DEM it was aligned from, the
orthoimage on the delivered DEM's grid and CRS, the areoid DEM where asked, in ``t-srs`` when set.

Combinations that are one pipeline are run once, and the tests below prove they are one:

- calibration only changes the image steps: the pair calls rendered for native and isis
  calibration are identical (:func:`test_calibration_does_not_change_the_pair_chain`), so
  the pair settings are crossed with the calibration of the cubes in alternation (every pair
  setting runs once, and both calibrations meet both stereo modes, pc_align and dem_geoid);
- the low-resolution DEM does not reach the monolithic chain
  (:func:`test_monolithic_chain_ignores_the_lowres_dem`), so monolithic runs 8 settings
  (``t-srs`` reaches its point2dem).

That leaves 8 monolithic + 16 tiled pair chains, sharing one work folder per test process:
steps whose command and inputs did not change are reused (``run_step``'s cache), as a rerun
of the batch would. Whole batches (``run_batch``) cover a subset (test_matrix_batch.py).

The chains are in three files: monolithic (here), tiled without and with pc_align
(test_matrix_tiled.py, test_matrix_tiled_align.py), so that pytest-xdist ``--dist loadfile``
spreads them over its workers; the shared parts are in matrix.py.
"""


from __future__ import annotations

import pytest

from .matrix import (
    MATRIX,
    MONOLITHIC,
    TILED,
    L,
    R,
    _id,
    _recipe,
    chain_delivers_the_right_products,
)

MONOLITHIC_CHAINS = [c for c in MATRIX if c["mode"] == "monolithic"]


# -------------------------------------------------------- one pipeline, proved
@pytest.mark.parametrize("c", MONOLITHIC + TILED, ids=lambda c: _id(dict(c, calibration="any")))
def test_calibration_does_not_change_the_pair_chain(c, tmp_path):
    inputs = {"dems": {"lonlat": str(tmp_path / "a.tif"), "projected": str(tmp_path / "b.tif")}}
    rendered = [[(x.key, x.argv, {k: (i.name, i.source) for k, i in x.inputs.items()})
                 for x in _recipe(dict(c, calibration=cal), inputs).pair_calls(
                     "/c/L.cub", "/c/R.cub", left_id=L, right_id=R, mola="/m.csv")]
                for cal in ("native", "isis")]
    assert rendered[0] == rendered[1]


def test_monolithic_chain_ignores_the_lowres_dem(tmp_path):
    inputs = {"dems": {"lonlat": "/d/a.tif", "projected": "/d/b.tif"}}
    for c in MONOLITHIC:
        c = dict(c, calibration="native", bundle_adjust=False)
        variants = {tuple((x.key, x.argv) for x in _recipe(dict(c, lowres=d), inputs).pair_calls(
            "/c/L.cub", "/c/R.cub", left_id=L, right_id=R, mola="/m.csv"))
            for d in (None, "lonlat", "projected")}
        assert len(variants) == 1


def test_monolithic_chain_of_adjusted_cameras_maps_onto_the_lowres_dem_when_there_is_one(tmp_path):
    """cam2map4stereo.py cannot use adjustments; mapproject can (docs/examples/ctx.rst:86-89)."""
    inputs = {"dems": {"lonlat": "/d/a.tif", "projected": "/d/b.tif"}}
    for c in MONOLITHIC:
        c = dict(c, calibration="native", bundle_adjust=True)
        steps = {d: [x.step for x in _recipe(dict(c, lowres=d), inputs).pair_calls(
            "/c/L.cub", "/c/R.cub", left_id=L, right_id=R, mola="/m.csv")] for d in (None, "lonlat", "projected")}
        assert steps[None][:2] == ["bundle_adjust", "parallel_stereo"]
        assert steps["lonlat"] == steps["projected"] == ["bundle_adjust", "mapproject_grid", "mapproject_left",
                                                         "mapproject_right", *steps[None][1:]]


# ----------------------------------------------------------------- the chains
@pytest.mark.timeout(600)
@pytest.mark.parametrize("c", MONOLITHIC_CHAINS, ids=_id)
def test_matrix_chain_delivers_the_right_products(inputs, c, monkeypatch):
    chain_delivers_the_right_products(inputs, c, monkeypatch)
