"""Structural checks: every entry point refuses what cannot be right, naming the file and the problem.

One test per class of problem, each over several examples and every entry point
that reads a label: ``open_edr``, the xarray engine, ``ctxdask info``,
``ctxdask calibrate`` and ``validate`` (which must report the same problem as
an error).
"""

from __future__ import annotations

import re

import pytest
import xarray as xr

import ctxdask
from ctxdask.cli import main
from ctxdask.exceptions import CTXError, LabelError, LabelInconsistentError, NotCTXError, TruncatedFileError
from ctxdask.testing import make_edr, rewrite_label

ENTRY_POINTS = ["open_edr", "xarray", "info", "calibrate", "validate"]


def _set(key: str, value: str):
    """An edit that gives the first ``key`` a new value (top level or in the IMAGE object)."""

    def edit(text: str) -> str:
        new, count = re.subn(rf"(?m)^(\s*{re.escape(key)}\s*=\s*)[^\r\n]*", lambda m: m.group(1) + value, text, count=1)
        assert count == 1, key
        return new

    return edit


def _insert_after(key: str, line: str):
    """An edit that adds ``line`` after the first ``key`` statement."""

    def edit(text: str) -> str:
        new, count = re.subn(rf"(?m)^(\s*{re.escape(key)}\s*=[^\r\n]*\r?\n)", lambda m: m.group(1) + line + "\n",
                             text, count=1)
        assert count == 1, key
        return new

    return edit


def assert_refused(path, entry, error, words, tmp_path, capsys):
    """Every entry point refuses ``path`` with one message naming the file and ``words``."""
    path = str(path)
    if entry == "validate":
        report = ctxdask.validate(path)
        assert report.path == path and not report.ok, str(report)
        assert any(re.search(words, f.message) for f in report.errors), str(report)
        return
    if entry in ("info", "calibrate"):
        argv = ["info", path] if entry == "info" else ["calibrate", path, str(tmp_path / "out.cub"), "--no-progress"]
        assert main(argv) == 1
        captured = capsys.readouterr()
        text = captured.out + captured.err
        assert "Traceback" not in text
        line = next(row for row in text.splitlines() if "error" in row)
        assert path in line and re.search(words, line), text
        return
    with pytest.raises(error) as info:
        if entry == "open_edr":
            ctxdask.open_edr(path)
        else:
            xr.open_dataset(path, engine="ctx")
    assert isinstance(info.value, CTXError)
    message = str(info.value)
    assert path in message and re.search(words, message), message
    assert "\n" not in message


@pytest.fixture
def edr(tmp_path):
    return make_edr(tmp_path / "B10_013341_1010_XN_79S172W.IMG", lines=32, line_samples=256)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "edit",
    [
        _set("RECORD_BYTES", "240"),  # LINE_SAMPLES 256, records of 240
        _set("LINE_SAMPLES", "240"),  # the data and RECORD_BYTES say 256
    ],
    ids=["record-bytes", "line-samples"],
)
def test_line_samples_must_agree_with_the_records(edr, entry, edit, tmp_path, capsys):
    rewrite_label(edr, edit)
    assert_refused(edr, entry, LabelInconsistentError, r"LINE_SAMPLES = \d+ disagrees with RECORD_BYTES", tmp_path,
                   capsys)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "summing, first_pixel, width, label_edit",
    [
        (1, 0, 5056, _set("SAMPLING_FACTOR", "2")),  # summing 2 claimed on a summing-1 width
        (1, 480, 4096, _set("SAMPLE_FIRST_PIXEL", "1480")),  # runs off the end of the CCD
        (2, 480, 2048, _set("SAMPLE_FIRST_PIXEL", "1480")),
        (1, 480, 4096, _set("SAMPLE_FIRST_PIXEL", "20")),  # inside the prefix ISIS subtracts
    ],
    ids=["summing-2-on-summing-1-width", "first-pixel-beyond-ccd", "summed-beyond-ccd", "first-pixel-in-prefix"],
)
def test_pixels_must_fit_on_the_ccd(tmp_path, entry, summing, first_pixel, width, label_edit, capsys):
    path = make_edr(tmp_path / "x.IMG", lines=16, line_samples=width, summing=summing, first_pixel=first_pixel)
    rewrite_label(path, label_edit)
    assert_refused(path, entry, LabelInconsistentError, r"CCD", tmp_path, capsys)


def _image_byte(path) -> int:
    """The 1-based byte number where the image of an attached-label EDR starts."""
    label = ctxdask.read_label(path)
    return label["LABEL_RECORDS"] * label["RECORD_BYTES"] + 1


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("shift", [lambda b: b - 1, lambda b: b + 43, lambda b: 1],
                         ids=["zero-based", "mid-record", "inside-label"])
def test_byte_pointer_must_start_a_record_after_the_label(edr, entry, shift, tmp_path, capsys):
    # a 0-based byte number (what PDS's 1-based count is not) shifts every pixel by one
    rewrite_label(edr, _set("^IMAGE", f"{shift(_image_byte(edr))} <BYTES>"))
    assert_refused(edr, entry, LabelInconsistentError, r"\^IMAGE = .* puts the image at byte", tmp_path, capsys)


def test_byte_pointer_on_a_record_boundary_opens(edr):
    reference = ctxdask.open_edr(edr).image.values
    rewrite_label(edr, _set("^IMAGE", f"{_image_byte(edr)} <BYTES>"))
    assert (ctxdask.open_edr(edr).image.values == reference).all()
    assert ctxdask.validate(edr).ok


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "edit, keyword",
    [
        (_insert_after("LINES", "  LINES = 16"), "IMAGE.LINES"),
        (_insert_after("SAMPLING_FACTOR", "SAMPLING_FACTOR = 2"), "SAMPLING_FACTOR"),
        (_insert_after("START_TIME", "START_TIME = 2010-01-01T00:00:00"), "START_TIME"),
    ],
    ids=["lines", "summing", "start-time"],
)
def test_a_keyword_given_twice_must_not_disagree(edr, entry, edit, keyword, tmp_path, capsys):
    rewrite_label(edr, edit)
    assert_refused(edr, entry, LabelInconsistentError, rf"{re.escape(keyword)} is given 2 times with different values",
                   tmp_path, capsys)


def test_a_keyword_repeated_with_the_same_value_is_a_warning(edr):
    rewrite_label(edr, _insert_after("LINES", "  LINES = 32"))
    assert ctxdask.open_edr(edr).sizes["line"] == 32
    report = ctxdask.validate(edr)
    assert report.ok and any("IMAGE.LINES is given 2 times" in f.message for f in report.warnings)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("detached", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("extra_records", [1, 1000])
def test_file_records_must_be_in_the_file(tmp_path, entry, detached, extra_records, capsys):
    path = make_edr(tmp_path / "x.IMG", lines=32, line_samples=256, detached=detached)
    label = path.with_suffix(".LBL") if detached else path
    records = ctxdask.read_label(label)["FILE_RECORDS"] + extra_records
    rewrite_label(label, _set("FILE_RECORDS", str(records)))
    # the data file is the one named: with a detached label, the .IMG beside it
    assert_refused(label, entry, TruncatedFileError, r"FILE_RECORDS = .* beyond the end of the file", tmp_path,
                   capsys)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_more_records_than_the_label_declares(edr, entry, tmp_path, capsys):
    with open(edr, "ab") as f:
        f.write(bytes(256 * 4))
    assert_refused(edr, entry, LabelInconsistentError, r"more records than the label declares", tmp_path, capsys)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("data_set", ['"MRO-M-HIRISE-2-EDR-V1.0"', '"MGS-M-MOC-2-EDR-V1.0"', "MRO-M-CTX-2-EDR-L0-V1"])
def test_the_data_set_must_be_the_ctx_edr_data_set(edr, entry, data_set, tmp_path, capsys):
    rewrite_label(edr, _set("DATA_SET_ID", data_set))
    if "CTX" in data_set:
        assert_refused(edr, entry, LabelInconsistentError, r"DATA_SET_ID is .*; expected MRO-M-CTX-2-EDR-L0-V1\.0",
                       tmp_path, capsys)
    else:
        assert_refused(edr, entry, NotCTXError, r"INSTRUMENT_ID is CTX but DATA_SET_ID .* another instrument",
                       tmp_path, capsys)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "key, value, words",
    [
        ("START_TIME", "2009-13-01T00:38:16.057", "START_TIME is .*not a UTC time on the calendar"),
        ("START_TIME", "2009-06-01T99:38:16.057", "START_TIME is .*not a UTC time on the calendar"),
        ("START_TIME", "0000-06-01T00:38:16.057", "START_TIME is .*not a UTC time on the calendar"),
        ("START_TIME", "2009-02-30T00:38:16.057", "START_TIME is .*not a UTC time on the calendar"),
        ("START_TIME", "1999-06-01T00:38:16.057", "START_TIME 1999-06-01T00:38:16.057000 is impossible for CTX"),
        ("START_TIME", "2099-06-01T00:38:16.057", "START_TIME 2099-06-01T00:38:16.057000 is impossible for CTX"),
        ("STOP_TIME", "2009-06-01T00:38:76.000", "STOP_TIME is .*not a UTC time on the calendar"),
        ("PRODUCT_CREATION_TIME", "2026-00-01T00:00:00", "PRODUCT_CREATION_TIME is .*not a UTC time"),
    ],
    ids=["month-13", "hour-99", "year-0", "february-30", "before-launch", "after-ephemeris", "stop-second-76",
         "creation-month-0"],
)
def test_label_times_must_be_possible(edr, entry, key, value, words, tmp_path, capsys):
    rewrite_label(edr, _set(key, value))
    assert_refused(edr, entry, LabelError, words, tmp_path, capsys)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("detached", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize(
    "target",
    ["/etc/passwd", "../secret.IMG", "sub/x.IMG", "..", "C:x.IMG", "http://127.0.0.1:9/x.IMG", "..\\\\x.IMG"],
    ids=["absolute", "parent", "subfolder", "dotdot", "drive", "url", "backslash"],
)
def test_pointers_stay_in_the_products_folder(tmp_path, entry, detached, target, capsys):
    folder = tmp_path / "product"
    path = make_edr(folder / "x.IMG", lines=16, line_samples=256, detached=detached)
    # a file the label must not be able to make ctxdask read, with the right size to pass every other check
    (tmp_path / "secret.IMG").write_bytes(path.read_bytes())
    label = path.with_suffix(".LBL") if detached else path
    record = "1" if detached else "2"
    rewrite_label(label, _set("^IMAGE", f'("{target}", {record})'))
    assert_refused(label, entry, LabelError, r"\^IMAGE names the file .*label's own folder", tmp_path, capsys)


@pytest.mark.parametrize("summing, first_pixel, width", [(1, 0, 5056), (1, 480, 4096), (2, 0, 2528), (2, 480, 2048)])
@pytest.mark.parametrize("detached", [False, True], ids=["attached", "detached"])
def test_products_as_flown_open_and_validate(tmp_path, summing, first_pixel, width, detached):
    path = make_edr(tmp_path / "x.IMG", lines=32, line_samples=width, summing=summing, first_pixel=first_pixel,
                    detached=detached)
    ds = ctxdask.open_edr(path)
    assert ds.sizes["line"] == 32
    report = ctxdask.validate(path)
    assert report.ok and not report.warnings, str(report)


def test_real_labels_pass_every_structural_check(reference_dir, tmp_path):
    from ctxdask.testing import edr_from_label

    for label in sorted((reference_dir / "labels").glob("*_*_*_*.lbl")):
        if "isis" in label.name:
            continue
        path = edr_from_label(label, tmp_path / f"{label.stem}.IMG", lines=64)
        product = ctxdask.open_edr(path)
        assert product.sizes["line"] == 64
        report = ctxdask.validate(path)
        assert report.ok and not report.warnings, str(report)
