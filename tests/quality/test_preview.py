"""The preview's triage rule and verdict file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from ctxdask.quality.preview import HELD, PASS, preview_verdict, summary, triage

LIMITS = {"min_valid_fraction": 0.5, "max_mola_nmad": 20.0, "max_mola_median_abs": 30.0,
          "max_intersection_error": 5.0}


def test_each_threshold_gives_its_measured_reason():
    metrics = {"valid_fraction": 0.12, "after_alignment": {"nmad": 45.0, "median": -80.0},
               "intersection_error": {"p50": 12.5}}
    assert triage(metrics, LIMITS) == ["valid fraction 0.12 < 0.5", "NMAD of CTX - MOLA (m) 45 > 20",
                                       "|median| of CTX - MOLA (m) 80 > 30", "median intersection error (m) 12.5 > 5"]


def test_a_good_preview_passes_and_null_thresholds_are_not_checked():
    good = {"valid_fraction": 0.95, "after_alignment": {"nmad": 4.0, "median": 2.0}, "intersection_error": {"p50": 1.0}}
    assert triage(good, LIMITS) == []
    assert triage({"valid_fraction": 0.01}, dict.fromkeys(LIMITS)) == []


def test_a_metric_nobody_measured_fails_its_threshold():
    assert triage({"valid_fraction": 0.9}, {"max_mola_nmad": 20.0}) == ["NMAD of CTX - MOLA (m) not measured "
                                                                         "(threshold 20)"]


def test_the_summary_says_why():
    assert summary({"verdict": HELD, "reasons": ["valid fraction 0.12 < 0.5"]}) == \
        "held after its preview: valid fraction 0.12 < 0.5"
    assert summary({"verdict": PASS, "reasons": []}) == "passed its preview"


@pytest.mark.parametrize("valid_rows, verdict", [(20, PASS), (3, HELD)])
def test_the_verdict_file(tmp_path, valid_rows, verdict):
    dem = tmp_path / "out-DEM.tif"
    heights = np.full((20, 20), np.nan, np.float32)
    heights[:valid_rows] = -1500.0
    with rasterio.open(dem, "w", driver="GTiff", width=20, height=20, count=1, dtype="float32", nodata=np.nan,
                       crs="+proj=eqc +R=3396190 +units=m +no_defs", transform=from_origin(0, 0, 100, 100)) as dst:
        dst.write(heights[None])
    out = tmp_path / "verdict.json"
    record = preview_verdict(str(dem), str(out), thresholds={"min_valid_fraction": 0.5, "max_mola_nmad": None})
    assert json.loads(out.read_text()) == record
    assert record["verdict"] == verdict and record["metrics"]["valid_fraction"] == pytest.approx(valid_rows / 20)
    assert record["thresholds"] == {"min_valid_fraction": 0.5}
