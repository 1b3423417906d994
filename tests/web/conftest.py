"""Fixtures for the live web view: a real ``ctxdask serve`` process, a copy of a stand-in batch,
and a headless Chromium driven through WebDriver (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

from ..batch.conftest import faulty_runner, write_pairs
from ..report.conftest import BAD, BAD_PAIR, CRASH_PAIR, GOOD_PAIR, IDS, make_edrs, pair_id  # noqa: F401
from ..report.helpers import copy_batch
from ..tools.conftest import standin_path


@pytest.fixture(scope="session")
def batch_out(tmp_path_factory) -> pathlib.Path:
    """Output folder of the report tests' 3-pair stand-in batch (1 done, 1 crashed, 1 invalid EDR) with its QA.

    ISIS calibration (the stand-ins' chain), so the folder holds every kind of
    step and product the pages show. Tests must not change it: copy it first.
    """
    import functools
    import logging

    from distributed import Client, LocalCluster

    from ctxdask.batch import run_batch
    from ctxdask.tools.recipe import build_recipe

    root = tmp_path_factory.mktemp("web-batch")
    edr = make_edrs(root / "edr")
    pairs = write_pairs(root / "pairs.txt", [GOOD_PAIR, CRASH_PAIR, BAD_PAIR], extra="not a pair\n")
    out = root / "out"
    old = os.environ["PATH"]
    os.environ["PATH"] = standin_path()
    try:
        with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, resources={"stereo": 1},
                          dashboard_address=":0", silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            summary = run_batch(pairs, out, source=edr, client=client, recipe=build_recipe(calibration="isis"),
                                runner=functools.partial(faulty_runner,
                                                         faults={f"point2dem-{pair_id(CRASH_PAIR)}": "crash"}),
                                settings={"batch.progress": False, "batch.scratch": str(root / "scratch")})
    finally:
        os.environ["PATH"] = old
    assert summary.pairs == {"done": 1, "failed": 2}, summary
    return out  # the batch records QA itself: image grades, thumbnails, DEM pictures, STAC item

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ROOT = pathlib.Path(__file__).resolve().parents[2]


class Server:
    """A ``ctxdask serve`` process: its base URL (with the token, if any) and its output."""

    def __init__(self, out: pathlib.Path, *args: str):
        self.out = out
        self.proc = subprocess.Popen([sys.executable, "-m", "ctxdask", "serve", str(out), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                     start_new_session=True)
        self.lines = []
        for line in self.proc.stdout:
            self.lines.append(line)
            if " at http" in line:
                break
        else:
            raise RuntimeError("ctxdask serve did not start:\n" + "".join(self.lines))
        self.url = line.split(" at ", 1)[1].strip()
        self.base = self.url.split("?", 1)[0].rstrip("/")
        self.token = self.url.split("token=", 1)[1] if "token=" in self.url else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc.stdout.close()


@contextlib.contextmanager
def serving(out: pathlib.Path, *args: str):
    server = Server(out, *args)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def batch_copy(batch_out, tmp_path) -> pathlib.Path:
    """A private copy of the 3-pair stand-in batch (1 done, 1 crashed, 1 invalid EDR) with QA rows."""
    return copy_batch(batch_out, tmp_path / "out")


@pytest.fixture
def server(batch_copy):
    with serving(batch_copy) as s:
        yield s


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Headless Chromium through chromedriver; collects the console (``browser.get_log("browser")``)."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        required = os.environ.get("CTXDASK_REQUIRE_TOOLS", "").split()
        if "chromium-driver" in required or "chromedriver" in required:
            pytest.fail("chromium and chromedriver are required by CTXDASK_REQUIRE_TOOLS but are not installed")
        pytest.skip("chromium or chromedriver is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1366,900", f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium):
    """The module's Chromium on a blank page with an empty console log (an old page cannot poll into a test)."""
    chromium.get("about:blank")
    chromium.get_log("browser")
    yield chromium
    chromium.get("about:blank")


def console_errors(driver) -> list[dict]:
    """Console messages of level SEVERE since the last call (the log is drained by reading it)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
