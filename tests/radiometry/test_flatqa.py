"""The QA page of built flats: a real PNG per flat, rejected images first with escaped reasons."""

from __future__ import annotations

import numpy as np

from ctxdask.radiometry.flatbuild import CCD_PIXELS, FlatResult
from ctxdask.radiometry.flatqa import write_qa_page


def test_page_shows_plots_notes_and_rejections(tmp_path):
    flat = 1 - 0.1 * np.linspace(-1, 1, CCD_PIXELS) ** 2
    count = np.full(CCD_PIXELS, 12.0)
    count[-5:] = 0
    images = [
        {"source": "/d/ok.IMG", "product_id": "B10_X", "start_time": "2009-06-01", "accepted": True,
         "saturated_fraction": 0.012, "median_signal_dn": 800.0, "profile_scatter": 0.01},
        {"source": "/d/<script>.IMG", "product_id": "P01_Y", "rejected": "too dark: <b>3 DN</b>"},
    ]
    good = FlatResult("2009-06", flat, np.full(CCD_PIXELS, 0.004), count, images, "median", {}, ["a note & more"])
    bad = FlatResult("2009-07", None, None, None, images[1:], "median", {}, problem="0 usable images")
    page = write_qa_page([good, bad], tmp_path, reference=flat)
    html = page.read_text()
    png = tmp_path / "flat_2009-06.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "flat_2009-06.png" in html and "a note &amp; more" in html
    assert "No flat: 0 usable images" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;3 DN" in html
    # rejected images come first in each table
    table = html.split("<h2 id='2009-06'>")[1]
    assert table.index("rejected: too dark") < table.index(">used<")
    assert "1.20%" in html  # the saturated fraction, as a percentage
