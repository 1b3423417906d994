"""The ctxdask command line: exit codes, JSON, and python -m."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ctxdask.cli import main
from ctxdask.testing import make_edr


@pytest.fixture
def edrs(tmp_path):
    good = make_edr(tmp_path / "B10_013341_1010_XN_79S172W.IMG", lines=32, line_samples=128, lost_lines=[4])
    bad = tmp_path / "P01_001472_1747_XI_05S146W.IMG"
    bad.write_bytes(good.read_bytes()[:-500])
    return good, bad


def test_validate_exit_codes_and_text(edrs, capsys):
    good, bad = edrs
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: INVALID" in out and "truncated" in out and "1 valid, 1 invalid" in out


def test_validate_json(edrs, capsys):
    good, bad = edrs
    assert main(["validate", "--json", str(good), str(bad)]) == 1
    reports = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in reports] == [True, False]
    assert any(f["check"] == "lost-lines" for f in reports[0]["findings"])


def test_info(edrs, capsys):
    good, bad = edrs
    assert main(["info", str(good)]) == 0
    out = capsys.readouterr().out
    assert "B10_013341_1010_XN_79S172W" in out and "summing 1" in out and "1.877 ms" in out
    assert main(["info", str(bad)]) == 1
    assert "truncated" in capsys.readouterr().err  # errors go to stderr


def test_python_dash_m_is_the_same_command(edrs):
    good, _ = edrs
    result = subprocess.run([sys.executable, "-m", "ctxdask", "validate", "--json", str(good)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["product_id"] == "B10_013341_1010_XN_79S172W"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "validate" in capsys.readouterr().out


@pytest.mark.cluster
def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "D10_031011_1864_XI_06N201W.IMG: ok (2 warnings)" in out
    assert "lost-lines" in out and "done: results in" in out
    assert len(list((tmp_path / "demo" / "edr").glob("*.IMG"))) == 5  # one of them truncated
    # the batch ran: native calibration delivered, the truncated EDR failed validation
    assert "tracking database" in out and "file-size: truncated" in out
    assert list((tmp_path / "demo" / "results" / "images").glob("*/*.cal.cub"))


@pytest.mark.parametrize("suffix", [".cub", ".tif", ".zarr"])
def test_calibrate_command_writes_each_format(tmp_path, capsys, suffix):
    edr = make_edr(tmp_path / "B10_013341_1010_XN_79S172W.IMG", lines=64, line_samples=256)
    out = tmp_path / f"out{suffix}"
    assert main(["calibrate", str(edr), str(out), "--units", "rate", "--even-odd", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert out.exists() and "unity flat" in captured.err  # a warning: stderr
    assert "(DN/ms, counts per millisecond; flat field: unity; even/odd correction: applied)" in captured.out


def test_calibrate_command_rejects_lin_mode(tmp_path, capsys):
    edr = make_edr(tmp_path / "x.IMG", lines=16, line_samples=128, bit_mode="LIN3")
    assert main(["calibrate", str(edr), str(tmp_path / "out.cub")]) == 1
    assert "LIN3 is not supported" in capsys.readouterr().err
    assert not (tmp_path / "out.cub").exists()
