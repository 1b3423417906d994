"""``ctxdask demo``: the batch on generated samples, with quality assessed in the calibration pass."""

from __future__ import annotations

import argparse
import json

import pytest

from ctxdask.commands import demo

from .conftest import query

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


def test_demo_grades_every_valid_image_with_metrics_and_thumbnail(tmp_path, capsys):
    assert demo.run(argparse.Namespace(out=str(tmp_path / "demo"), workers=2)) == 0
    text = capsys.readouterr().out
    results = tmp_path / "demo" / "results"
    db = results / "ctxdask-batch.sqlite"
    valid = sorted(pid for pid, *_ in demo.SAMPLES)
    rows = query(db, "SELECT product_id, grade, reasons, metrics, thumbnail FROM quality ORDER BY product_id")
    assert [r[0] for r in rows] == valid  # the truncated EDR failed validation: nothing to grade
    grades = {pid: (grade, json.loads(reasons)) for pid, grade, reasons, _, _ in rows}
    # 16 lost lines of 1024 (1.6 %): a warning (fail above 5 %); the wrong checksum is no pixel metric
    lossy = "D10_031011_1864_XI_06N201W"
    assert grades[lossy][0] == "warn" and any("lost" in r for r in grades[lossy][1])
    for pid, _, _, metrics, thumbnail in rows:
        assert json.loads(metrics)["product_id"] == pid
        assert (results / thumbnail).read_bytes()[:4] == b"\x89PNG"
    assert json.loads(rows[valid.index(lossy)][3])["lost_line_count"] == 16
    # one pass: the calibration step made them, there is no separate quality step
    assert query(db, "SELECT count(*) FROM steps WHERE step = 'quality'") == [(0,)]
    assert f"warn {lossy}" in text and "thumbnail" in text
