"""Triage after the preview: a doomed pair is held with the measured reason, released by a grade, then run."""

from __future__ import annotations

import html
import json
import re

import httpx
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from ctxdask.batch import run_batch
from ctxdask.report import build_report
from ctxdask.tools.recipe import build_recipe
from ctxdask.tracking import BatchView

from ..web.conftest import serving
from .conftest import IDS, make_images, query, write_pairs
from .tiled import tiled_path

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

GOOD, DOOMED = (IDS[0], IDS[1]), (IDS[2], IDS[3])
GOOD_ID, DOOMED_ID = "-".join(GOOD), "-".join(DOOMED)
FULL = ["preview_seed", "mapproject_grid", "mapproject_left", "mapproject_right", "parallel_stereo", "point2dem"]


def _lowres_dem(path):
    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=1, dtype="float32",
                       crs="+proj=longlat +a=3396190 +b=3396190 +no_defs",
                       transform=from_origin(354.0, 2.3, 0.1, 0.1)) as dst:
        dst.write(np.full((1, 16, 16), -1200.0, dtype="float32"))
    return str(path)


def test_a_doomed_pair_is_held_after_its_preview_then_released_by_a_grade(tmp_path, cluster_client):
    edr = make_images(tmp_path / "edr", [*GOOD, *DOOMED])
    pairs = write_pairs(tmp_path / "pairs.txt", [GOOD, DOOMED])
    calls = tmp_path / "calls.jsonl"
    recipe = build_recipe(preview=True, lowres_dem=_lowres_dem(tmp_path / "mola.tif"), stereo_mode="monolithic",
                          bundle_adjust=False, env={"PATH": tiled_path(), "CTXDASK_STANDIN_CALLS": str(calls),
                                                    "CTXDASK_STANDIN_DOOMED": DOOMED[1]})
    out, settings = tmp_path / "out", {"batch.progress": False}
    summary = run_batch(pairs, out, source=edr, client=cluster_client, recipe=recipe, settings=settings)
    assert summary.pairs == {"done": 1, "skipped": 1}, [f["error"] for f in summary.failures]
    db = out / "ctxdask-batch.sqlite"
    steps = dict(query(db, "SELECT key, status FROM steps"))
    # the doomed pair ran its preview and nothing more; the good one its full pass too
    assert steps[f"preview_qa-{DOOMED_ID}"] == "done" and steps[f"preview_qa-{GOOD_ID}"] == "done"
    assert not [s for s in FULL if f"{s}-{DOOMED_ID}" in steps]
    assert all(steps[f"{s}-{GOOD_ID}"] == "done" for s in FULL)
    # held with the measured reason: the pair's row, `ctxdask status`, the pair page's data, the verdict file
    (status, error), = query(db, "SELECT status, error FROM pairs WHERE pair_id = ?", (DOOMED_ID,))
    assert status == "skipped" and error.startswith("held after its preview: valid fraction 0.1"), error
    with BatchView(db) as view:
        assert view.status_report()["held_previews"] == {DOOMED_ID: error}
        assert view.pair(DOOMED_ID)["preview"]["verdict"] == "held"
        assert view.pair(GOOD_ID)["preview"]["verdict"] == "pass"
    verdict = json.loads((out / "pairs" / DOOMED_ID / "preview" / "preview-verdict.json").read_text())
    assert verdict["verdict"] == "held" and verdict["metrics"]["valid_fraction"] < 0.5

    # a rerun keeps it held; a person's pass releases it, and the next run makes its full pass only
    again = run_batch(pairs, out, source=edr, client=cluster_client, recipe=recipe, settings=settings)
    assert [h.text for h in again.held] == [DOOMED_ID] and "valid fraction" in again.held[0].reason
    # the report and the pair's page say why; a person releases it with the page's grading form
    report = build_report(out, dest=tmp_path / "report").read_text()
    assert 'id="previews"' in report and html.escape(error.removeprefix("held after its preview: ")) in report
    with serving(out) as server, httpx.Client(base_url=server.base) as c:
        page = c.get(f"/pair/{DOOMED_ID}").text
        assert "held before full resolution" in page and "valid fraction 0.1" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        assert c.post(f"/pair/{DOOMED_ID}/grade", data={"csrf": csrf, "value": "pass",
                                                        "note": "a thin strip is all we need"}).status_code == 303
    before = calls.read_text().count("\n")
    released = run_batch(pairs, out, source=edr, client=cluster_client, recipe=recipe, settings=settings)
    assert released.ok and released.pairs == {"done": 2} and not released.held, released
    ran = [json.loads(line) for line in calls.read_text().splitlines()[before:]]
    stereo = [c for c in ran if c["program"] == "parallel_stereo"]
    assert len(stereo) == 1 and "preview/out" not in stereo[0]["argv"]  # the preview is not redone
    assert all(s == "done" for s in dict(query(db, "SELECT step, status FROM steps WHERE subject = ?",
                                                    (DOOMED_ID,))).values())
    with BatchView(db) as view:
        assert view.status_report()["held_previews"] == {}
        assert view.pair(DOOMED_ID)["preview"]["released"]["grade"] == "pass"
