"""The live pages in a real headless Chromium (WebDriver): every page rendered and looked at,
grading through the form, a selection downloaded, hostile text kept inert.

Screenshots go to the test's temporary folder (``shots/``): not blank, key
elements present, no console errors.
"""

from __future__ import annotations

import pathlib
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from ctxdask.batch import read_pairs
from ctxdask.report import build_report
from ctxdask.tracking.geometry import import_scores

from ..tools.conftest import standin_path
from .conftest import BAD, CRASH_PAIR, GOOD_PAIR, IDS, ROOT, console_errors, pair_id, serving

pytestmark = [pytest.mark.requires_tool("chromium"), pytest.mark.requires_tool("chromedriver"),
              pytest.mark.timeout(300)]

#: if any of these ran, the page would carry data-pwned (or window.pwned): escaping must keep them text
PAYLOADS = ['<img src=x onerror="document.body.dataset.pwned=1">',
            '<script>document.body.dataset.pwned=2;window.pwned=2</script>',
            '"><svg onload="document.body.dataset.pwned=3">',
            "javascript:document.body.dataset.pwned=4"]
INJECTION = " ".join(PAYLOADS)


def by_css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def type_into(driver, selector: str, text: str) -> None:
    """Clear a field and type ``text``, finding it again if the page replaced it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException

    for attempt in range(5):
        try:
            box = wait_for(lambda: by_css(driver, selector), what=selector)[0]
            box.clear()
            box.send_keys(text)
            return
        except StaleElementReferenceException:
            if attempt == 4:
                raise
            time.sleep(0.3)


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def shoot(driver, folder: pathlib.Path, name: str) -> pathlib.Path:
    """A screenshot that must show a styled, non-blank page."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(float)
    assert pixels.std() > 10, f"{name}: the page looks blank"
    # the header bar is the page's dark colour: the style sheet applied
    assert pixels[5:30, :200].mean() < 100, f"{name}: no styled header"
    return path


def text_of(driver, element_id: str) -> str:
    """An element's text read in one script call (fragments are replaced under WebDriver's feet)."""
    return driver.execute_script(f"return document.getElementById('{element_id}')?.innerText || ''")


def not_pwned(driver) -> None:
    assert driver.execute_script("return document.body.dataset.pwned === undefined && window.pwned === undefined")


def write_scores(out: pathlib.Path) -> None:
    """Pair-finder scores with footprints for the batch's images, so the map has shapes."""
    rows = ["left,right,score,iou,convergence,incidence_left,incidence_right,footprint_left,footprint_right"]
    boxes = {}
    for k, pid in enumerate([*IDS, BAD]):
        x, y = -6.06 + 0.02 * k, 2.22 + 0.012 * k  # around the stand-in DEM (354.0-354.03 E, 2.27-2.30 N)
        boxes[pid] = f"{x:.3f},{y:.3f} {x + 0.04:.3f},{y:.3f} {x + 0.04:.3f},{y + 0.08:.3f} {x:.3f},{y + 0.08:.3f}"
    for left, right in (GOOD_PAIR, CRASH_PAIR, (IDS[3], BAD)):
        rows.append(f'{left},{right},0.5,0.6,20,40,45,"{boxes[left]}","{boxes[right]}"')  # quoted, as pandas does
    (out / "scores.csv").write_text("\n".join(rows) + "\n")
    import_scores(out / "ctxdask-batch.sqlite", out / "scores.csv")


def test_every_page_renders_without_errors(browser, batch_copy, tmp_path):
    write_scores(batch_copy)
    shots = tmp_path / "shots"
    pages = {
        "overview": ("/", ["#summary", "#steps-table", "#failures-table", "#running-table", ".failure-group"]),
        "images": ("/images?sort=snr&direction=desc", ["#images-table", "tr.image", "th a.sorted", ".pager"]),
        "pairs": ("/pairs", ["#pairs-table", "tr.pair", ".steps .badge"]),
        "image": (f"/image/{IDS[2]}", ["#thumbnails img.thumb", "svg.histogram rect", "#metrics dt", "#keywords dt",
                                       "#steps article", "#grade-form", "#grade-history"]),
        "pair": (f"/pair/{pair_id(GOOD_PAIR)}", ["#images img.thumb", "#geometry dt", "#pictures img.thumb",
                                                 "#dem dt", "#steps article", "#grade-form"]),
        "map": ("/map?colour=grade", ["svg.map", "svg.map polygon.gr-pass", "svg.map polygon.dem",
                                      "svg.map a[href^='/image/']"]),
        "select": ("/select?where=status+%3D+failed", ["#where", "#download", "tr.selected"]),
    }
    with serving(batch_copy) as server:
        for name, (path, selectors) in pages.items():
            browser.get(server.base + path)
            wait_for(lambda: browser.execute_script("return document.readyState") == "complete", what=name)
            for selector in selectors:
                assert by_css(browser, selector), f"{name}: no {selector}"
            # every picture on the page loads with real pixels (lazy ones once scrolled to)
            browser.execute_script("for (const i of document.images) i.loading = 'eager'")
            wait_for(lambda: browser.execute_script("return Array.from(document.images).every(i => i.complete)"),
                     what=f"{name} images")
            images = browser.execute_script(
                "return Array.from(document.images).map(i => [i.src, i.naturalWidth > 0])")
            assert all(ok for _, ok in images), (name, images)
            browser.execute_script("window.scrollTo(0, 0)")
            assert not console_errors(browser), name
            shoot(browser, shots, name)
        assert len(by_css(browser, "tr.selected")) == 2
    print(f"screenshots in {shots}")


def test_overview_follows_a_running_batch(browser, tmp_path):
    """A stand-in batch runs in its own process; the open overview's counts change without a reload."""
    from ctxdask.tracking import TrackingDB

    from ..batch.conftest import make_images, write_pairs
    from ..tools.conftest import standin_path

    edr = make_images(tmp_path / "edr", IDS)
    pairs = write_pairs(tmp_path / "pairs.txt", [(IDS[0], IDS[1]), (IDS[2], IDS[3]), (IDS[0], IDS[3])])
    out = tmp_path / "out"
    TrackingDB(out / "ctxdask-batch.sqlite").close()  # serve needs a database; the batch fills it
    with serving(out) as server:
        browser.get(server.base + "/")
        wait_for(lambda: browser.execute_script("return document.body.dataset.polls") is not None, what="a poll")
        first = text_of(browser, "count-pairs")
        env = {"PATH": standin_path(), "CTXDASK_STANDIN_SLEEP": "0.3", "HOME": str(tmp_path),
               "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])}
        batch = subprocess.Popen([sys.executable, "-m", "ctxdask", "batch", str(pairs), "--out", str(out),
                                  "--edr-dir", str(edr), "--local", "1", "--no-progress", "--calibration", "isis"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            seen = {first}
            while batch.poll() is None:
                seen.add(text_of(browser, "count-pairs"))
                time.sleep(0.3)
            output = batch.stdout.read()
            assert batch.returncode == 0, output
            wait_for(lambda: browser.execute_script("return document.body.dataset.pairsDone") == "3",
                     what="the final count")
        finally:
            if batch.poll() is None:
                batch.kill()
                batch.wait()
            batch.stdout.close()
        seen.add(text_of(browser, "count-pairs"))
        polls = int(browser.execute_script("return document.body.dataset.polls"))
        url = browser.current_url
        assert url.rstrip("/") == server.base  # never reloaded or navigated
        assert polls >= 3 and len(seen) >= 2, seen
        assert "3" in text_of(browser, "count-pairs")
        assert not console_errors(browser)
        shoot(browser, tmp_path / "shots", "overview-after-batch")


def test_grade_fail_in_the_browser_reaches_db_status_report_and_next_batch(browser, batch_out, batch_copy, tmp_path):
    """IDS[2] (left image of the pair whose point2dem crashed) failed by hand: the next run holds that pair."""
    note = "stripes across the top " + INJECTION
    with serving(batch_copy) as server:
        browser.get(server.base + f"/image/{IDS[2]}")
        wait_for(lambda: browser.execute_script("return document.readyState") == "complete", what="the page")
        by_css(browser, "#grade-form input[value=fail]")[0].click()
        type_into(browser, "#grade-form textarea[name=note]", note)
        type_into(browser, "#grade-form input[name=who]", "ana")
        by_css(browser, "#grade-submit")[0].click()
        wait_for(lambda: by_css(browser, "tr.grade-change"), what="the grade history")
        assert by_css(browser, "tr.grade-change")[0].get_attribute("data-value") == "fail"
        assert by_css(browser, "tr.grade-change td.note")[0].text == note.strip()
        not_pwned(browser)
        assert not console_errors(browser)
        shoot(browser, tmp_path / "shots", "image-graded")
        # the table shows it beside the automatic grade
        browser.get(server.base + "/images?manual=fail")
        rows = by_css(browser, "tr.image")
        assert [r.get_attribute("data-id") for r in rows] == [IDS[2]]
        assert rows[0].get_attribute("data-grade") == "fail" and rows[0].get_attribute("data-manual") == "fail"
    with sqlite3.connect(batch_copy / "ctxdask-batch.sqlite") as conn:
        assert conn.execute("SELECT scope, subject, value, note, who FROM manual_grades").fetchall() == [
            ("image", IDS[2], "fail", note.strip(), "ana")]
    status = subprocess.run([sys.executable, "-m", "ctxdask", "status", str(batch_copy)], capture_output=True,
                            text=True, check=True).stdout
    assert "manual grades (images): 1 fail" in status and f"manually failed {IDS[2]}: manually graded fail by ana" \
        in status
    page = build_report(batch_copy, dest=tmp_path / "report")
    browser.get(page.as_uri())
    row = by_css(browser, f"tr.image[data-id='{IDS[2]}']")[0]
    assert row.get_attribute("data-manual") == "fail" and "stripes across the top" in row.text
    not_pwned(browser)

    # the next batch run (retrying failures) holds the pair back with the grader's note ...
    root = batch_out.parent
    env = {"PATH": standin_path(), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "ctxdask", "batch", str(root / "pairs.txt"), "--out", str(batch_copy),
            "--edr-dir", str(root / "edr"), "--local", "1", "--no-progress", "--calibration", "isis", "--retry-failed"]
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert "1 pairs held back" in rerun.stdout and f"image {IDS[2]} manually graded fail by ana" in rerun.stdout, \
        rerun.stdout + rerun.stderr
    key = f"point2dem-{pair_id(CRASH_PAIR)}"
    with sqlite3.connect(batch_copy / "ctxdask-batch.sqlite") as conn:
        assert conn.execute("SELECT status, attempts FROM steps WHERE key = ?", (key,)).fetchone() == ("failed", 1)
    status = subprocess.run([sys.executable, "-m", "ctxdask", "status", str(batch_copy)], capture_output=True,
                            text=True, check=True).stdout
    assert f"skipped: image {IDS[2]} manually graded fail by ana" in status
    # ... unless told to include rejected work: then the pair runs again (no crash this time)
    again = subprocess.run([*argv, "--include-rejected"], env=env, capture_output=True, text=True, timeout=240)
    assert "held back" not in again.stdout, again.stdout + again.stderr
    with sqlite3.connect(batch_copy / "ctxdask-batch.sqlite") as conn:
        assert conn.execute("SELECT status FROM steps WHERE key = ?", (key,)).fetchone() == ("done",)


def test_selection_built_in_the_page_downloads_a_pair_list(browser, batch_copy):
    with serving(batch_copy) as server:
        browser.get(server.base + "/select")
        wait_for(lambda: browser.execute_script("return document.readyState") == "complete", what="the page")
        type_into(browser, "#where", "status = failed and any.grade = fail")
        by_css(browser, "#select-submit")[0].click()
        # the submit loads a new page: read the count by script (no element reference to go stale)
        # once the address carries the rule, so the first page's count is never taken for it
        count = "const e = document.getElementById('select-count'); return e ? e.textContent : null"
        wait_for(lambda: "where=" in browser.current_url and browser.execute_script(count) is not None
                 and browser.execute_script("return document.readyState") == "complete", what="the count")
        assert browser.execute_script(count) == "2"
        for old in browser.downloads.glob("*"):
            old.unlink()
        by_css(browser, "#download")[0].click()
        listing = wait_for(lambda: next((p for p in browser.downloads.glob("selection*.txt")), None),
                           what="the download")
        wait_for(lambda: listing.read_text().endswith("\n"), what="a complete file")
    pairs = read_pairs(listing)
    assert not pairs.rejected and {p.pair_id for p in pairs} == {pair_id(CRASH_PAIR), pair_id((IDS[3], BAD))}


def test_hostile_text_in_ids_labels_logs_and_notes_stays_text(browser, batch_copy, tmp_path):
    db = batch_copy / "ctxdask-batch.sqlite"
    hostile_id = "B01_000001_0000_XN_00N000W" + INJECTION
    log = batch_copy / "images" / IDS[1] / "hostile.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("normal line\n" + INJECTION + "\n")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO images (product_id, status, validation, error) VALUES (?, 'failed', ?, ?)",
                     (hostile_id, INJECTION, INJECTION))
        conn.execute("INSERT INTO steps (key, scope, subject, step, status, error, log_path, worker) "
                     "VALUES (?, 'image', ?, 'validate', 'failed', ?, ?, ?)",
                     ("validate-" + hostile_id, hostile_id, INJECTION, str(log), INJECTION))
        conn.execute("UPDATE images SET validation = ? WHERE product_id = ?", (INJECTION, IDS[1]))
        conn.execute("UPDATE steps SET log_path = ?, status = 'running', worker = ? WHERE key = ?",
                     (str(log), INJECTION, f"validate-{IDS[1]}"))
    from ctxdask.tracking import grades

    grades.add_grade(db, "image", IDS[1], "warn", INJECTION, who=INJECTION)
    from urllib.parse import quote

    with serving(batch_copy) as server:
        for path in ("/", "/images", "/images?status=failed", f"/image/{IDS[1]}", f"/image/{quote(hostile_id)}",
                     "/select?where=" + quote(f'status = "{INJECTION}"'), "/images?where=" + quote(INJECTION)):
            browser.get(server.base + path)
            wait_for(lambda: browser.execute_script("return document.readyState") == "complete", what=path)
            time.sleep(0.3)
            not_pwned(browser)
            assert not by_css(browser, "main script, main svg[onload], main img[src='x']"), path
        # the text is shown as text
        browser.get(server.base + f"/image/{IDS[1]}")
        assert INJECTION in browser.find_element("id", "keywords").text
        assert INJECTION in browser.find_element("id", "steps").text
        assert INJECTION in browser.find_element("id", "grade-history").text
        # the overview refreshes its fragments with innerHTML: still inert after a few polls
        browser.get(server.base + "/")
        wait_for(lambda: int(browser.execute_script("return document.body.dataset.polls || 0")) >= 2, what="polls")
        assert INJECTION in text_of(browser, "running-table")
        not_pwned(browser)
        shoot(browser, tmp_path / "shots", "hostile-overview")
