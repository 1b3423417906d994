"""Bundle adjustment in a batch: the step runs before stereo, its residuals reach qa_metrics.json and provenance."""

from __future__ import annotations

import json

import dask
import pytest

from ctxdask.batch import run_batch
from ctxdask.tools.recipe import build_recipe

from .conftest import IDS, make_images, query, standin_path, two_host_client, write_pairs

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

PAIR = (IDS[0], IDS[1])
PID = f"{PAIR[0]}-{PAIR[1]}"


def test_residuals_land_in_the_pair_s_qa_and_provenance(tmp_path, cluster_client):
    edr = make_images(tmp_path / "edr", PAIR)
    pairs = write_pairs(tmp_path / "pairs.txt", [PAIR])
    calls = tmp_path / "calls.jsonl"
    # the stand-ins are on PATH (cluster_client): bundle-adjust auto means on
    recipe = build_recipe(env={"CTXDASK_STANDIN_CALLS": str(calls)})
    assert [s.name for s in recipe.pair_steps] == ["bundle_adjust", "parallel_stereo", "point2dem"]
    summary = run_batch(pairs, tmp_path / "out", source=edr, client=cluster_client, recipe=recipe,
                        settings={"batch.progress": False})
    assert summary.ok and summary.pairs == {"done": 1}, summary
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    assert dict(query(db, "SELECT step, status FROM steps WHERE subject = ?", (PID,))) == {
        s: "done" for s in ("bundle_adjust", "parallel_stereo", "point2dem", "pair_quality")}
    ran = {c["program"]: c for c in map(json.loads, calls.read_text().splitlines())}
    # parallel_stereo ran in its own work dir with the adjustments staged there under ba/run-<cube>.adjust
    stereo = ran["parallel_stereo"]["argv"]
    assert stereo[stereo.index("--bundle-adjust-prefix") + 1] == "ba/run"
    assert ran["bundle_adjust"]["cwd"] != ran["parallel_stereo"]["cwd"]

    folder = tmp_path / "out" / "pairs" / PID
    qa = json.loads((folder / "qa_metrics.json").read_text())["bundle_adjust"]
    assert [c["image"] for c in qa["final"]["cameras"]] == [f"{p}.cal.cub" for p in PAIR]
    assert qa["final"]["mean_px"] < 1.0 < qa["initial"]["mean_px"] and 0 < qa["improvement"] < 1
    assert 12 < qa["final"]["cameras"][0]["count"] <= qa["initial"]["cameras"][0]["count"]
    assert qa["final"]["pointmap"]["points"] == qa["final"]["cameras"][0]["count"]
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["bundle_adjust"] == qa
    assert any(s["step"] == "bundle_adjust" and s["argv"][-2:] == ["-o", "ba/run"] for s in provenance["steps"])


def test_the_adjustments_reach_stereo_on_another_host(tmp_path):
    """bundle_adjust on host a, parallel_stereo on host b: b pulls the .adjust files and rebuilds ba/run there."""
    edr = make_images(tmp_path / "edr", PAIR)
    pairs = write_pairs(tmp_path / "pairs.txt", [PAIR])
    calls = tmp_path / "calls.jsonl"
    recipe = build_recipe(bundle_adjust=True, env={"CTXDASK_STANDIN_CALLS": str(calls)},
                          resources={"bundle_adjust": {"ba": 1}, "parallel_stereo": {"stereo": 1}})
    with two_host_client(tmp_path, standin_path(), ({"ba": 1}, {"stereo": 1})) as client, \
            dask.config.set({"ctxdask.batch.cleanup-scratch": False}):
        summary = run_batch(pairs, tmp_path / "out", source=edr, client=client, recipe=recipe,
                            settings={"batch.progress": False})
        staged = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("staged/bundle_adjust-*/ba/*"))
    assert summary.ok, summary
    ran = {c["program"]: c for c in map(json.loads, calls.read_text().splitlines())}
    assert ran["bundle_adjust"]["cwd"].startswith(str(tmp_path / "a"))
    assert ran["parallel_stereo"]["cwd"].startswith(str(tmp_path / "b"))
    # each output b reads was pulled into its scratch (with its stamp); the stereo work dir links them as ba/run-*
    names = {p.name for p in staged}
    assert {f"run-{pid}.cal.adjust" for pid in PAIR} <= names
    assert {f"run-{pid}.cal.adjust.staged.json" for pid in PAIR} <= names
