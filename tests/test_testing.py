"""The synthetic EDR writer is itself spec-conformant and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from ctxdask import pds3
from ctxdask.edr import EDRLayout
from ctxdask.testing import DARK_LEVELS, byte_checksum, make_edr, synthetic_lines


def test_label_layout_and_checksum(tmp_path):
    path = make_edr(tmp_path / "P01_001473_2479_XI_67N185W.IMG", lines=64, line_samples=4096, first_pixel=480)
    label = pds3.read_label(path)
    m = label.module
    assert m["PRODUCT_ID"] == "P01_001473_2479_XI_67N185W"
    assert m["RECORD_BYTES"] == 4096 and m["LABEL_RECORDS"] == 1 and m["^IMAGE"] == 2
    assert m["FILE_RECORDS"] * m["RECORD_BYTES"] == path.stat().st_size
    pixels = np.fromfile(path, dtype=np.uint8)[4096:]
    assert m["IMAGE"]["CHECKSUM"] == int(pixels.sum(dtype=np.uint64)) % 2**32


def test_small_widths_take_several_label_records(tmp_path):
    path = make_edr(tmp_path / "a.IMG", lines=16, line_samples=128, crlf=True)
    m = pds3.read_label(path).module
    assert m["LABEL_RECORDS"] > 1 and m["^IMAGE"] == m["LABEL_RECORDS"] + 1
    assert b"\r\n" in path.read_bytes()[:200]


def test_block_split_does_not_change_bytes(tmp_path):
    a = make_edr(tmp_path / "a.IMG", lines=100, line_samples=128, block_lines=7, lost_lines=[50])
    b = make_edr(tmp_path / "b.IMG", lines=100, line_samples=128, block_lines=100, lost_lines=[50])
    assert a.read_bytes()[-12800:] == b.read_bytes()[-12800:]


@pytest.mark.parametrize("summing, first_pixel", [(1, 0), (1, 480), (2, 0), (2, 1024)])
def test_scene_properties(summing, first_pixel):
    layout = EDRLayout.for_modes(256, summing, first_pixel)
    lines = synthetic_lines(layout, 0, 64, seed=2, lost_lines=[5], saturated_fraction=0.05)
    dark = lines[:, layout.dark_start : layout.dark_stop].astype(float)
    valid = np.ones(64, bool)
    valid[5] = False
    # summing 1: the A and B read-out channels alternate; summing 2 sums one of each into every sample
    levels = DARK_LEVELS if summing == 1 else (sum(DARK_LEVELS) // 2,) * 2
    assert abs(dark[valid, 0::2].mean() - levels[0]) < 0.5
    assert abs(dark[valid, 1::2].mean() - levels[1]) < 0.5
    assert not lines[5].any()
    active = lines[valid, layout.active_start : layout.active_stop]
    assert 0.03 < (active == 255).mean() < 0.07
    assert active.min() >= 1


def test_raw_override_and_checksum_helper(tmp_path):
    raw = np.arange(32 * 128, dtype=np.uint32).reshape(32, 128).astype(np.uint8)
    path = make_edr(tmp_path / "a.IMG", raw=raw)
    assert path.read_bytes()[-raw.size :] == raw.tobytes()
    assert pds3.read_label(path)["IMAGE"]["CHECKSUM"] == byte_checksum([raw[:10], raw[10:]])


def test_detached_pair(tmp_path):
    path = make_edr(tmp_path / "a.IMG", lines=16, line_samples=128, detached=True)
    assert path.stat().st_size == 16 * 128
    assert path.with_suffix(".LBL").read_text().startswith("PDS_VERSION_ID")
