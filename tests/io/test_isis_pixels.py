"""Tests of ISIS pixel types and special pixel handling."""

from __future__ import annotations

import numpy as np
import pytest

from ctxdask.io import isis_pixels as ip


def test_real_specials_are_the_isis_bit_patterns():
    bits = [np.array(v, dtype=np.float32).view(np.uint32) for v in (ip.NULL4, ip.LRS4, ip.LIS4, ip.HIS4, ip.HRS4)]
    assert [int(b) for b in bits] == [0xFF7FFFFB, 0xFF7FFFFC, 0xFF7FFFFD, 0xFF7FFFFE, 0xFF7FFFFF]
    assert ip.HRS4 == -np.finfo(np.float32).max


@pytest.mark.parametrize(
    "name, specials",
    [
        ("UnsignedByte", (0, 0, 0, 255, 255)),
        ("UnsignedWord", (0, 1, 2, 65534, 65535)),
        ("SignedWord", (-32768, -32767, -32766, -32765, -32764)),
    ],
)
def test_integer_specials_decode_to_nan(name, specials):
    pt = ip.pixel_type(name)
    assert pt.specials == specials
    stored = np.array(list(specials) + [pt.valid_min, pt.valid_max], dtype=pt.dtype)
    out = ip.decode_block(stored, pt)
    assert out.dtype == np.float32
    assert np.isnan(out[:5]).all()
    np.testing.assert_array_equal(out[5:], [pt.valid_min, pt.valid_max])


def test_real_decode_and_byte_order():
    pt = ip.pixel_type("real")
    stored = np.array([ip.NULL4, ip.LRS4, ip.LIS4, ip.HIS4, ip.HRS4, -np.inf, 1.5, -2e30], dtype=">f4")
    out = ip.decode_block(stored, pt)
    assert np.isnan(out[:6]).all()
    np.testing.assert_array_equal(out[6:], np.array([1.5, -2e30], dtype=np.float32))


def test_base_multiplier_scaling():
    pt = ip.pixel_type("UnsignedWord")
    out = ip.decode_block(np.array([0, 10, 65535], dtype=np.uint16), pt, base=100.0, multiplier=0.5, dtype=np.float64)
    assert np.isnan(out[0]) and out[1] == 105.0 and np.isnan(out[2])
    enc = ip.encode_block(np.array([105.0, np.nan]), pt, base=100.0, multiplier=0.5)
    np.testing.assert_array_equal(enc, [10, 0])


def test_encode_signed_word():
    pt = ip.pixel_type("SignedWord")
    out = ip.encode_block(np.array([np.nan, 1.0, 4080.4, 4080.6, 40000.0, -40000.0]), pt, "<")
    assert out.dtype == np.dtype("<i2")
    np.testing.assert_array_equal(out, [-32768, 1, 4080, 4081, -32764, -32767])


def test_encode_real_specials_and_big_endian():
    pt = ip.pixel_type("Real")
    out = ip.encode_block(np.array([np.nan, np.inf, -np.inf, 0.25], dtype=np.float32), pt, ">")
    assert out.dtype == np.dtype(">f4")
    assert out.view(">u4").tolist()[:3] == [0xFF7FFFFB, 0xFF7FFFFF, 0xFF7FFFFC]
    assert out[3] == 0.25


@pytest.mark.parametrize("order", ["<", ">"])
def test_float32_fast_path_equals_the_float64_path(order):
    """float32 -> Real skips the float64 round trip; every bit must be the same."""
    pt = ip.pixel_type("Real")
    rng = np.random.default_rng(4)
    values = rng.normal(0, 1e3, (64, 70)).astype(np.float32)
    values[3, :] = np.nan
    values[5, 7] = np.inf
    values[6, 8] = -np.inf
    values[7, 9] = np.float32(-3.4028235e38)  # below Real's valid range: Lrs
    values[8, 1] = np.finfo(np.float32).max  # above it: Hrs
    fast = ip.encode_block(values, pt, order)
    slow = ip.encode_block(values.astype(np.float64), pt, order)
    assert fast.dtype == slow.dtype == np.dtype(f"{order}f4")
    assert fast.view(f"{order}u4").tolist() == slow.view(f"{order}u4").tolist()
    # into a window of a wider buffer, as the tile writer does
    buffer = np.full((64, 80), 7.0, dtype=np.float32)
    ip.encode_block(values, pt, "<", out=buffer[:, :70])
    assert buffer[:, :70].view("<u4").tolist() == slow.astype("<f4").view("<u4").tolist()
    assert (buffer[:, 70:] == 7.0).all()


def test_unknown_pixel_type():
    with pytest.raises(KeyError, match="SignedInteger"):
        ip.pixel_type("SignedInteger")
