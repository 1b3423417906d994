"""Pair-finder scores into the tracking database: footprints, angles, unknown pairs left out."""

from __future__ import annotations

import sqlite3

import pytest

from ctxdask.batch.pairlist import read_pairs
from ctxdask.tracking import TrackingDB
from ctxdask.tracking.geometry import default_scores, import_scores, parse_footprint

A, B = "B01_009855_2626_XN_82N094W", "B01_010106_2627_XN_82N094W"


def test_parse_footprint():
    assert parse_footprint("1,2 3,2 3,4") == [(1.0, 2.0), (3.0, 2.0), (3.0, 4.0)]
    for bad in (None, "", "1,2 3,4", "1,2 3,x 5,6", "1,2 3,95 5,6", "nan,1 2,2 3,3"):
        assert parse_footprint(bad) == []


def test_import_and_default_location(tmp_path):
    db = tmp_path / "t.sqlite"
    listing = tmp_path / "pairs.txt"
    listing.write_text(f"{A} {B}\n")
    with TrackingDB(db) as t:
        t.register(read_pairs(listing).pairs, [A, B])
        t.start_run(pairs_file=str(listing), out=str(tmp_path))
    assert default_scores(db) is None
    scores = tmp_path / "pairs.csv"
    scores.write_text("left,right,score,iou,convergence,incidence_left,emission_right,time_left,footprint_left\n"
                      f'{A},{B},0.5,0.7,22.5,40,nan,2008-07-01T00:00:00,"-94,82 -93,82 -93,83 -94,83"\n')
    assert default_scores(db) == scores
    assert import_scores(db, scores) == (1, 2)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT iou, convergence FROM pair_geometry").fetchone() == (0.7, 22.5)
        row = conn.execute("SELECT orbit, incidence, time, center_lat, center_lon, footprint FROM image_geometry "
                           "WHERE product_id = ?", (A,)).fetchone()
        assert row == (9855, 40.0, "2008-07-01T00:00:00", 82.5, -93.5, "-94.0,82.0 -93.0,82.0 -93.0,83.0 -94.0,83.0")
        assert conn.execute("SELECT emission, footprint FROM image_geometry WHERE product_id = ?", (B,)).fetchone() \
            == (None, None)  # NaN and missing stay unknown


def test_not_a_scores_file(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a pair-finder scores CSV"):
        import_scores(tmp_path / "t.sqlite", bad)
