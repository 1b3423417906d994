"""Preview verdicts: held until a pass or warn given after the verdict releases the pair."""

from __future__ import annotations

import time

from ctxdask.batch.pairlist import read_pairs
from ctxdask.batch.planning import preview_hold
from ctxdask.tracking import BatchView, TrackingDB, grades

A, B, C = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W", "B10_013341_1010_XN_79S172W"
AB, AC = f"{A}-{B}", f"{A}-{C}"


def _db(tmp_path):
    path = tmp_path / "t.sqlite"
    with TrackingDB(path) as db:
        db.register(read_pairs([(A, B), (A, C)]).pairs, [A, B, C])
    return path


def test_a_held_pair_stays_held_until_a_later_pass_or_warn(tmp_path):
    path = _db(tmp_path)
    grades.add_grade(path, "pair", AB, "pass", "graded before its preview", who="ana")
    time.sleep(0.01)
    with TrackingDB(path) as db:
        db.record_preview(AB, "held", ["valid fraction 0.1 < 0.5"], {"valid_fraction": 0.1})
        db.record_preview(AC, "pass", [], {"valid_fraction": 0.97})
        # a grade older than the verdict does not release it
        assert db.held_previews() == {AB: "held after its preview: valid fraction 0.1 < 0.5"}
    grades.add_grade(path, "pair", AB, "fail", "no", who="bo")
    with TrackingDB(path, readonly=True) as db:
        assert AB in db.held_previews()
    grades.add_grade(path, "pair", AB, "warn", "a strip is enough", who="bo")
    with TrackingDB(path, readonly=True) as db:
        assert db.held_previews() == {}
    with BatchView(path) as view:
        shown = view.previews()
        assert shown[AB]["released"] == {"by": "bo", "at": shown[AB]["released"]["at"], "grade": "warn"}
        assert shown[AC] == {"verdict": "pass", "reasons": [], "metrics": {"valid_fraction": 0.97},
                             "at": shown[AC]["at"], "released": None}
        assert view.status_report()["held_previews"] == {}


def test_preview_hold_gives_the_measured_reason_and_asks_the_next_hook_for_the_rest(tmp_path):
    pairs = read_pairs([(A, B), (A, C)]).pairs
    hold = preview_hold({AB: "held after its preview: valid fraction 0.1 < 0.5"}, then=lambda pair: "next")
    assert hold(pairs[0]) == "held after its preview: valid fraction 0.1 < 0.5 (grade the pair pass or warn to " \
                             "release it)"
    assert hold(pairs[1]) == "next"
