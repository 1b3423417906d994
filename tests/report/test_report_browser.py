"""The report in a real headless Chromium: rendered DOM, loaded thumbnails, no script injection, screenshot.

``.ci/run`` installs Debian's ``chromium``; without it these tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from ctxdask.report import build_report

from .conftest import BAD, CRASH_PAIR, pair_id
from .helpers import Page, copy_batch, execute

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
pytestmark = [
    pytest.mark.requires_tool("chromium"),
    pytest.mark.timeout(180),
]

WIDTH, HEIGHT = 1400, 2200
#: if this ran, the page would carry data-pwned: escaping must keep it text
INJECTION = '<img src="x" onerror="document.body.dataset.pwned = 1"><script>document.body.dataset.pwned = 2</script>'


def chromium(profile, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium once, offline, with a throwaway profile."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def rendered(batch_out, tmp_path_factory):
    """The report (with an injection attempt in an error) as Chromium renders it: (DOM, screenshot)."""
    tmp = tmp_path_factory.mktemp("browser")
    out = copy_batch(batch_out, tmp / "out")
    execute(out / "ctxdask-batch.sqlite", "UPDATE steps SET error = error || ? WHERE key = ?",
            (INJECTION, f"validate-{BAD}"))
    page = build_report(out, dest=tmp / "report")
    url = page.resolve().as_uri()
    dom = chromium(tmp / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp / "report.png"
    result = chromium(tmp / "profile-shot", f"--screenshot={shot}", url)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    return Page(dom.stdout), shot


def test_dom_lists_failures_first_with_loaded_thumbnails(rendered):
    page, _ = rendered
    body = page.find("body")[0]
    # the page's own script ran over every image and found each thumbnail loaded with real pixels
    thumbs = page.find("img", "thumb")
    assert len(thumbs) == 7 and body["data-thumbnails-checked"] == "7"
    assert all(t.get("data-loaded") == "yes" and int(t["data-natural-width"]) > 0 for t in thumbs), thumbs
    assert not page.find("figure", "missing")
    # failures first, in every table
    assert [p["data-status"] for p in page.find("tr", "pair")] == ["failed", "failed", "done"]
    assert page.find("tr", "pair")[0]["data-id"] == pair_id(CRASH_PAIR)
    images = page.find("tr", "image")
    assert len(images) == 5
    assert [(i["data-status"], i["data-grade"]) for i in images] == [
        ("failed", ""), ("done", "fail"), ("done", "fail"), ("done", "pass"), ("done", "pass")]
    assert len(page.find("article", "failure")) == 2
    # the injected markup stayed text: nothing ran, no element was added
    assert "data-pwned" not in body and "pwned" not in str(body)
    assert INJECTION in page.text
    assert len(page.find("script")) == 1


def test_screenshot_shows_the_styled_page(rendered):
    _, shot = rendered
    with Image.open(shot) as im:
        assert im.size == (WIDTH, HEIGHT)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    # not blank: many colours and real contrast
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 200 and rgb.std() > 20
    # the inline CSS applied: the dark header band across the top, red "failed" badges and row marks

    def share(colour, tol=8):
        return np.mean(np.all(np.abs(rgb - colour) <= tol, axis=-1))

    assert np.abs(rgb[2:12, :-20] - (0x2D, 0x2A, 0x32)).max() <= 8  # header top padding (scrollbar aside)
    assert share((0xB3, 0x26, 0x1E)) > 1e-4  # --fail red
    assert share((0x1E, 0x7B, 0x34)) > 1e-4  # --ok green
