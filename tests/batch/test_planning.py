"""Planning: done, waiting, held, unplannable and planned pairs, from a real tracking database."""

from __future__ import annotations

from ctxdask.batch.pairlist import read_pairs
from ctxdask.batch.planning import Chain, manual_hold, plan_run, select_steps
from ctxdask.tools.recipe import build_recipe
from ctxdask.tracking import TrackingDB, grades

from .conftest import IDS

PAIRS = [(IDS[0], IDS[1]), (IDS[1], IDS[2]), (IDS[2], IDS[3]), (IDS[0], IDS[3])]


def _chain(steps=None) -> Chain:
    recipe = build_recipe()
    image, pair = select_steps(recipe, steps)
    return Chain(recipe, tuple(image), tuple(pair))


def _mark(db: TrackingDB, keys, status: str) -> None:
    with db.transaction():
        for key in keys:
            db.upsert_step(key, scope="image", subject="x", step=key.split("-")[0], status=status)


def test_pairs_are_sorted_and_the_hold_hook_holds_back(tmp_path):
    pairs = read_pairs(PAIRS)
    chain = _chain(["validate"])
    with TrackingDB(tmp_path / "t.sqlite") as db:
        db.register(pairs.pairs, pairs.images)
        _mark(db, [k for pid in IDS[:2] for k in chain.image_keys(pid, None)], "done")
        _mark(db, [f"validate-{IDS[2]}"], "failed")
        held = {pairs.pairs[3].pair_id: "graded fail by hand: smear"}
        plan = plan_run(db, pairs, chain, hold=lambda pair: held.get(pair.pair_id))
        assert plan.already_done == 1 and plan.waiting == 2 and plan.planned == []
        assert [(r.line, r.text, r.reason) for r in plan.held] == [(4, pairs.pairs[3].pair_id, held[pairs.pairs[3].pair_id])]
        assert f"fetch-{IDS[0]}" in plan.done_keys and f"validate-{IDS[2]}" not in plan.done_keys
        again = plan_run(db, pairs, chain, retry_failed=True)
        assert [p.line for p in again.planned] == [2, 3, 4] and not again.held


def test_a_pair_planning_fails_on_is_failed_alone(tmp_path):
    pairs = read_pairs(PAIRS[:2])
    chain = _chain()

    def hold(pair):
        if pair.line == 1:
            raise RuntimeError("the grades table is unreadable")
        return None

    with TrackingDB(tmp_path / "t.sqlite") as db:
        db.register(pairs.pairs, pairs.images)
        plan = plan_run(db, pairs, chain, hold=hold)
        assert [p.line for p in plan.planned] == [2]
        assert [r.line for r in plan.unplannable] == [1] and "unreadable" in plan.unplannable[0].reason
        (status, error), = db.conn.execute("SELECT status, error FROM pairs WHERE pair_id = ?",
                                           (pairs.pairs[0].pair_id,)).fetchall()
        assert status == "failed" and "cannot be planned: RuntimeError" in error


def test_manual_hold_holds_pairs_failed_by_hand_or_with_an_image_failed(tmp_path):
    a, b, c = IDS[:3]
    pairs = read_pairs([(a, b), (a, c), (b, c)]).pairs
    path = tmp_path / "t.sqlite"
    with TrackingDB(path) as db:
        db.register(pairs, [a, b, c])
    grades.add_grade(path, "image", c, "fail", "clouds", who="ana")
    grades.add_grade(path, "pair", f"{a}-{b}", "fail", "bad overlap", who="bo")
    grades.add_grade(path, "pair", f"{a}-{b}", "pass", "overlap fine after all", who="bo")
    with TrackingDB(path, readonly=True) as db:
        hold = manual_hold(db.manually_rejected(), then=lambda pair: "other hook" if pair.left == a else None)
    reasons = [hold(p) for p in pairs]
    assert reasons[0] == "other hook"  # its latest manual grade is pass: the next hook decides
    assert reasons[1].startswith(f"image {c} manually graded fail by ana") and "clouds" in reasons[1]
    assert "--include-rejected" in reasons[2]
