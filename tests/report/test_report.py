"""The HTML report: content, order, escaping, self-containment, older databases, the command."""

from __future__ import annotations

import html
import json
import re

import pytest

from ctxdask.cli import main
from ctxdask.exceptions import CTXError, MissingFileError
from ctxdask.report import build_report, collect
from ctxdask.tracking import TrackingDB

from .conftest import BAD, BAD_PAIR, CRASH_PAIR, GOOD_PAIR, IDS, pair_id
from .helpers import Page, copy_batch, execute

HOSTILE_ID = '<script>alert("id")</script>'
HOSTILE_ERROR = "<img src=x onerror=alert(1)> & 'quoted' \"double\""
HOSTILE_REASON = "</td></tr><tr><td>injected"


def _local_refs(page: Page) -> list[str]:
    return [a["src"] for a in page.find("img")] + [a["href"] for a in page.find("a")] + \
        [a["href"] for a in page.find("link") if a.get("href")]


def test_report_of_a_real_batch(batch_out, tmp_path):
    page_path = build_report(batch_out, dest=tmp_path / "rep")
    assert page_path == tmp_path / "rep" / "index.html"
    text = page_path.read_text()
    page = Page(text)

    # failures first: the two failed pairs (in pair-list order), then the done one
    pairs = page.find("tr", "pair")
    assert [(p["data-id"], p["data-status"]) for p in pairs] == [
        (pair_id(CRASH_PAIR), "failed"), (pair_id(BAD_PAIR), "failed"), (pair_id(GOOD_PAIR), "done")]
    # images: the invalid EDR, then the failed grades (lost lines, saturation), then the passes
    images = page.find("tr", "image")
    assert [(i["data-id"], i["data-status"], i["data-grade"]) for i in images] == [
        (BAD, "failed", ""), (IDS[2], "done", "fail"), (IDS[3], "done", "fail"),
        (IDS[0], "done", "pass"), (IDS[1], "done", "pass")]
    assert [a["data-key"] for a in page.find("article", "failure")] == [
        f"validate-{BAD}", f"point2dem-{pair_id(CRASH_PAIR)}"]
    assert "killed by SIGSEGV" in page.text and "truncated image" in page.text
    assert "lost_line_fraction 0.0625 > fail limit 0.05" in page.text  # a grade reason
    assert "expected two product ids" in page.text  # the junk pair-list line

    # offline: every reference is relative and resolves inside the report folder
    refs = _local_refs(page)
    thumbs = page.find("img", "thumb")
    assert len(thumbs) == 4 + 3  # 4 image thumbnails; hillshade, colour relief, ortho of the DEM
    for ref in refs:
        if ref.startswith("#"):
            continue
        assert not re.match(r"^[a-z]+:|^//|^/", ref), ref
        target = (page_path.parent / ref).resolve()
        assert target.is_relative_to(page_path.parent.resolve()) and target.is_file(), ref
    assert all((page_path.parent / t["src"]).read_bytes().startswith(b"\x89PNG") for t in thumbs)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    # the delivered point2dem log of the good pair is copied and linked
    logs = [a["href"] for a in page.find("a", "log")]
    assert any(pair_id(GOOD_PAIR) in ref for ref in logs)
    assert any(ref.endswith(".stac.json") for ref in refs)
    # the good pair's DEM QA: bundle adjustment residuals before and after
    assert "bundle adjustment 2.5 → 0.31 px" in page.text
    # counts in the summary cards
    assert re.search(r'id="count-pairs">.*?<div class="big">3</div>', text, re.DOTALL)


def test_every_database_string_is_escaped(batch_out, tmp_path):
    out = copy_batch(batch_out, tmp_path / "out")
    db = out / "ctxdask-batch.sqlite"
    execute(db, "INSERT INTO images (product_id, status, error) VALUES (?, 'failed', ?)", (HOSTILE_ID, HOSTILE_ERROR))
    execute(db, "INSERT INTO quality (product_id, grade, reasons, metrics) VALUES (?, 'fail', ?, '{}')",
            (HOSTILE_ID, json.dumps([HOSTILE_REASON])))
    execute(db, "UPDATE steps SET error = ? WHERE key = ?", (HOSTILE_ERROR, f"validate-{BAD}"))
    text = build_report(out, dest=tmp_path / "rep").read_text()
    page = Page(text)
    for s in (HOSTILE_ID, HOSTILE_ERROR, HOSTILE_REASON):
        assert html.escape(s) in text
        assert s in page.text  # shown as text, exactly
    assert text.count("<script>") == 1  # only the report's own
    assert len(page.find("img")) == 7  # no injected image
    assert page.find("tr", "image")[0]["data-id"] == HOSTILE_ID


def test_an_old_database_without_quality_tables(batch_out, tmp_path):
    out = copy_batch(batch_out, tmp_path / "out")
    # the layout of a batch before QA was recorded: no such tables, no schema version (migrated on reading)
    execute(out / "ctxdask-batch.sqlite", "DROP TABLE quality; DROP TABLE pair_quality; PRAGMA user_version = 0;")
    data = collect(out, dest=tmp_path / "rep")
    assert not data.has_quality and data.grades == {}
    assert all(im["grade"] is None and im["thumb"] is None for im in data.images)
    page = Page(build_report(out, dest=tmp_path / "rep").read_text())
    assert "no quality assessment recorded in this database" in page.text
    assert page.find("img") == [] and len(page.find("tr", "pair")) == 3


def test_an_empty_database_and_a_missing_one(tmp_path):
    TrackingDB(tmp_path / "empty" / "ctxdask-batch.sqlite").close()
    page = Page(build_report(tmp_path / "empty").read_text())
    assert "no runs recorded" in page.text and "No step failed" in page.text
    with pytest.raises(MissingFileError, match="no tracking database"):
        build_report(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()  # nothing written


def test_thumbnail_paths_cannot_leave_the_output_folder(batch_out, tmp_path):
    out = copy_batch(batch_out, tmp_path / "out")
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not for the report")
    execute(out / "ctxdask-batch.sqlite", "UPDATE quality SET thumbnail = ? WHERE product_id = ?",
            ("../secret.png", IDS[0]))
    execute(out / "ctxdask-batch.sqlite", "UPDATE quality SET thumbnail = ? WHERE product_id = ?",
            (str(secret), IDS[1]))
    dest = tmp_path / "rep"
    build_report(out, dest=dest)
    copied = [p.read_bytes() for p in (dest / "files" / "thumbs").iterdir()]
    assert len(copied) == 2 + 3 and secret.read_bytes() not in copied


def test_report_folder_rules_and_rebuild(batch_out, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(CTXError, match="not empty"):
        build_report(batch_out, dest=foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    dest = tmp_path / "rep"
    build_report(batch_out, dest=dest)
    stale = dest / "files" / "thumbs" / "stale.png"
    stale.write_bytes(b"old")
    build_report(batch_out, dest=dest)  # an earlier report is replaced, its copies too
    assert not stale.exists() and (dest / "index.html").is_file()
    assert not list(dest.glob(".index.*"))


def test_long_logs_are_copied_as_their_end(batch_out, tmp_path, monkeypatch):
    from ctxdask import report

    out = copy_batch(batch_out, tmp_path / "out")
    log = tmp_path / "long.log"
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    execute(out / "ctxdask-batch.sqlite", "UPDATE steps SET log_path = ? WHERE key = ?",
            (str(log), f"point2dem-{pair_id(CRASH_PAIR)}"))
    monkeypatch.setattr(report, "LOG_LIMIT", 1000)
    data = collect(out, dest=tmp_path / "rep")
    failure = next(f for f in data.failures if f["step"] == "point2dem")
    copied = (tmp_path / "rep" / failure["log"]).read_text()
    assert copied.startswith("[ctxdask report: the first") and copied.endswith("line 4999\n")
    body = copied.split("\n", 1)[1]
    assert body.encode() == log.read_bytes()[-1000:]
    assert failure["tail"].splitlines() == [f"line {i}" for i in range(4980, 5000)]


def test_command(batch_out, tmp_path, capsys):
    out = copy_batch(batch_out, tmp_path / "out")
    assert main(["report", str(out)]) == 0
    assert (out / "report" / "index.html").is_file()
    assert "file://" in capsys.readouterr().out
    assert main(["report", str(out), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "index.html").is_file()
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "no tracking database" in capsys.readouterr().err
