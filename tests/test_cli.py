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
    from ctxdask.commands import demo

    assert main(["demo", "--out", str(tmp_path / "demo"), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    lossy_id = next(pid for pid, *_, defects in demo.SAMPLES if "lost_lines" in defects)
    assert f"{lossy_id}.IMG: ok (2 warnings)" in out
    assert "lost-lines" in out and "done: results in" in out
    # the HTML report is written and its path printed, as the README says
    report = tmp_path / "demo" / "results" / "report" / "index.html"
    assert report.is_file() and f"HTML report {report}" in out
    # what was skipped, why, and where to look
    assert "skipped: " in out and "program not found" in out and "ctxdask doctor" in out
    # every QA reason of the lossy image, each on its own line; no message cut mid-word
    lossy = out[out.index(f"warn {lossy_id}"):].splitlines()
    assert any("lost_line_fraction" in line for line in lossy[:6]) and any("valid_fraction" in line for line in lossy[:6])
    assert "not measurable" not in out  # summing-2 images are not graded on the even/odd offset
    # the truncated EDR's message whole: in the validation list, the summary and the failed steps
    assert " ".join(out.split()).count("the download was probably interrupted, fetch the product again") >= 2
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


# -- the top-level guard: no traceback without --debug ------------------------------------------


def _raise_in_info(monkeypatch, exc):
    import ctxdask.commands.info as info

    def run(args):
        raise exc

    monkeypatch.setattr(info, "run", run)


def test_an_unexpected_error_is_one_line_with_the_debug_hint(monkeypatch, capsys):
    monkeypatch.delenv("CTXDASK_DEBUG", raising=False)
    _raise_in_info(monkeypatch, ZeroDivisionError("boom\n  in a second line"))
    assert main(["info", "x.IMG"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "ctxdask info: error: ZeroDivisionError: boom in a second line (run with --debug for the traceback)"]


@pytest.mark.parametrize("how", [["--debug", "info", "x.IMG"], ["info", "x.IMG", "--debug"], "env"])
def test_debug_shows_the_traceback(monkeypatch, how):
    _raise_in_info(monkeypatch, ZeroDivisionError("boom"))
    if how == "env":
        monkeypatch.setenv("CTXDASK_DEBUG", "1")
        how = ["info", "x.IMG"]
    with pytest.raises(ZeroDivisionError):
        main(how)


def test_an_os_error_names_its_file(monkeypatch, capsys):
    _raise_in_info(monkeypatch, OSError(28, "No space left on device", "/data/out.cub"))
    assert main(["info", "x.IMG"]) == 1
    assert capsys.readouterr().err == "ctxdask info: error: /data/out.cub: no space left on device\n"


def test_ctrl_c_exits_130(monkeypatch, capsys):
    _raise_in_info(monkeypatch, KeyboardInterrupt())
    assert main(["info", "x.IMG"]) == 130
    assert capsys.readouterr().err == "ctxdask info: interrupted\n"


def test_warnings_are_single_lines_on_stderr(monkeypatch, capsys):
    import warnings

    import ctxdask.commands.info as info

    def run(args):
        warnings.warn("careful:\n  the flat is old", UserWarning, stacklevel=1)
        print("result")
        return 0

    monkeypatch.setattr(info, "run", run)
    assert main(["info", "x.IMG"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "result\n" and captured.err == "warning: careful: the flat is old\n"


def test_calibrate_progress_and_warnings_go_to_stderr(tmp_path):
    """stdout holds the result line only: scripts can read it."""
    edr = make_edr(tmp_path / "B10_013341_1010_XN_79S172W.IMG", lines=64, line_samples=256)
    result = subprocess.run([sys.executable, "-m", "ctxdask", "calibrate", str(edr), str(tmp_path / "o.cub")],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "o.cub (I/F, unitless reflectance; flat field: unity;" in result.stdout
    assert "Sun-Mars distance" in result.stdout and "Completed" in result.stderr and "unity flat" in result.stderr


def test_a_command_that_cannot_be_imported_is_one_line(monkeypatch, capsys):
    import ctxdask.cli as cli

    monkeypatch.delenv("CTXDASK_DEBUG", raising=False)
    monkeypatch.setitem(cli._COMMANDS, "broken", ("ctxdask.commands.no_such_module", None, "a broken command"))
    assert main(["info", "x.IMG"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ctxdask: error: the commands cannot be loaded: ModuleNotFoundError: ")
    assert err.count("\n") == 1 and "CTXDASK_DEBUG=1" in err
