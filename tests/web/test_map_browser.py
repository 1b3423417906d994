"""The batch map in a real headless Chromium: pan and zoom change the view, hillshades load, grid labels
never overlap (a south-polar pair once smeared them), a click on a pair's outline opens its page; the
same map in the static report. Screenshots go to the test's ``shots/`` folder.
"""

from __future__ import annotations

import re

import pytest

from ctxdask.report import build_report

from .conftest import GOOD_PAIR, pair_id, serving
from .mapdata import dem_bounds_lonlat, south_polar, write_footprints
from .test_browser import by_css, console_errors, shoot, wait_for

pytestmark = [pytest.mark.requires_tool("chromium"), pytest.mark.requires_tool("chromedriver"),
              pytest.mark.timeout(300)]

#: label rectangles on screen that intersect (with a pixel of slack): none allowed
OVERLAPS = """
const r = Array.from(document.querySelectorAll('#map g.labels text')).map(t => t.getBoundingClientRect());
const bad = [];
for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++) {
  const a = r[i], b = r[j];
  if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) bad.push([i, j]);
}
return [r.length, bad];
"""
#: a point inside the map whose topmost link goes to ``href`` (another shape may cover a polygon's centre)
POINT_ON = """
const [href] = arguments;
const svg = document.getElementById('map'), box = svg.getBoundingClientRect();
for (let y = box.top + 5; y < box.bottom; y += 6) for (let x = box.left + 5; x < box.right; x += 6) {
  const a = document.elementFromPoint(x, y)?.closest('a');
  if (a && a.getAttribute('href') === href) return [x - (box.left + box.width / 2), y - (box.top + box.height / 2)];
}
return null;
"""


def labels(driver) -> list[str]:
    return driver.execute_script("return Array.from(document.querySelectorAll('#map g.labels text'), t => t.textContent)")


def view_box(driver) -> list[float]:
    return [float(v) for v in driver.execute_script("return document.getElementById('map').getAttribute('viewBox')")
            .split()]


def check_labels(driver, what: str) -> list[str]:
    """The grid's labels: several, none overlapping, hemispheres written out (``79°S``, never ``-79°N``)."""
    count, bad = driver.execute_script(OVERLAPS)
    texts = labels(driver)
    assert count >= 4 and not bad, (what, bad, texts)
    assert all(re.fullmatch(r"\d+(\.\d+)?°[NSEW]|0°|180°", t) for t in texts), (what, texts)
    return texts


def map_ready(driver) -> None:
    wait_for(lambda: driver.execute_script("return document.getElementById('map')?.dataset.ready === 'yes'"),
             what="the map's script")
    wait_for(lambda: driver.execute_script(
        "return Array.from(document.querySelectorAll('#map image.hillshade')).every(i => i.dataset.loaded)"),
        what="the hillshades")


def click_link(driver, href: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    offset = driver.execute_script(POINT_ON, href)
    assert offset, f"no visible point of the map links to {href}"
    ActionChains(driver).move_to_element_with_offset(by_css(driver, "#map")[0], *offset).click().perform()


def test_map_pans_zooms_shows_hillshades_and_opens_pairs(browser, batch_copy, tmp_path):
    good = pair_id(GOOD_PAIR)
    west, south, east, north = dem_bounds_lonlat(batch_copy, good)
    write_footprints(batch_copy, west, south, (east - west) * 1.2, (north - south) * 1.2)
    from selenium.webdriver.common.action_chains import ActionChains

    with serving(batch_copy) as server:
        browser.get(server.base + "/map")
        map_ready(browser)
        shades = by_css(browser, "#map image.hillshade")
        assert [s.get_attribute("data-loaded") for s in shades] == ["yes"]
        assert int(shades[0].get_attribute("data-natural-width")) > 0
        assert by_css(browser, f"#map a[href='/pair/{good}'] polygon.pair.dem")
        assert by_css(browser, "#map a[href^='/image/'] polygon")
        check_labels(browser, "first view")
        shoot(browser, tmp_path / "shots", "map")
        first = view_box(browser)
        by_css(browser, "#map-zoom-in")[0].click()
        zoomed = view_box(browser)
        assert zoomed[2] < first[2] * 0.75, (first, zoomed)
        check_labels(browser, "zoomed in")
        # the wheel zooms about the pointer: out again
        browser.execute_script("document.getElementById('map').dispatchEvent(new WheelEvent('wheel', "
                               "{deltaY: 200, clientX: 300, clientY: 300, bubbles: true, cancelable: true}))")
        wheeled = view_box(browser)
        assert wheeled[2] > zoomed[2], (zoomed, wheeled)
        # a drag pans, even one that starts and ends on a footprint, and does not follow its link
        svg = by_css(browser, "#map")[0]
        ActionChains(browser).move_to_element(svg).click_and_hold().move_by_offset(120, 60).release().perform()
        panned = view_box(browser)
        assert panned[2] == pytest.approx(wheeled[2]) and panned[0] < wheeled[0] and panned[1] < wheeled[1]
        assert browser.current_url.endswith("/map")
        check_labels(browser, "panned")
        by_css(browser, "#map-reset")[0].click()
        assert view_box(browser)[2] == pytest.approx(first[2], rel=1e-6)
        assert not console_errors(browser)
        # a click on the pair's outline (or its hillshade) opens the pair's page
        click_link(browser, f"/pair/{good}")
        wait_for(lambda: browser.current_url.endswith(f"/pair/{good}"), what="the pair page")
        wait_for(lambda: by_css(browser, "#relief svg.colourbar"), what="the colour bar")
        ticks = [t.text for t in by_css(browser, "#relief svg.colourbar text.tick")]
        assert len(ticks) == 3 and all(t.endswith(" m") for t in ticks), ticks
        crs = browser.find_element("id", "dem").text
        assert "Mars (sphere of radius 3,396,190 m), equirectangular" in crs and "20 m pixels" in crs, crs
        assert "PROJCS" not in crs
    print(f"screenshots in {tmp_path / 'shots'}")


def test_south_polar_map_tiles_labels_and_pair_page(browser, batch_copy, tmp_path):
    good = pair_id(GOOD_PAIR)
    south_polar(batch_copy, good)
    shots = tmp_path / "shots"
    with serving(batch_copy) as server:
        browser.get(server.base + "/map")
        map_ready(browser)
        assert [s.get_attribute("data-loaded") for s in by_css(browser, "#map image.hillshade")] == ["yes"]
        tiles = by_css(browser, f"#map a[href='/pair/{good}'] polygon.tile")
        assert sorted(t.get_attribute("class").split()[-1] for t in tiles) == [
            "tile-failed", "tile-first", "tile-retried", "tile-timeout"]
        texts = check_labels(browser, "south polar")
        assert any(t.endswith("°S") for t in texts) and any(t.endswith("°W") for t in texts), texts
        assert "79°S" in texts or any(t.startswith("79.") and t.endswith("°S") for t in texts), texts
        shoot(browser, shots, "map-south-polar")
        for _ in range(4):  # zoomed far in, the labels still fit
            by_css(browser, "#map-zoom-in")[0].click()
            check_labels(browser, "south polar zoomed")
        shoot(browser, shots, "map-south-polar-zoomed")
        by_css(browser, "#map-reset")[0].click()
        assert not console_errors(browser)
        browser.get(server.base + f"/pair/{good}")
        wait_for(lambda: by_css(browser, "#relief svg.colourbar"), what="the colour bar")
        crs = browser.find_element("id", "dem").text
        assert "polar stereographic, centred on 90°S 0°, 100 m pixels" in crs, crs
        note = by_css(browser, "#relief .colourbar-note")[0].text
        assert "height in m" in note and "approximate" not in note  # the batch recorded the stretch
        browser.execute_script("document.getElementById('pictures').scrollIntoView()")
        shoot_plain(browser, shots, "pair-south-polar")
    # the static report: the same map, offline, its outlines leading to the pair's row
    page = build_report(batch_copy, dest=tmp_path / "report")
    browser.get(page.as_uri())
    map_ready(browser)
    assert [s.get_attribute("data-loaded") for s in by_css(browser, "#map image.hillshade")] == ["yes"]
    check_labels(browser, "report")
    assert by_css(browser, f"tr#pair-{good} svg.colourbar")
    browser.execute_script("document.getElementById('map-section').scrollIntoView()")
    shoot_plain(browser, shots, "report-map-south-polar")
    click_link(browser, f"#pair-{good}")
    wait_for(lambda: browser.current_url.endswith(f"#pair-{good}"), what="the pair's row")
    print(f"screenshots in {shots}")


def shoot_plain(driver, folder, name):
    """A screenshot where the page is (no scroll to the top, unlike :func:`shoot`)."""
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))
