"""The configuration matrix (test_matrix.py): the tiled pair chains with pc_align."""

from __future__ import annotations

import pytest

from .matrix import ENV, MATRIX, _asp_path, _id, _recipe, check_products, make_inputs, run_pair_chain

TILED_ALIGNED_CHAINS = [c for c in MATRIX if c["mode"] == "tiled" and c["pc_align"]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory)


# ----------------------------------------------------------------- the chains
@pytest.mark.timeout(600)
@pytest.mark.parametrize("c", TILED_ALIGNED_CHAINS, ids=_id)
def test_matrix_chain_delivers_the_right_products(inputs, c, monkeypatch):
    monkeypatch.setenv("PATH", _asp_path())
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    chain = run_pair_chain(_recipe(c, inputs), inputs, c["calibration"])
    check_products(chain, c)
