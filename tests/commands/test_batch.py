"""``ctxdask batch`` as a new user meets it: native calibration without ISIS, and what was skipped."""

from __future__ import annotations

import os
import sqlite3
import sys

import pytest
import yaml

import ctxdask
from ctxdask.cli import main
from ctxdask.settings import Settings
from ctxdask.testing import make_edr
from ctxdask.tools.recipe import build_recipe

IDS = ["P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"]


def test_native_calibration_is_the_default():
    """Without ISIS the images are still calibrated: native is the default (it matches ISIS)."""
    packaged = yaml.safe_load(open(os.path.join(os.path.dirname(ctxdask.__file__), "ctxdask.yaml")))
    assert packaged["ctxdask"]["tools"]["calibration"] == "native"
    assert Settings().tools.calibration == "native"
    recipe = build_recipe()
    assert recipe.image_steps[0].name == "calibrate" and "ctxcal" not in recipe.programs()
    assert build_recipe(calibration="isis").image_steps[0].name == "mroctx2isis"


@pytest.mark.cluster
@pytest.mark.timeout(300)
def test_batch_without_isis_calibrates_and_says_what_it_skipped(tmp_path, monkeypatch, capsys):
    edr = tmp_path / "edr"
    for pid in IDS:
        make_edr(edr / f"{pid}.IMG", lines=64, line_samples=256)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{IDS[0]} {IDS[1]}\n")
    # no ISIS/ASP and no stand-ins on PATH: only this interpreter and the system
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]))
    out = tmp_path / "out"
    code = main(["batch", str(pairs), "--out", str(out), "--edr-dir", str(edr), "--local", "1",
                 "--steps", "spiceinit", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1, captured  # the pairs are not done: exit 1, as for any step that did not succeed
    with sqlite3.connect(out / "ctxdask-batch.sqlite") as db:
        steps = dict(db.execute("SELECT key, status FROM steps WHERE step IN ('calibrate', 'spiceinit')"))
    assert {steps[f"calibrate-{pid}"] for pid in IDS} == {"done"}  # calibrated natively
    assert {steps[f"spiceinit-{pid}"] for pid in IDS} == {"skipped"}
    text = captured.out
    assert "skipped: 2 steps did not run" in text
    assert "spiceinit (2x): spiceinit: program not found on PATH" in text
    assert "run `ctxdask doctor` to see which ISIS/ASP programs are installed" in text


@pytest.mark.cluster
@pytest.mark.timeout(900)
def test_the_default_run_delivers_dem_products_through_the_standins(tmp_path):
    """Issue 19 break 8 / deliver 4: ``ctxdask batch PAIRS --out DIR --edr-dir DIR --local 2``.

    No other option: native calibration, then ISIS ``spiceinit`` (the stand-in changes the
    cube in place, as the real program does) and the ASP chain the defaults pick with the
    stand-ins on PATH. Every good pair delivers its DEM products; the bad pair (an image
    that is not there) is the only one that fails.
    """
    import subprocess

    import rasterio

    from ..tools.conftest import STANDINS, standin_path

    edr = tmp_path / "edr"
    good = [(IDS[0], IDS[1]), (IDS[1], "B10_013341_1010_XN_79S172W")]
    for pid in {p for pair in good for p in pair}:
        make_edr(edr / f"{pid}.IMG", lines=16, line_samples=128)
    missing = "D10_031011_1864_XI_06N201W"  # no EDR for it in the folder
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{a} {b}\n" for a, b in [*good, (IDS[0], missing)]))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "CTXDASK_STANDIN"))}
    # every stand-in, ASP 3.7's stereo_tile too: with no tools.asp.lowres-dem, "auto" is monolithic
    env["PATH"] = os.pathsep.join([str(STANDINS / "asp37"), standin_path()])
    run = subprocess.run([sys.executable, "-m", "ctxdask", "batch", str(pairs), "--out", str(out),
                          "--edr-dir", str(edr), "--local", "2"],
                         env=env, capture_output=True, text=True, timeout=840)
    with sqlite3.connect(out / "ctxdask-batch.sqlite") as db:
        pair_status = dict(db.execute("SELECT pair_id, status FROM pairs"))
        failed = db.execute("SELECT key, error FROM steps WHERE status != 'done'").fetchall()
        spiceinit = [k for (k,) in db.execute("SELECT key FROM steps WHERE step = 'spiceinit' AND status = 'done'")]
        stereo = {s for (s,) in db.execute("SELECT step FROM steps WHERE status = 'done'")}
    assert run.returncode == 1, (run.stdout[-3000:], run.stderr[-3000:])  # the bad pair is not done
    done = {f"{a}-{b}" for a, b in good}
    assert {p for p, s in pair_status.items() if s == "done"} == done, (pair_status, failed, run.stdout[-3000:])
    assert len(spiceinit) == 3 and "parallel_stereo" in stereo and "calibrate" in stereo
    for pair in done:
        folder = out / "pairs" / pair
        for name in (f"{pair}-DEM.tif", f"{pair}-DRG.tif", f"{pair}-hillshade.tif", f"{pair}-colour-relief.tif"):
            with rasterio.open(folder / name) as src:
                assert src.crs is not None and src.width > 0, name
        assert (folder / "qa_metrics.json").is_file() and (folder / f"{pair}.stac.json").is_file()


def test_the_command_line_only_builds_settings(tmp_path):
    """Every option of ``ctxdask batch`` is a setting; ``--timeout`` goes where the step's deadline lives."""
    import argparse

    from ctxdask.commands.batch import add_arguments, settings_from
    from ctxdask.settings import current

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    plain = settings_from(parser.parse_args(["pairs.txt", "--out", "o", "--edr-dir", "e"]))
    assert plain == current()
    args = parser.parse_args(["pairs.txt", "--out", "o", "--edr-dir", "e", "--local", "3", "--db", "t.sqlite",
                              "--retry-failed", "--steps", "fetch,validate", "--timeout", "validate=2m",
                              "--timeout", "stereo_tile=1h", "--calibration", "isis", "--deliver", "point2dem",
                              "--delivery", "shared", "--no-progress", "--include-rejected"])
    batch = settings_from(args).batch
    assert (batch.local_workers, batch.database, batch.retry_failed, batch.steps) == (3, "t.sqlite", True,
                                                                                     ("fetch", "validate"))
    assert (batch.deliver, batch.delivery, batch.progress, batch.include_rejected) == (("point2dem",), "shared",
                                                                                       False, True)
    assert batch.timeouts["validate"] == 120.0 and "stereo_tile" not in batch.timeouts
    tools = settings_from(args).tools
    assert tools.timeouts["stereo_tile"] == 3600.0 and tools.calibration == "isis"
    assert "validate" not in tools.timeouts
