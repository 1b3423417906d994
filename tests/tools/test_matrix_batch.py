"""The configuration matrix (test_matrix.py): whole batches (``run_batch``) of a covering subset."""

from __future__ import annotations

import pytest
import rasterio

from .matrix import BATCHES, T_SRS, L, R, _id, _recipe, batch_cluster, run_pair_chain, write_mola_of


@pytest.fixture(scope="module")
def batch_client():
    with batch_cluster() as client:
        yield client


@pytest.mark.cluster
@pytest.mark.timeout(900)
@pytest.mark.parametrize("c", BATCHES, ids=_id)
def test_whole_batch_delivers_the_pair(inputs, batch_client, c, tmp_path):
    import dask

    from ctxdask.batch import run_batch

    mola = inputs["mola"]
    if c["pc_align"] and c["mode"] == "tiled":  # shots of the mosaic the tile stand-ins make for this pair
        chain = run_pair_chain(_recipe(dict(c, pc_align=False, dem_geoid=False), inputs), inputs, c["calibration"])
        mola = str(tmp_path / "mola.csv")
        write_mola_of(next(r.outputs["dem"] for k, r in chain["results"].items() if k.startswith("dem_mosaic-")),
                      mola)
    out = tmp_path / "out"
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{L} {R}\n")
    with dask.config.set({"ctxdask.tools.asp.mola-points": mola}):
        summary = run_batch(pairs, out, source=inputs["dir"], client=batch_client, recipe=_recipe(c, inputs),
                            settings={"batch.progress": False})
    folder = out / "pairs" / f"{L}-{R}"
    assert summary.pairs == {"done": 1}, sorted(p.name for p in out.rglob("*.failed"))
    dem = folder / f"{L}-{R}-DEM.tif"
    with rasterio.open(dem) as src, rasterio.open(folder / f"{L}-{R}-DRG.tif") as ortho:
        assert (ortho.crs, ortho.transform, ortho.shape) == (src.crs, src.transform, src.shape)
        if c["t_srs"]:
            assert src.crs == rasterio.crs.CRS.from_string(T_SRS)
    assert (folder / f"{L}-{R}-DEM-areoid.tif").is_file() == c["dem_geoid"]
    assert (folder / f"{L}-{R}-pc_align-end_errors.csv").is_file() == c["pc_align"]
