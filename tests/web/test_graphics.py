"""Thumbnail stretches and histogram bars."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ctxdask.web.graphics import STRETCHES, histogram_bars, stretch_png


def test_stretches_keep_shape_and_transparency(tmp_path):
    rng = np.random.default_rng(0)
    grey = (100 + 20 * rng.random((40, 60))).astype(np.uint8)  # a dull image: 100-120 DN
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[10:12] = 0  # lost lines
    path = tmp_path / "t.png"
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(path)
    for name in STRETCHES:
        out = np.asarray(Image.open(io.BytesIO(stretch_png(path, name))))
        assert out.shape == (40, 60, 2) and (out[10:12, :, 1] == 0).all()
    linear = np.asarray(Image.open(io.BytesIO(stretch_png(path, "linear"))))[..., 0]
    assert linear[alpha > 0].min() <= 5 and linear[alpha > 0].max() >= 250  # 2-98 % spread to the full range


def test_histogram_bars_log_scale():
    bars = histogram_bars([0, 1, 1000, 0], width=400, height=100)
    assert [b["dn"] for b in bars] == [1, 2]  # empty bins are left out
    assert bars[1]["h"] == 100 and 0 < bars[0]["h"] < 20
    assert histogram_bars(None) == [] and histogram_bars([]) == []
