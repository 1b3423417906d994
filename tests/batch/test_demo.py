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
    lossy = next(pid for pid, *_, defects in demo.SAMPLES if "lost_lines" in defects)
    assert grades[lossy][0] == "warn" and any("lost" in r for r in grades[lossy][1])
    # only the defects warn: summing-2 images pass too (no A/B dark offset taken for noise)
    assert [pid for pid, (grade, _) in grades.items() if grade != "pass"] == [lossy], grades
    # a credible sample: each pair is one site seen on two orbits, months apart
    import ctxdask

    times = {pid: ctxdask.open_edr(tmp_path / "demo" / "edr" / f"{pid}.IMG").attrs["START_TIME"] for pid in valid}
    for left, right in demo.PAIRS[:2]:
        assert left[-7:] == right[-7:] and times[left] != times[right]
    for pid, _, _, metrics, thumbnail in rows:
        assert json.loads(metrics)["product_id"] == pid
        assert (results / thumbnail).read_bytes()[:4] == b"\x89PNG"
    assert json.loads(rows[valid.index(lossy)][3])["lost_line_count"] == 16
    # one pass: the calibration step made them, there is no separate quality step
    assert query(db, "SELECT count(*) FROM steps WHERE step = 'quality'") == [(0,)]
    assert f"warn {lossy}" in text and "thumbnail" in text
