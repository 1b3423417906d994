"""``ctxdask batch`` as a new user meets it: native calibration without ISIS, and what was skipped."""

from __future__ import annotations

import os
import sqlite3
import sys

import pytest
import yaml

import ctxdask
from ctxdask.cli import main
from ctxdask.testing import make_edr
from ctxdask.tools.recipe import RecipeSettings, build_recipe

IDS = ["P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"]


def test_native_calibration_is_the_default():
    """Without ISIS the images are still calibrated: native is the default (it matches ISIS)."""
    packaged = yaml.safe_load(open(os.path.join(os.path.dirname(ctxdask.__file__), "ctxdask.yaml")))
    assert packaged["ctxdask"]["tools"]["calibration"] == "native"
    assert RecipeSettings().calibration == "native"
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
