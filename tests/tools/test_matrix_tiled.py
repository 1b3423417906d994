"""The configuration matrix (test_matrix.py): the tiled pair chains without pc_align."""

from __future__ import annotations

import pytest

from .matrix import MATRIX, _id, chain_delivers_the_right_products

TILED_CHAINS = [c for c in MATRIX if c["mode"] == "tiled" and not c["pc_align"]]


# ----------------------------------------------------------------- the chains
@pytest.mark.timeout(600)
@pytest.mark.parametrize("c", TILED_CHAINS, ids=_id)
def test_matrix_chain_delivers_the_right_products(inputs, c, monkeypatch):
    chain_delivers_the_right_products(inputs, c, monkeypatch)
