"""validate(): every check, its severity, and the report formats."""

from __future__ import annotations

import json

import dask
import pytest

import ctxdask
from ctxdask.testing import make_edr
from ctxdask.validation import line_ranges


def checks(report, severity=None):
    return {f.check for f in report.findings if severity is None or f.severity == severity}


@pytest.mark.parametrize("summing, first_pixel", [(1, 0), (1, 480), (2, 0), (2, 1024)])
def test_clean_edr_is_ok_with_matching_checksum(tmp_path, summing, first_pixel):
    path = make_edr(tmp_path / "a.IMG", lines=64, line_samples=256, summing=summing, first_pixel=first_pixel)
    report = ctxdask.validate(path, block_lines=16)  # several blocks
    assert report.ok and not report.warnings, str(report)
    checksum = next(f for f in report.findings if f.check == "checksum")
    assert checksum.severity == "info" and "matches" in checksum.message
    assert report.product_id == "B10_013341_1010_XN_79S172W"


def test_lost_lines_are_counted_with_ranges(tmp_path):
    path = make_edr(tmp_path / "a.IMG", lines=128, line_samples=256, lost_lines=[*range(10, 26), 40, 99, 100])
    report = ctxdask.validate(path, block_lines=32)  # runs cross block edges
    lost = next(f for f in report.findings if f.check == "lost-lines")
    assert lost.severity == "warning" and report.ok
    assert lost.details["count"] == 19
    assert lost.details["ranges"] == [[10, 25], [40, 40], [99, 100]]
    assert "10-25, 40, 99-100" in lost.message


def test_checksum_mismatch_warns_by_default_and_can_reject(tmp_path):
    path = make_edr(tmp_path / "a.IMG", lines=32, line_samples=128, checksum="wrong")
    report = ctxdask.validate(path)
    assert report.ok and "checksum" in checks(report, "warning")
    assert not ctxdask.validate(path, checksum="reject").ok
    with dask.config.set({"ctxdask.validate.checksum": "reject"}):
        rejected = ctxdask.validate(path)
    assert not rejected.ok and "CHECKSUM mismatch" in rejected.summary()


def test_data_quality_error_is_a_warning(tmp_path):
    report = ctxdask.validate(make_edr(tmp_path / "a.IMG", lines=32, line_samples=128, data_quality="ERROR"))
    assert report.ok and "data-quality" in checks(report, "warning")


def test_truncated_download_is_an_error(tmp_path):
    path = make_edr(tmp_path / "a.IMG", lines=64, line_samples=128)
    path.write_bytes(path.read_bytes()[:3000])
    report = ctxdask.validate(path)
    assert not report.ok and checks(report, "error") == {"file-size"}
    assert "truncated" in report.errors[0].message


def test_trailing_bytes_warn(tmp_path):
    path = make_edr(tmp_path / "a.IMG", lines=32, line_samples=128)
    with open(path, "ab") as f:
        f.write(b"\0" * 100)
    report = ctxdask.validate(path)
    assert report.ok and "file-size" in checks(report, "warning")


def test_width_not_multiple_of_16_and_lin_mode(tmp_path):
    path = make_edr(tmp_path / "a.IMG", lines=32, line_samples=120, bit_mode="LIN2")
    report = ctxdask.validate(path)
    assert not report.ok
    assert any("multiple of 16" in f.message for f in report.errors)
    assert "bit-mode" in checks(report, "warning")


@pytest.mark.parametrize("content, check", [(b"", "file"), (b"\x00\xff" * 3000, "label"),
                                            (b"INSTRUMENT_ID = HIRISE\nEND\n", "instrument")])
def test_unreadable_products_are_reports_not_exceptions(tmp_path, content, check):
    path = tmp_path / "x.IMG"
    path.write_bytes(content)
    report = ctxdask.validate(path)
    assert not report.ok and report.errors[0].check == check


def test_report_json_roundtrip(tmp_path):
    report = ctxdask.validate(make_edr(tmp_path / "a.IMG", lines=32, line_samples=128, lost_lines=[3]))
    data = json.loads(report.to_json())
    assert data["ok"] is True and data["path"].endswith("a.IMG")
    assert {f["check"] for f in data["findings"]} >= {"lost-lines", "checksum", "modes"}


def test_line_ranges():
    assert line_ranges([]) == []
    assert line_ranges([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]
