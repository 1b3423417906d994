"""The live pages over HTTP from a real ``ctxdask serve`` process: content, filters, files, selection."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys

import httpx
import pytest

from ctxdask.batch import read_pairs
from ctxdask.tracking import TrackingDB

from .conftest import BAD, CRASH_PAIR, GOOD_PAIR, IDS, pair_id, serving

pytestmark = pytest.mark.timeout(180)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_pages_show_the_batch(batch_copy):
    # the crashed step's log as if delivered into the output folder (the stand-in batch cleans its scratch)
    log = batch_copy / "pairs" / pair_id(CRASH_PAIR) / "point2dem.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"point2dem line {i}\n" for i in range(100)) + "segmentation fault\n")
    with sqlite3.connect(batch_copy / "ctxdask-batch.sqlite") as conn:
        conn.execute("UPDATE steps SET log_path = ? WHERE key = ?", (str(log), f"point2dem-{pair_id(CRASH_PAIR)}"))
    with serving(batch_copy) as server, httpx.Client(base_url=server.base) as c:
        home = c.get("/")
        assert home.status_code == 200 and 'data-page="overview"' in home.text
        assert "point2dem" in home.text and "failures-table" in home.text
        # skipped steps are listed after the failures, with why (here: behind the crashed point2dem)
        assert "skipped-group" in home.text and "not run: an earlier step did not succeed" in home.text
        ov = c.get("/api/overview").json()
        assert ov["counts"]["pairs"] == {"failed": 2, "done": 1}
        assert set(ov["fragments"]) == {"summary", "progress", "running", "failures"}
        names = [st["step"] for st in ov["steps"]]
        assert len(names) == len(set(names)) and names[:2] == ["fetch", "validate"]  # one row a step, chain order
        assert ov["steps"][names.index("validate")]["counts"] == {"failed": 1, "done": 4}
        assert ov["failure_total"] == 2

        images = c.get("/images")
        assert images.status_code == 200 and images.text.count('class="image') == 5
        # headings say their units; no empty geometry columns before the pair finder's scores are imported
        assert "valid fraction" in images.text and "dark σ DN" in images.text and "incidence °" not in images.text
        failed = c.get("/images", params={"status": "failed"})
        assert re.findall(r'data-id="([^"]+)"', failed.text) == [BAD]
        # sorted by a QA metric, NULLs last
        by_snr = c.get("/images", params={"sort": "snr", "direction": "desc"}).text
        assert re.findall(r'data-id="([^"]+)"', by_snr)[-1] == BAD

        pairs = c.get("/pairs", params={"where": "status = done"})
        assert re.findall(r'class="pair[^"]*" data-id="([^"]+)"', pairs.text) == [pair_id(GOOD_PAIR)]
        bad_filter = c.get("/pairs", params={"where": "status = = done"})
        assert bad_filter.status_code == 400 and "filter not understood" in bad_filter.text

        page = c.get(f"/image/{IDS[0]}")
        assert page.status_code == 200 and "QA metrics" in page.text and "histogram" in page.text
        assert page.text.count("<rect") > 10  # the DN histogram
        for stretch in ("stored", "linear", "equalized", "gamma"):
            png = c.get(f"/image/{IDS[0]}/thumb/{stretch}.png")
            assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        pair = c.get(f"/pair/{pair_id(GOOD_PAIR)}")
        assert pair.status_code == 200 and "DEM hillshade" in pair.text and "/files/" in pair.text
        # the DEM's CRS by its name, not as WKT
        dem = pair.text[pair.text.index('id="dem"'):pair.text.index("</section>", pair.text.index('id="dem"'))]
        assert "<dt>crs</dt>" in dem and "PROJCRS[" not in dem and "GEOGCRS[" not in dem, dem
        # the stand-ins' bundle_adjust ran (tools.asp.bundle-adjust auto): its residuals, from qa_metrics.json
        adjusted = pair.text[pair.text.index('id="bundle-adjust"'):]
        assert f"{GOOD_PAIR[0]}.cal.cub" in adjusted and " px after" in adjusted
        for src in re.findall(r'<img class="thumb" src="(/files/[^"]+)"', pair.text):
            assert c.get(src).status_code == 200
        crashed = c.get(f"/pair/{pair_id(CRASH_PAIR)}").text
        assert "last lines of the log" in crashed and "segmentation fault" in crashed
        assert "point2dem line 70\n" not in crashed and "point2dem line 71\n" in crashed  # the last 30 lines
        whole = c.get(f"/files/pairs/{pair_id(CRASH_PAIR)}/point2dem.log")
        assert whole.status_code == 200 and whole.text.startswith("point2dem line 0")
        assert c.get("/map").status_code == 200
        assert "tile-map" not in pair.text  # this batch did not run stereo by tile
        assert c.get(f"/pair/{pair_id(GOOD_PAIR)}/tiles.png").status_code == 404
        assert c.get("/image/NOT_AN_IMAGE").status_code == 404


def test_selection_download_is_a_pair_list_batch_reads(server, tmp_path):
    with httpx.Client(base_url=server.base) as c:
        # the pair whose right image has no QA (its EDR is truncated)
        text = c.get("/select/pairs.txt", params={"where": "status = failed and right.grade is null"}).text
        page = c.get("/select", params={"where": "status = failed"})
    assert 'id="select-count">2<' in page.text
    listing = tmp_path / "selection.txt"
    listing.write_text(text)
    pairs = read_pairs(listing)
    assert not pairs.rejected and [p.pair_id for p in pairs] == [pair_id((IDS[3], BAD))]


def test_select_command_matches_the_page(batch_copy, tmp_path):
    listing = tmp_path / "chosen.txt"
    done = subprocess.run([sys.executable, "-m", "ctxdask", "select", str(batch_copy), "--where",
                           "status = failed", "-o", str(listing)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {p.pair_id for p in read_pairs(listing)} == {pair_id(CRASH_PAIR), pair_id((IDS[3], BAD))}
    bad = subprocess.run([sys.executable, "-m", "ctxdask", "select", str(batch_copy), "--where", "colour = red"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown pair field 'colour'" in bad.stderr


def test_grade_stored_with_history_and_shown(server, batch_copy):
    with httpx.Client(base_url=server.base) as c:
        token = csrf_of(c.get(f"/image/{IDS[1]}").text)
        for value, note in (("warn", "faint stripes"), ("fail", "stripes across the whole image")):
            r = c.post(f"/image/{IDS[1]}/grade", data={"csrf": token, "value": value, "note": note, "who": "ana"})
            assert r.status_code == 303, r.text
        page = c.get(f"/image/{IDS[1]}").text
        assert page.count('class="grade-change"') == 2 and "stripes across the whole image" in page
        bad = c.post(f"/image/{IDS[1]}/grade", data={"csrf": token, "value": "great"})
        assert bad.status_code == 400 and "grade not saved" in bad.text
        assert c.post("/image/NOT_AN_IMAGE/grade", data={"csrf": token, "value": "fail"}).status_code == 404
        assert json.loads(c.get("/api/overview").text)["manual_grades"] == {"image": {"fail": 1}}
    with sqlite3.connect(batch_copy / "ctxdask-batch.sqlite") as conn:
        rows = conn.execute("SELECT value, note, who FROM manual_grades ORDER BY id").fetchall()
    assert rows == [("warn", "faint stripes", "ana"), ("fail", "stripes across the whole image", "ana")]


def test_stac_items_carry_the_grades_where_shown(server, batch_copy, tmp_path):
    from ctxdask.report import build_report

    good = pair_id(GOOD_PAIR)
    with httpx.Client(base_url=server.base) as c:
        token = csrf_of(c.get(f"/pair/{good}").text)
        assert c.post(f"/pair/{good}/grade", data={"csrf": token, "value": "warn", "note": "edges noisy"}
                      ).status_code == 303
        item = c.get(f"/pair/{good}/stac.json").json()
        assert c.get(f"/pair/{pair_id(CRASH_PAIR)}/stac.json").status_code == 404
    assert item["properties"]["ctxdask:manual_grade"]["value"] == "warn"
    assert item["properties"]["ctxdask:image_grades"][GOOD_PAIR[0]] == {"grade": "pass", "manual_grade": None}
    assert item["type"] == "Feature" and item["geometry"]["type"] == "Polygon"
    page = build_report(batch_copy, dest=tmp_path / "report")
    copied = json.loads(next((page.parent / "files" / "stac").glob("*.json")).read_text())
    assert copied["properties"]["ctxdask:manual_grade"]["note"] == "edges noisy"
    # the delivered file itself is unchanged (its checksum is in the database)
    with sqlite3.connect(batch_copy / "ctxdask-batch.sqlite") as conn:
        rel = conn.execute("SELECT stac FROM pair_quality WHERE pair_id = ?", (good,)).fetchone()[0]
    assert "ctxdask:manual_grade" not in (batch_copy / rel).read_text()


def test_overview_html_for_notebooks_is_one_escaped_iframe(batch_copy):
    from html.parser import HTMLParser

    from ctxdask.web import overview_html

    text = overview_html(batch_copy)
    tags = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, dict(attrs)))

    Tags().feed(text)
    assert [t for t, _ in tags] == ["iframe"]  # the page is inside srcdoc, not in the notebook's DOM
    inner = tags[0][1]["srcdoc"]
    assert "steps-table" in inner and "point2dem" in inner and "failures-table" in inner
    assert "<script" not in inner


def test_stac_command_writes_the_grades_into_the_batch_catalog(batch_copy):
    from ctxdask.cli import main
    from ctxdask.tracking import grades

    good = pair_id(GOOD_PAIR)
    grades.add_grade(batch_copy / "ctxdask-batch.sqlite", "pair", good, "fail", "seams", who="ana")
    assert main(["stac", str(batch_copy)]) == 0  # and the items still validate
    item = json.loads((batch_copy / "pairs" / good / f"{good}.stac.json").read_text())
    assert item["properties"]["ctxdask:manual_grade"]["value"] == "fail"
    assert item["properties"]["ctxdask:image_grades"][GOOD_PAIR[1]]["grade"] == "pass"


def test_pair_that_ran_by_tile_shows_its_tile_map(batch_copy):
    good = pair_id(GOOD_PAIR)
    with TrackingDB(batch_copy / "ctxdask-batch.sqlite") as db:  # opening for writing adds the tiles table
        db.conn.executemany(
            "INSERT INTO tiles (pair_id, tile_index, x, y, width, height, padding, status, attempts) "
            "VALUES (?, ?, ?, ?, 64, 64, 8, ?, ?)",
            [(good, i, 64 * (i % 2), 64 * (i // 2), st, n)
             for i, (st, n) in enumerate([("done", 1), ("done", 2), ("timeout", 3), ("failed", 1)])])
    with serving(batch_copy) as server, httpx.Client(base_url=server.base) as c:
        page = c.get(f"/pair/{good}").text
        assert 'id="tile-map"' in page
        png = c.get(f"/pair/{good}/tiles.png")
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert c.get(f"/pair/{pair_id(CRASH_PAIR)}/tiles.png").status_code == 404
