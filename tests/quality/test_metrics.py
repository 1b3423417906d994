"""Per-image quality metrics on synthetic EDRs with known defects, against numpy references."""

from __future__ import annotations

import json
import math

import dask
import numpy as np
import pytest
import xarray as xr

import ctxdask
from ctxdask.companding import SQROOT_INVERSE, SQROOT_TABLE
from ctxdask.edr import EDRLayout
from ctxdask.exceptions import UnsupportedModeError
from ctxdask.quality import QualityError, QualityMetrics, measure
from ctxdask.quality.metrics import hist_percentile
from ctxdask.testing import make_edr, synthetic_lines

LINES, WIDTH, CHUNK = 300, 512, 64
DN = SQROOT_TABLE.astype(np.float64)


def _layout(summing: int = 1, width: int = WIDTH) -> EDRLayout:
    return EDRLayout.for_modes(width, summing, 0)


def _raw(active: np.ndarray | None = None, *, summing: int = 1, dark: tuple[int, int] | None = None, seed: int = 0):
    """Synthetic raw lines with the active pixels (and optionally the dark pixels) replaced."""
    layout = _layout(summing)
    raw = synthetic_lines(layout, 0, LINES, seed=seed)
    if active is not None:
        raw[:, layout.active_start : layout.active_stop] = active
    if dark is not None:
        d = raw[:, layout.dark_start : layout.dark_stop]
        d[:, 0::2], d[:, 1::2] = dark
    return raw


def _measure(path, chunk: int = CHUNK, **kwargs) -> tuple[xr.Dataset, QualityMetrics]:
    ds = ctxdask.open_edr(path, chunks={"line": chunk})
    return ds, QualityMetrics.from_dataset(measure(ds, **kwargs))


def _compand(dn: np.ndarray) -> np.ndarray:
    return SQROOT_INVERSE[np.clip(np.rint(dn), 0, SQROOT_TABLE[-1]).astype(int)]


def test_lost_lines_counted_and_ranged(tmp_path):
    lost = [0, 1, 2, 70, 71, 299]
    path = make_edr(tmp_path / "lost.IMG", lines=LINES, line_samples=WIDTH, lost_lines=lost)
    ds, m = _measure(path)
    assert m.lost_line_count == 6 and m.lost_line_fraction == pytest.approx(6 / LINES)
    assert m.lost_line_ranges == ((0, 2), (70, 71), (299, 299))
    # the synthetic scene has no raw 0 elsewhere: the fill is exactly the lost lines
    assert m.fill_fraction == pytest.approx(6 / LINES)
    assert m.valid_fraction == pytest.approx(1 - 6 / LINES)
    # dark statistics leave the lost lines out
    keep = np.setdiff1d(np.arange(LINES), lost)
    dark = DN[ds.dark.values[keep]]
    assert m.dark_level_channel["A"] == pytest.approx(dark[:, 0::2].mean())
    assert m.dark_noise_channel["B"] == pytest.approx(dark[:, 1::2].std())
    flags = measure(ds)["lost"].values
    assert np.flatnonzero(flags).tolist() == lost


def test_saturation_and_fractions_add_up(tmp_path):
    rng = np.random.default_rng(1)
    active = rng.integers(1, 255, size=(LINES, _layout().samples), dtype=np.uint8)
    active[rng.random(active.shape) < 0.03] = 255
    active[5, :7] = 0  # isolated fill pixels, not a lost line
    path = make_edr(tmp_path / "sat.IMG", raw=_raw(active))
    _, m = _measure(path)
    assert m.saturated_fraction == pytest.approx((active == 255).mean())
    assert m.fill_fraction == pytest.approx(7 / active.size)
    assert m.lost_line_count == 0
    assert m.valid_fraction + m.fill_fraction + m.saturated_fraction == pytest.approx(1.0)
    assert m.histogram == tuple(np.bincount(active.ravel(), minlength=256))
    assert m.grade().status == "fail"
    assert any(r.startswith("saturated_fraction") for r in m.grade().reasons)


def test_dark_levels_and_noise_per_channel(tmp_path):
    raw = _raw()
    layout = _layout()
    rng = np.random.default_rng(2)
    d = raw[:, layout.dark_start : layout.dark_stop]
    d[:, 0::2] = 12 + rng.integers(-2, 3, size=d[:, 0::2].shape)
    d[:, 1::2] = 30
    _, m = _measure(make_edr(tmp_path / "dark.IMG", raw=raw))
    a, b = DN[d[:, 0::2]], DN[d[:, 1::2]]
    assert m.dark_level_channel == pytest.approx({"A": a.mean(), "B": b.mean()})
    assert m.dark_noise_channel["A"] == pytest.approx(a.std())
    assert m.dark_noise_channel["B"] == 0.0
    assert m.dark_noise == pytest.approx(a.std())
    assert m.dark_level == pytest.approx(DN[d].mean())


def test_summing_2_has_one_dark_channel_and_no_even_odd(tmp_path):
    layout = EDRLayout.for_modes(256, 2, 0)
    raw = synthetic_lines(layout, 0, 100)
    path = make_edr(tmp_path / "s2.IMG", raw=raw, summing=2)
    ds, m = _measure(path, chunk=32)
    assert list(m.dark_level_channel) == ["AB"]
    assert m.dark_level_channel["AB"] == pytest.approx(DN[ds.dark.values].mean())
    assert math.isnan(m.even_odd_offset)
    d = m.to_dict()
    assert d["even_odd_offset"] is None and d["dark_level_AB"] == pytest.approx(m.dark_level)
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize("even, odd", [(120, 131), (150, 140)])
def test_striping_offset_matches_ctxevenodd(tmp_path, even, odd):
    """The even/odd offset is ctxevenodd's, in DN: cross-checked with calibrate(even_odd=True)."""
    rng = np.random.default_rng(3)
    active = np.empty((LINES, _layout().samples), np.uint8)
    active[:, 0::2] = even + rng.integers(-3, 4, size=active[:, 0::2].shape)
    active[:, 1::2] = odd + rng.integers(-3, 4, size=active[:, 1::2].shape)
    path = make_edr(tmp_path / "stripes.IMG", raw=_raw(active, dark=(20, 20)))
    ds, m = _measure(path)
    values = DN[active] - DN[20]
    expected = (values[:, 1::2].mean() - values[:, 0::2].mean()) / 2
    assert m.even_odd_offset == pytest.approx(expected)
    assert abs(expected) > 20  # a real stripe, not noise
    with pytest.warns(ctxdask.CTXWarning):
        cal = ctxdask.calibrate(ds, units="rate", even_odd=True)
    assert float(cal.even_odd_offset) * cal.image.attrs["exposure_ms"] == pytest.approx(expected, rel=1e-6)  # float32 output
    assert m.even_odd_relative == pytest.approx(abs(expected) / m.signal)
    assert m.grade().status == "fail"


def _scene(rng) -> np.ndarray:
    """A textured scene in DN: shadows at 40 DN up to bright slopes at 1500 DN."""
    lines = np.arange(LINES)[:, None]
    cols = np.arange(_layout().samples)[None, :]
    return 770 + 730 * np.sin(lines / 11.0) * np.cos(cols / 7.0) + rng.normal(0, 5, (LINES, cols.size))


def test_haze_lowers_contrast_and_raises_the_floor(tmp_path):
    rng = np.random.default_rng(4)
    scene = _scene(rng)
    clear = _compand(scene)
    hazy = _compand(0.3 * scene + 900)  # washed out: less contrast, path radiance added
    metrics = {}
    for name, active in (("clear", clear), ("hazy", hazy)):
        _, metrics[name] = _measure(make_edr(tmp_path / f"{name}.IMG", raw=_raw(active, dark=(15, 15))))
    c, h = metrics["clear"], metrics["hazy"]
    assert h.contrast < 0.5 * c.contrast
    assert h.haze > 2 * c.haze
    assert c.grade().status == "pass" and h.grade().status != "pass"
    assert any(r.startswith(("haze", "contrast")) for r in h.grade().reasons)
    # exact definitions, against numpy's inverted-cdf percentiles of the valid DN
    dn = DN[hazy[(hazy > 0) & (hazy < 255)]]
    dark = DN[15]
    median = np.percentile(dn, 50, method="inverted_cdf") - dark
    p2, p98, p1 = np.percentile(dn, [2, 98, 1], method="inverted_cdf")
    assert h.signal == pytest.approx(median)
    assert h.contrast == pytest.approx((p98 - p2) / median)
    assert h.haze == pytest.approx((p1 - dark) / median)


def test_percentiles_follow_settings(tmp_path):
    path = make_edr(tmp_path / "p.IMG", lines=LINES, line_samples=WIDTH)
    ds = ctxdask.open_edr(path, chunks={"line": CHUNK})
    wide = QualityMetrics.from_dataset(measure(ds, contrast_percentiles=(1, 99)))
    with dask.config.set({"ctxdask.quality.contrast-percentiles": [10, 90]}):
        narrow = QualityMetrics.from_dataset(measure(ds))
    assert narrow.contrast < wide.contrast
    with pytest.raises(QualityError, match="percentiles"):
        measure(ds, contrast_percentiles=(90, 10))


def test_noise_estimate_and_snr(tmp_path):
    """A flat scene with Gaussian noise: the estimator recovers the DN noise, SNR scales with it."""
    level, dark = 700.0, 20
    results = {}
    for sigma in (15.0, 30.0):
        rng = np.random.default_rng(5)
        truth = np.full((LINES, _layout().samples), level)
        truth[150:] += 800  # a sharp edge: one line of huge differences, clipped out
        active = _compand(truth + rng.normal(0, sigma, truth.shape))
        _, m = _measure(make_edr(tmp_path / f"n{int(sigma)}.IMG", raw=_raw(active, dark=(dark, dark))))
        actual = np.mean([DN[active[:150]].std(), DN[active[150:]].std()])  # after companding
        assert m.noise == pytest.approx(actual, rel=0.1)
        assert m.snr == pytest.approx(m.signal / m.noise)
        results[sigma] = m
    assert results[30.0].snr == pytest.approx(results[15.0].snr / 2, rel=0.15)


def test_noise_ignores_scene_gradients_across_columns_and_even_odd(tmp_path):
    """Same-column line differences: a strong column pattern and striping add no noise."""
    cols = np.arange(_layout().samples)
    pattern = 400 + 300 * (cols % 7) + 50 * (cols % 2)
    active = np.broadcast_to(_compand(pattern), (LINES, cols.size))
    _, m = _measure(make_edr(tmp_path / "columns.IMG", raw=_raw(active, dark=(20, 20))))
    assert m.noise == 0.0
    assert m.snr == math.inf and m.to_dict()["snr"] is None


def test_histogram_percentile_is_numpy_inverted_cdf():
    rng = np.random.default_rng(6)
    values = rng.integers(0, 256, 999)
    hist = np.bincount(values, minlength=256)
    for q in (0, 0.5, 1, 2, 25, 50, 73.3, 98, 100):
        assert hist_percentile(hist, q) == np.percentile(values, q, method="inverted_cdf")
    assert math.isnan(hist_percentile(np.zeros(256), 50))


def test_metrics_do_not_depend_on_chunking(tmp_path):
    path = make_edr(tmp_path / "c.IMG", lines=LINES, line_samples=WIDTH, lost_lines=[63, 64, 65],
                    saturated_fraction=0.01)
    dicts = []
    for chunks in ({"line": 64}, {"line": 1000}, {"line": 7}, None):
        ds = ctxdask.open_edr(path, chunks=chunks)
        dicts.append(QualityMetrics.from_dataset(measure(ds)).to_dict())
    for other in dicts[1:]:
        assert other.keys() == dicts[0].keys()
        for key, value in dicts[0].items():
            # line pairs that straddle two blocks do not count towards the noise
            rel = 2e-2 if key in ("noise", "snr") else 1e-9
            assert other[key] == (pytest.approx(value, rel=rel) if isinstance(value, float) else value), key


def test_to_dict_is_plain_json(tmp_path):
    path = make_edr(tmp_path / "j.IMG", lines=LINES, line_samples=WIDTH, lost_lines=[9])
    _, m = _measure(path)
    d = m.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["lost_line_ranges"] == [[9, 9]] and len(d["histogram"]) == 256
    assert {"dark_level_A", "dark_level_B", "dark_noise_A", "dark_noise_B", "snr", "haze"} <= d.keys()
    assert all(type(v) in (int, float, str, list) for v in d.values())


def test_refuses_calibrated_and_lin_images(tmp_path):
    path = make_edr(tmp_path / "r.IMG", lines=64, line_samples=WIDTH)
    ds = ctxdask.open_edr(path)
    with pytest.raises(QualityError, match="raw 8-bit"):
        measure(ctxdask.decompand(ds))
    with pytest.raises(QualityError, match="'image' and 'dark'"):
        measure(ds.drop_vars("dark"))
    lin = make_edr(tmp_path / "lin.IMG", lines=64, line_samples=WIDTH, bit_mode="LIN4")
    with pytest.raises(UnsupportedModeError):
        measure(ctxdask.open_edr(lin, allow_unsupported_mode=True))


# -- laziness and one pass -----------------------------------------------------------------


@pytest.mark.parametrize("thumbnail_from", ["raw", "calibrated"])
def test_one_pass_with_the_calibration_write(tmp_path, raw_reads, compute_counter, thumbnail_from):
    path = make_edr(tmp_path / "one.IMG", lines=LINES, line_samples=WIDTH, lost_lines=[100])
    ds = ctxdask.open_edr(path, chunks={"line": CHUNK})
    with pytest.warns(ctxdask.CTXWarning):
        cal = ctxdask.calibrate(ds, units="rate")
    qa = measure(ds, image=cal.image if thumbnail_from == "calibrated" else None, thumbnail_size=40)
    write = cal.to_zarr(tmp_path / "cal.zarr", compute=False, consolidated=False)
    repr(qa), QualityMetrics  # building and printing computes nothing
    assert compute_counter.calls == 0 and raw_reads == []
    _, computed = dask.compute(write, qa)
    assert compute_counter.calls == 1
    chunks = -(-LINES // CHUNK)
    starts = [r.start for r in raw_reads]
    assert len(starts) == chunks and len(set(starts)) == chunks  # each line block read once
    m = QualityMetrics.from_dataset(computed)
    assert m.lost_line_ranges == ((100, 100),)
    back = xr.open_zarr(tmp_path / "cal.zarr", consolidated=False)
    assert np.isnan(back.image.values[100]).all()
    assert computed.thumbnail.attrs["calibration"] == ("rate" if thumbnail_from == "calibrated" else "counts")


def test_measure_alone_reads_each_block_once(tmp_path, raw_reads):
    path = make_edr(tmp_path / "alone.IMG", lines=LINES, line_samples=WIDTH)
    qa = measure(ctxdask.open_edr(path, chunks={"line": CHUNK}))
    qa.compute(scheduler="sync")
    starts = [r.start for r in raw_reads]
    assert len(starts) == len(set(starts)) == -(-LINES // CHUNK)
