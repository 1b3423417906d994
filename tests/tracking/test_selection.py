"""The selection language: parsing, whitelisted fields, parameters only, results on a real database."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from ctxdask.batch.pairlist import read_pairs
from ctxdask.tracking import TrackingDB, connect_reader, grades, selection
from ctxdask.tracking.geometry import import_scores
from ctxdask.tracking.selection import SelectionError, compile_images, compile_pairs, select_pairs

A, B, C = "B01_009855_2626_XN_82N094W", "B01_010106_2627_XN_82N094W", "B02_019894_1665_XI_13S042W"


def test_values_become_parameters_never_sql():
    q = compile_pairs("status = \"done' OR 1=1 --\" and convergence between 10 and 45.5 and left.orbit in (9855, 3)")
    assert "OR 1=1" not in q.sql and "--" not in q.sql
    assert q.params == ("done' OR 1=1 --", 10, 45.5, 9855, 3)
    assert q.sql.count("?") == len(q.params)


@pytest.mark.parametrize("text, message", [
    ("colour = red", "unknown pair field 'colour'"),
    ("status = ", "ends early"),
    ("status done", "expected a comparison"),
    ("(status = done", "ends early"),
    ("status = done)", "unexpected ')'"),
    ("snr > 1; DROP TABLE pairs", "cannot read ';"),
    ("middle.snr > 3", "unknown pair field"),
    ("images.status = done", "unknown pair field"),
    ("x" * 5000, "longer than"),
    ("status == skipped", "'==' after 'status': write '=' to compare"),
    ("statsu = done", "unknown pair field 'statsu' (did you mean status?)"),
    ("left.snrr > 3", "(did you mean left.snr?)"),
])
def test_bad_filters_are_explained(text, message):
    with pytest.raises(SelectionError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")) \
            as caught:
        compile_pairs(text)
    if "known:" in str(caught.value):  # every field once
        known = str(caught.value).split("known: ")[1].split(", ")
        assert len(known) == len(set(known)) and "status" in known


def test_image_fields_on_pairs_mean_both_any_or_one_side():
    both = compile_pairs("snr > 20")
    assert " AND " in both.sql and both.params == (20, 20)
    assert " OR " in compile_pairs("any.manual = fail").sql
    assert "ql.grade" in compile_pairs("left.grade = pass").sql and "qr.grade" not in compile_pairs("left.grade = "
                                                                                                     "pass").sql
    with pytest.raises(SelectionError):
        compile_images("overlap > 0.5")  # a pair field on images


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "t.sqlite"
    with TrackingDB(path) as t:
        t.register(read_pairs([(A, B), (A, C), (B, C)]).pairs, [A, B, C])
        t.set_subject("pairs", f"{A}-{B}", "done")
        t.set_subject("pairs", f"{A}-{C}", "failed", error="point2dem crashed")
        t.set_quality(A, grade="pass", reasons=[], metrics={"snr": 40.0}, thumbnail=None)
        t.set_quality(B, grade="warn", reasons=[], metrics={"snr": 12.0}, thumbnail=None)
        # AB's DEM is home, bundle-adjusted; BC's from before pair QA was recorded (no qa)
        t.set_pair_quality(f"{A}-{B}", statistics={"valid_fraction": 0.93}, stac=None, hillshade=None,
                           colour_relief=None, ortho_thumbnail=None,
                           qa={"grade": "pass", "after_alignment": {"median": 0.4, "nmad": 3.1},
                               "intersection_error": {"p50": 1.2},
                               "bundle_adjust": {"initial": {"mean_px": 2.5}, "final": {"mean_px": 0.3},
                                                 "improvement": 0.12}})
        t.set_pair_quality(f"{B}-{C}", statistics={"valid_fraction": 0.4}, stac=None, hillshade=None,
                           colour_relief=None, ortho_thumbnail=None)
        # BC ran by tile: tile 1 made by the first fallback set after a hedged duplicate won, tile 2 a hole
        from ctxdask.tools.tiling import Tile

        tiles = [Tile(i, 0, 100 * i, 100, 100, 0) for i in range(3)]
        t.register_tiles(f"{B}-{C}", tiles)
        row = t.start_tile_attempt(f"{B}-{C}", tiles[1], run_id=None, dask_key="k", worker="w")
        t.end_tile_attempt(row, "superseded")
        t.set_tile(f"{B}-{C}", 0, "done")
        t.set_tile(f"{B}-{C}", 1, "done", param_set=1, param_label="asp_sgm")
        t.set_tile(f"{B}-{C}", 2, "failed", error="every parameter set failed")
        # AC's preview correlated little: held
        t.record_preview(f"{A}-{C}", "held", ["valid fraction 0.1 < 0.5"],
                         {"valid_fraction": 0.1, "after_alignment": {"nmad": 40.0}, "intersection_error": {"p50": 9.0}})
        t.record_preview(f"{A}-{B}", "pass", [], {"valid_fraction": 0.9})
    scores = tmp_path / "pairs.csv"
    scores.write_text("left,right,score,iou,convergence,incidence_left,incidence_right,time_left,time_right,"
                      "footprint_left,footprint_right\n"
                      f"{A},{B},0.9,0.8,25,40,45,2008-10-01T00:00:00,2009-01-01T00:00:00,"
                      "1,1 2,1 2,2 1,2,1,1 2,1 2,2 1,2\n"
                      f"{A},{C},0.2,0.35,8,40,85,2008-10-01T00:00:00,2010-11-01T00:00:00,,\n"
                      f"{C},{A},0.1,0.1,1,1,1,,,,\n")  # not in the database: left out
    assert import_scores(path, scores) == (2, 3)
    grades.add_grade(path, "image", C, "fail", "clouds", who="ana")
    return path


@pytest.mark.parametrize("text, expected", [
    ("", ["AB", "AC", "BC"]),
    ("status = done", ["AB"]),
    ("status != done", ["AC", "BC"]),
    ("convergence between 15 and 45 and overlap >= 0.5", ["AB"]),
    ("snr > 20", []),
    ("left.snr > 20", ["AB", "AC"]),
    ("any.grade = warn", ["AB", "BC"]),
    ("manual != fail", ["AB", "AC", "BC"]),  # the pair's own manual grade: none yet, so "not fail"
    ("not any.manual = fail", ["AB"]),  # pairs with an image failed by hand are out
    ("any.manual = fail", ["AC", "BC"]),
    ("right.incidence < 80 and right.date < '2009-06-01'", ["AB"]),
    ("not status = done", ["AC", "BC"]),
    ("left.orbit = 9855 and (status = failed or status in (done))", ["AB", "AC"]),
    ("pair like '%019894%'", ["AC", "BC"]),
    ("overlap is null", ["BC"]),
    ("ba_final_px < 0.5 and ba_improvement < 0.5 and ba_initial_px > 2", ["AB"]),
    ("dem_valid_fraction < 0.5", ["BC"]),
    ("dem_grade = pass and mola_nmad < 5 and intersection_error <= 1.2", ["AB"]),
    ("dem_grade is null", ["AC", "BC"]),
    ("grade = warn", []),  # on pairs an image field names both images, as before
    ("tiles = 3 and fallback_tiles = 1 and tile_holes = 1 and hedged_tiles = 1", ["BC"]),
    ("fallback_tiles = 0", ["AB", "AC"]),
    ("preview = held and preview_valid_fraction < 0.5 and preview_mola_nmad > 20 "
     "and preview_intersection_error > 5", ["AC"]),
    ("preview = pass or preview is null", ["AB", "BC"]),
])
def test_selection_on_a_real_database(db, text, expected):
    names = {f"{A}-{B}": "AB", f"{A}-{C}": "AC", f"{B}-{C}": "BC"}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert [names[pid] for pid, _, _ in select_pairs(conn, text)] == expected


def test_queries_run_on_an_old_database_without_optional_tables(tmp_path):
    path = tmp_path / "old.sqlite"
    with TrackingDB(path) as t:
        t.register(read_pairs([(A, B)]).pairs, [A, B])
        # the layout of ctxdask 0.1 before a batch with QA or grading: no such tables, no version
        t.conn.executescript("DROP TABLE quality; DROP TABLE manual_grades; PRAGMA user_version = 0;")
    with contextlib.closing(connect_reader(path)) as conn:  # migrated on opening
        assert select_pairs(conn, "grade = pass or manual is null or convergence > 1") == [(f"{A}-{B}", A, B)]


def test_pair_list_text_is_read_back(tmp_path):
    rows = [(f"{A}-{B}", A, B)]
    listing = tmp_path / "s.txt"
    listing.write_text(selection.pair_list_text(rows, where="status = done\nand x", source="/out"))
    pairs = read_pairs(listing)
    assert [p.pair_id for p in pairs] == [f"{A}-{B}"] and not pairs.rejected
