"""Provenance records: runs from step manifests, completion from the tracking database."""

from __future__ import annotations

import json

from ctxdask.quality.provenance import build_provenance, complete_provenance, processing_properties, step_records
from ctxdask.tools.tasks import MANIFEST


def test_manifests_nested_runs_and_completion(tmp_path):
    step = tmp_path / "pc_align-L-R"
    (step / "results").mkdir(parents=True)
    (step / MANIFEST).write_text(json.dumps({
        "key": "pc_align-L-R", "step": "pc_align", "program": "ctxdask.tools.align:align_to_mola",
        "argv": ["/py", "-m", "ctxdask.tools.native"], "log": "pc_align.log", "returncode": 0,
        "duration": 2.5, "started": "2026-01-01T00:00:00+00:00", "host": "h1", "fingerprint": "f"}))
    (step / "results" / "out-align-runs.json").write_text(json.dumps([{
        "program": "pc_align", "argv": ["pc_align", "--max-displacement", "30"], "started": "s", "ended": "e",
        "exit_code": 0, "log": "pc_align-run1.log", "max_displacement": 30.0, "displacement_warning": False}]))
    records = step_records({"pc_align-L-R": step})
    assert [r["program"] for r in records] == ["ctxdask.tools.align:align_to_mola", "pc_align"]
    assert records[0]["ended"] == "2026-01-01T00:00:02.500000+00:00" and records[1]["parent"] == "pc_align-L-R"
    records.append({"key": "point2dem-L-R", "step": "point2dem", "program": "point2dem",
                    "argv": ["point2dem", "-r", "mars"], "started": None})
    prov = build_provenance(records, pair_id="L-R", settings={"a": 1},
                            versions={"point2dem": "ASP 3.5", "pc_align": "ASP 3.5"})
    assert prov["programs"]["ctxdask.tools.align:align_to_mola"].startswith("ctxdask")
    props = processing_properties(prov)
    assert props["processing:software"]["point2dem"] == "ASP 3.5" and "provenance.json" in props[
        "processing:lineage"]
    path = tmp_path / "provenance.json"
    path.write_text(json.dumps(prov))
    rows = [{"key": "point2dem-L-R", "started": "t0", "ended": "t1", "exit_code": 0, "host": "h2",
             "log_path": "/out/log"}]
    assert complete_provenance(path, rows)
    done = json.loads(path.read_text())
    step = next(s for s in done["steps"] if s["key"] == "point2dem-L-R")
    assert (step["started"], step["host"], step["log"]) == ("t0", "h2", "/out/log")
    assert "h2" in done["hosts"] and not complete_provenance(path, rows)  # nothing left to fill
