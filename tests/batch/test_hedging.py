"""Straggler hedging's bookkeeping: which running tile attempts are due a duplicate (no cluster)."""

from __future__ import annotations

import types

from ctxdask.batch.hedging import Hedger, free_workers


def test_an_attempt_is_due_past_factor_times_the_median_and_the_floor():
    h = Hedger(factor=3.0, floor=10.0)
    h.started("a", "p", 0, since=0.0, worker="w1")
    h.started("b", "p", 1, since=0.0, worker="w2")
    h.started("c", "q", 0, since=0.0, worker="w2")
    assert h.due(1000.0) == []  # no finished tile of the pair yet: no median to compare with
    for key, seconds in (("x", 2.0), ("y", 6.0), ("z", 4.0)):
        h.started(key, "p", 9, since=0.0, worker="w1")
        h.ended(key, seconds)
    assert h.median("p") == 4.0 and h.median("q") is None
    assert h.due(12.0) == []  # 3 x 4 s = 12 s: not past it
    assert h.due(12.5) == ["a", "b"]
    h.hedged.add(("p", 0))  # one duplicate per tile
    assert h.due(12.5) == ["b"]
    h.ended("b")  # stopped or failed: no duration counted
    assert h.median("p") == 4.0 and h.due(100.0) == []
    h.done_tile("p", 0)
    assert h.due(100.0) == ["a"]
    floor = Hedger(factor=3.0, floor=60.0)
    floor.durations["p"] = [1.0]
    floor.started("a", "p", 0, since=0.0, worker="w1")
    assert floor.due(59.0) == [] and floor.due(61.0) == ["a"]


def test_hedging_is_off_with_a_factor_of_zero_or_none():
    for factor in (0, None):
        h = Hedger(factor=factor, floor=0.0)
        h.durations["p"] = [1.0]
        h.started("a", "p", 0, since=0.0, worker="w1")
        assert not h.enabled and h.due(1e6) == []


def test_free_workers_counts_the_slots_the_scheduler_has_given_out(monkeypatch):
    import ctxdask.daskcompat as compat

    workers = {"w1": {"resources": {"stereo": 1}, "nthreads": 2}, "w2": {"resources": {"stereo": 1}, "nthreads": 2},
               "w3": {"resources": {"stereo": 2}, "nthreads": 2}, "w4": {"resources": {}, "nthreads": 2}}
    monkeypatch.setattr(compat, "live_workers", lambda client: workers)
    client = types.SimpleNamespace(processing=lambda: {"w1": ["tile-a"], "w2": ["clean"], "w3": ["tile-b"]})
    used = {"tile-a": {"stereo": 1}, "tile-b": {"stereo": 1}}.get
    assert free_workers(client, {"stereo": 1}, used) == ["w2", "w3"]
    assert free_workers(client, {"stereo": 1}, used, exclude={"w2"}) == ["w3"]
