"""Tests of ctxdask.companding."""

from __future__ import annotations

import pickle
import re

import dask.array as da
import numpy as np
import pytest

from ctxdask import companding as cp
from ctxdask.exceptions import CTXError, UnsupportedModeError


def _sis_table(reference_dir) -> list[int]:
    """Parse the appendix table out of the SIS text, independently of the module."""
    text = (reference_dir / "seeds" / "ctx-edr-sis.txt").read_text()
    appendix = text[text.index("square root companding table ......") + 40 :]
    appendix = appendix[appendix.index("11-bit linear value") :]
    appendix = re.sub(r"July 2009 \d+", " ", appendix)
    numbers = [int(n) for n in re.findall(r"\b\d+\b", appendix.split("____")[-1])]
    raw, dn = numbers[0::2], numbers[1::2]
    assert raw == list(range(256))
    return dn


def test_table_matches_sis_appendix(reference_dir):
    assert cp.SQROOT_TABLE.tolist() == _sis_table(reference_dir)


def test_table_shape_and_invariants():
    t = cp.SQROOT_TABLE
    assert t.shape == (256,)
    assert t[0] == 1 and t[255] == 4080 == cp.SQROOT_MAX_DN
    assert np.all(np.diff(t.astype(int)) > 0)  # strictly increasing: invertible
    with pytest.raises(ValueError):
        t[3] = 0  # read-only
    with pytest.raises(ValueError):
        cp.SQROOT_INVERSE[3] = 0


def test_decompand_image_block():
    raw = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = cp.decompand_block(raw)
    assert out.dtype == np.float32 and out.shape == raw.shape
    assert np.isnan(out[0, 0])  # lost-packet fill -> Null
    np.testing.assert_array_equal(out.ravel()[1:], cp.SQROOT_TABLE[1:].astype(np.float32))
    assert raw[0, 0] == 0  # input untouched


def test_decompand_without_fill_gap_and_dark():
    raw = np.array([[0, 1, 9, 255]], dtype=np.uint8)
    expected = np.array([[1, 3, 20, 4080]], dtype=np.float32)
    np.testing.assert_array_equal(cp.decompand_block(raw, fill_gap=False), expected)
    dark = cp.decompand_dark_block(raw)
    assert dark.dtype == np.float32
    np.testing.assert_array_equal(dark, expected)


def test_decompand_accepts_other_integer_dtypes_in_range():
    out = cp.decompand_block(np.array([0, 2, 255], dtype=np.int32))
    np.testing.assert_array_equal(out[1:], [5.0, 4080.0])


@pytest.mark.parametrize(
    "bad, exc", [(np.array([256], dtype=np.int16), ValueError), (np.array([1.0]), TypeError)]
)
def test_decompand_refuses_non_raw_values(bad, exc):
    with pytest.raises(exc):
        cp.decompand_block(bad)


def test_round_trip_every_raw_value():
    raw = np.arange(256, dtype=np.uint8)
    dn = cp.decompand_block(raw)  # NaN at 0
    np.testing.assert_array_equal(cp.compand_block(dn), raw)
    np.testing.assert_array_equal(cp.compand_block(cp.decompand_dark_block(raw)), raw)
    # integer DN as stored in an ISIS SignedWord cube or the dark table
    np.testing.assert_array_equal(cp.compand_block(cp.SQROOT_TABLE.astype(np.int32)), raw)


def test_compand_exact_refuses_non_table_values():
    with pytest.raises(ValueError, match=r"\[19\]"):
        cp.compand_block(np.array([17, 19, 20]))
    with pytest.raises(ValueError, match="not integers"):
        cp.compand_block(np.array([17.5]))


def test_compand_nearest():
    assert cp.SQROOT_TABLE[8:11].tolist() == [17, 20, 22]
    dn = np.array([0, 18, 19, 21, 4079, 5000, np.nan])
    # 18 is nearer 17 (raw 8), 19 nearer 20 (raw 9); 21 ties 20/22 and goes to the lower raw;
    # out-of-range values clip; NaN is fill (raw 0)
    np.testing.assert_array_equal(cp.compand_block(dn, exact=False), [0, 8, 9, 9, 255, 255, 0])


def test_inverse_is_nearest_everywhere():
    dn = np.arange(cp.SQROOT_MAX_DN + 1)
    got = cp.SQROOT_TABLE[cp.SQROOT_INVERSE].astype(int)
    best = np.abs(cp.SQROOT_TABLE[None, :].astype(int) - dn[:, None]).min(axis=1)
    np.testing.assert_array_equal(np.abs(got - dn), best)


def test_check_bit_mode():
    assert cp.check_bit_mode(" sqroot ") is cp.SQROOT_TABLE
    for mode in ("LIN1", "LIN16", "LIN3CYC", "LIN16CYC"):
        with pytest.raises(UnsupportedModeError, match="linear companding") as info:
            cp.check_bit_mode(mode, "X.IMG")
        assert info.value.path == "X.IMG" and str(info.value).startswith("X.IMG: ")
        assert isinstance(info.value, CTXError) and isinstance(info.value, NotImplementedError)
    for mode in ("LIN17", "LIN0", "SQRT", ""):
        with pytest.raises(UnsupportedModeError, match="not a CTX companding mode"):
            cp.check_bit_mode(mode)


def test_error_pickles():
    try:
        cp.check_bit_mode("LIN2", "a.IMG")
    except UnsupportedModeError as e:
        back = pickle.loads(pickle.dumps(e))
        assert (back.path, back.reason) == (e.path, e.reason)


def test_block_functions_work_under_dask():
    assert pickle.loads(pickle.dumps(cp.decompand_block)) is cp.decompand_block
    raw = np.random.default_rng(1).integers(0, 256, (64, 40), dtype=np.uint8)
    lazy = da.from_array(raw, chunks=(16, 40)).map_blocks(cp.decompand_block, dtype=np.float32)
    np.testing.assert_array_equal(lazy.compute(), cp.decompand_block(raw))
