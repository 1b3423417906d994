"""The status vocabulary: what each status means, in one place."""

from __future__ import annotations

import itertools

import pytest

from ctxdask.tracking import Grade, Status


def test_final_problem_and_in_flight():
    assert {s for s in Status if s.final} == {"done", "failed", "timeout"}
    assert {s for s in Status if s.problem} == {"failed", "timeout", "interrupted"}
    assert {s for s in Status if s.in_flight} == {"pending", "running"}
    assert {s for s in Status if s.ended} == {"done", "failed", "timeout", "skipped"}


def test_display_order_puts_problems_first_and_done_last():
    assert sorted(Status, key=lambda s: s.rank) == ["failed", "timeout", "interrupted", "running", "pending",
                                                    "skipped", "done"]
    assert Status.rank_of("done") == Status.DONE.rank
    assert Status.rank_of("no such status") == Status.rank_of(None) == len(Status)
    assert sorted(["pass", None, "fail", "warn"], key=Grade.rank_of) == ["fail", "warn", "pass", None]


@pytest.mark.parametrize("statuses, expected", [
    ((), "done"), (("done", "done"), "done"), (("done", "pending"), "pending"), (("running", "pending"), "running"),
    (("skipped", "running"), "skipped"), (("interrupted", "skipped"), "interrupted"),
    (("timeout", "interrupted"), "timeout"), (("failed", "timeout", "done"), "failed")])
def test_a_subject_takes_the_status_of_its_worst_step(statuses, expected):
    for order in itertools.permutations(statuses):
        assert Status.aggregate(order) == expected


def test_statuses_are_their_text():
    assert Status.FAILED == "failed" and f"{Status.TIMEOUT}" == "timeout" and Status("done") is Status.DONE
    with pytest.raises(ValueError):
        Status("finished")
