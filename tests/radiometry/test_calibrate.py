"""Calibration against an independent numpy reference of ISIS mroctx2isis + ctxcal + ctxevenodd.

The reference below reads the raw bytes with ``np.fromfile``, splits each line
with its own copy of the DESIGN.md section 4 layout table, and applies the
ctxcal formulas in float64 in the most literal way, one image at a time. Only
the SQROOT table itself is shared with the package (it is checked against the
SIS in ``test_companding.py``).
"""

from __future__ import annotations

import pathlib
import re
import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from dask.core import flatten

import ctxdask
from ctxdask.companding import SQROOT_TABLE, compand_block
from ctxdask.exceptions import CTXError, UnityFlatWarning, UnsupportedModeError
from ctxdask.radiometry import solar
from ctxdask.radiometry.calibrate import CalibrationError, calibrate, decompand, even_odd_correct
from ctxdask.radiometry.flat import FlatError
from ctxdask.testing import make_edr

LINES = 300
CHUNK = 64  # 300 lines: four full chunks and a short one
LOST = (7, 150)
#: (summing, first pixel) -> (prefix bytes, first dark column, stop dark column, suffix bytes)
REF_LAYOUT = {(1, False): (38, 14, 38, 18), (1, True): (16, 0, 16, 0), (2, False): (19, 7, 19, 9), (2, True): (8, 0, 8, 0)}
MODES = [(1, 0), (1, 480), (2, 0), (2, 480)]
MODE_IDS = ["sum1-fp0", "sum1-fp480", "sum2-fp0", "sum2-fp480"]
EXPOSURE_MS = 1.877
DISTANCE_KM = 2.2e8  # a fixed Sun-Mars distance, so the reference needs no ephemeris


# -- the reference -----------------------------------------------------------------------------


def ref_raw(path: pathlib.Path, lines: int, line_samples: int) -> np.ndarray:
    """The raw image: the last ``lines x line_samples`` bytes of an attached-label EDR."""
    data = np.fromfile(path, dtype=np.uint8)
    return data[data.size - lines * line_samples :].reshape(lines, line_samples)


def ref_split(raw: np.ndarray, summing: int, first_pixel: int) -> tuple[np.ndarray, np.ndarray]:
    """(active raw pixels, dark raw pixels) of each line."""
    prefix, d0, d1, suffix = REF_LAYOUT[(summing, first_pixel > 0)]
    return raw[:, prefix : raw.shape[1] - suffix], raw[:, d0:d1]


def ref_decompand(raw: np.ndarray, summing: int, first_pixel: int) -> tuple[np.ndarray, np.ndarray]:
    """Decompanded (image, dark) in float64; image raw 0 is NaN, dark raw 0 maps to 1."""
    image_raw, dark_raw = ref_split(raw, summing, first_pixel)
    image = SQROOT_TABLE[image_raw].astype(np.float64)
    image[image_raw == 0] = np.nan
    return image, SQROOT_TABLE[dark_raw].astype(np.float64)


def ref_calibrate(
    raw: np.ndarray,
    summing: int,
    first_pixel: int,
    *,
    flat: np.ndarray | None = None,
    units: str = "iof",
    distance_km: float = DISTANCE_KM,
    exposure_ms: float = EXPOSURE_MS,
    even_odd: bool = False,
) -> np.ndarray:
    """ctxcal (+ ctxevenodd) of a raw EDR image, float32."""
    image, dark = ref_decompand(raw, summing, first_pixel)
    lines, n = image.shape
    if summing == 1:
        a = dark[:, 0::2].mean(axis=1)  # A channel: even-index dark pixels
        b = dark[:, 1::2].mean(axis=1)
        line_dark = np.empty((lines, n))
        line_dark[:, 0::2] = a[:, None]
        line_dark[:, 1::2] = b[:, None]
    else:
        line_dark = np.repeat(dark.mean(axis=1)[:, None], n, axis=1)
    first = first_pixel - 38 if first_pixel > 0 else 0
    f = np.ones(6000) if flat is None else np.asarray(flat, dtype=np.float64)
    i = np.arange(n)
    flat_row = f[i + first] if summing == 1 else (f[2 * i + first] + f[2 * i + first + 1]) / 2
    if units == "rate":
        out = (image - line_dark) / (exposure_ms * flat_row)
    else:
        w1 = 3660.5 * (2.07e8) ** 2 / distance_km**2
        k = 1 / (exposure_ms * w1)
        out = ((image - line_dark) / flat_row) * k
    out = out.astype(np.float32)
    if even_odd:
        v = out.astype(np.float64)
        even, odd = v[:, 0::2], v[:, 1::2]
        offset = (odd[np.isfinite(odd)].mean() - even[np.isfinite(even)].mean()) / 2
        v[:, 0::2] += offset
        v[:, 1::2] -= offset
        out = v.astype(np.float32)
    return out


# -- fixtures ----------------------------------------------------------------------------------


def _line_samples(summing: int, first_pixel: int) -> int:
    return 256


@pytest.fixture(scope="module")
def edrs(tmp_path_factory) -> dict[tuple[int, int], pathlib.Path]:
    """One small EDR per summing/first-pixel mode, with lost lines and saturated pixels."""
    root = tmp_path_factory.mktemp("edrs")
    return {
        (s, fp): make_edr(
            root / f"s{s}_fp{fp}.IMG", lines=LINES, line_samples=_line_samples(s, fp), summing=s, first_pixel=fp,
            lost_lines=LOST, saturated_fraction=0.01, exposure_ms=EXPOSURE_MS, seed=s * 1000 + fp,
        )
        for s, fp in MODES
    }


@pytest.fixture(scope="module")
def flat_values() -> np.ndarray:
    """A 5000-value detector flat with structure at the pixel scale (float32-exact)."""
    rng = np.random.default_rng(7)
    return (0.8 + 0.4 * rng.random(5000)).astype(np.float32).astype(np.float64)


def _open(path, **kw) -> xr.Dataset:
    return ctxdask.open_edr(path, chunks={"line": CHUNK}, **kw)


def _raw(path, summing, first_pixel) -> np.ndarray:
    return ref_raw(path, LINES, _line_samples(summing, first_pixel))


def _assert_matches(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    # float64 arithmetic in a different but equivalent order: equal to float32 rounding
    np.testing.assert_allclose(got, expected, rtol=2e-7, atol=0, equal_nan=True)


# -- decompanding and calibration against the reference ----------------------------------------


@pytest.mark.parametrize(("summing", "first_pixel"), MODES, ids=MODE_IDS)
def test_decompand_matches_reference(edrs, summing, first_pixel):
    path = edrs[summing, first_pixel]
    ds = decompand(_open(path))
    image, dark = ref_decompand(_raw(path, summing, first_pixel), summing, first_pixel)
    assert ds.image.dtype == ds.dark.dtype == np.float32
    np.testing.assert_array_equal(ds.image.values, image.astype(np.float32))
    np.testing.assert_array_equal(ds.dark.values, dark.astype(np.float32))
    assert np.isnan(ds.image.values[list(LOST)]).all()
    assert ds.image.attrs["calibration"] == "counts" and ds.image.attrs["units"] == "DN"


def test_decompand_dark_zero_is_one_image_zero_is_nan(tmp_path):
    """A raw 0 is lost-packet fill in the image but a real (low) reading in the dark pixels."""
    raw = np.full((8, 256), 100, dtype=np.uint8)
    raw[:, 14:38] = 20
    raw[2, 20] = 0  # dark pixel
    raw[3, 100] = 0  # image pixel
    path = make_edr(tmp_path / "z.IMG", raw=raw)
    ds = decompand(ctxdask.open_edr(path))
    assert ds.dark.values[2, 20 - 14] == 1.0
    assert np.isnan(ds.image.values[3, 100 - 38])
    assert np.isfinite(ds.image.values).sum() == 8 * 200 - 1


@pytest.mark.parametrize("units", ["iof", "rate"])
@pytest.mark.parametrize("with_flat", [False, True], ids=["unity", "flat"])
@pytest.mark.parametrize(("summing", "first_pixel"), MODES, ids=MODE_IDS)
def test_calibrate_matches_reference(edrs, flat_values, summing, first_pixel, with_flat, units):
    path = edrs[summing, first_pixel]
    flat = flat_values if with_flat else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnityFlatWarning)
        out = calibrate(_open(path), flat=flat, units=units, sun_distance_km=DISTANCE_KM)
    expected = ref_calibrate(_raw(path, summing, first_pixel), summing, first_pixel, flat=flat, units=units)
    _assert_matches(out.image.values, expected)
    assert np.isnan(out.image.values[list(LOST)]).all()


@pytest.mark.parametrize("units", ["iof", "rate"])
@pytest.mark.parametrize("first_pixel", [0, 480])
def test_even_odd_matches_reference(edrs, flat_values, first_pixel, units):
    path = edrs[1, first_pixel]
    out = calibrate(_open(path), flat=flat_values, units=units, even_odd=True, sun_distance_km=DISTANCE_KM)
    raw = _raw(path, 1, first_pixel)
    expected = ref_calibrate(raw, 1, first_pixel, flat=flat_values, units=units, even_odd=True)
    _assert_matches(out.image.values, expected)
    before = ref_calibrate(raw, 1, first_pixel, flat=flat_values, units=units).astype(np.float64)
    offset = (np.nanmean(before[:, 1::2]) - np.nanmean(before[:, 0::2])) / 2
    assert float(out.even_odd_offset) == pytest.approx(offset, rel=1e-9)
    assert offset != 0  # the synthetic A/B dark levels differ, so the test can fail
    assert out.image.attrs["even_odd"] == "applied"
    assert "ctxevenodd" in out.image.attrs["history"].splitlines()[-1]


def test_even_odd_correct_on_its_own_equals_option(edrs, flat_values):
    ds = _open(edrs[1, 0])
    a = calibrate(ds, flat=flat_values, even_odd=True, sun_distance_km=DISTANCE_KM)
    b = even_odd_correct(calibrate(ds, flat=flat_values, sun_distance_km=DISTANCE_KM))
    np.testing.assert_array_equal(a.image.values, b.image.values)


@pytest.mark.parametrize("even_odd", [False, True])
def test_numpy_backed_dataset_gives_the_same(edrs, flat_values, even_odd):
    """``chunks=None`` (no dask) takes the eager path of the same block functions."""
    path = edrs[1, 0]
    lazy = calibrate(_open(path), flat=flat_values, even_odd=even_odd, sun_distance_km=DISTANCE_KM)
    eager = calibrate(ctxdask.open_edr(path, chunks=None), flat=flat_values, even_odd=even_odd,
                      sun_distance_km=DISTANCE_KM)
    np.testing.assert_array_equal(lazy.image.values, eager.image.values)


@pytest.mark.parametrize("summing", [1, 2])
def test_any_chunking_gives_the_same(edrs, flat_values, summing):
    """Blocks split along samples, and a dark chunked unlike the image, give the reference values."""
    path = edrs[summing, 0]
    expected = ref_calibrate(_raw(path, summing, 0), summing, 0, flat=flat_values)
    ds = _open(path).chunk({"sample": 37})
    ds = ds.assign(dark=ds.dark.chunk({"line": 19}))
    out = calibrate(ds, flat=flat_values, sun_distance_km=DISTANCE_KM)
    assert out.image.chunks == ds.image.chunks
    _assert_matches(out.image.values, expected)


@pytest.mark.parametrize("lazy", [True, False])
def test_empty_line_selection_calibrates_to_an_empty_image(edrs, flat_values, lazy):
    ds = _open(edrs[1, 0]).isel(line=slice(0, 0))
    out = calibrate(ds if lazy else ds.compute(), flat=flat_values, sun_distance_km=DISTANCE_KM)
    assert out.image.values.shape == (0, ds.sizes["sample"]) and out.image.dtype == np.float32


def test_calibrated_block_is_one_task_after_the_slices_of_its_read(edrs, flat_values):
    """Few scheduler round trips per block: read -> image/dark slices -> calibration (+ store)."""
    ds = _open(edrs[1, 0])
    image = calibrate(ds, flat=flat_values, sun_distance_km=DISTANCE_KM).image.data
    (graph,) = dask.optimize(image)
    graph = dict(graph.__dask_graph__())
    read_layer = next(k[0] for k in graph if isinstance(k, tuple) and k[0].startswith("ctx-lines"))

    def depth(key):
        if isinstance(key, tuple) and key[0] == read_layer:
            return 0
        deps = [d for d in graph[key].dependencies if d in graph]
        reads = [depth(d) for d in deps]
        reads = [r for r in reads if r is not None]
        return 1 + max(reads) if reads else None

    assert {depth(k) for k in flatten(image.__dask_keys__())} == {2}


@pytest.mark.parametrize("columns", [slice(1, None), [0, 1, 3, 4, 7, 10, 199]], ids=["odd-start", "irregular"])
@pytest.mark.parametrize("summing", [1, 2])
def test_sample_subsets_keep_their_channel_and_flat(edrs, flat_values, summing, columns):
    """A subset keeps each column's A/B channel (from ``sample``) and flat pixel (``detector_pixel``)."""
    path = edrs[summing, 0]
    full = ref_calibrate(_raw(path, summing, 0), summing, 0, flat=flat_values)
    out = calibrate(_open(path).isel(sample=columns), flat=flat_values, sun_distance_km=DISTANCE_KM)
    _assert_matches(out.image.values, full[:, columns])


def test_calibrate_decompanded_input_equals_raw_input(edrs, flat_values):
    ds = _open(edrs[2, 0])
    a = calibrate(ds, flat=flat_values, sun_distance_km=DISTANCE_KM)
    b = calibrate(decompand(ds), flat=flat_values, sun_distance_km=DISTANCE_KM)
    np.testing.assert_array_equal(a.image.values, b.image.values)
    assert a.image.attrs["history"] == b.image.attrs["history"]


def test_default_sun_distance_is_the_ephemeris_value(edrs):
    ds = _open(edrs[1, 0])
    with pytest.warns(UnityFlatWarning):
        out = calibrate(ds)
    d = solar.sun_mars_distance(ds.attrs["START_TIME"]).km
    attrs = out.image.attrs
    assert attrs["sun_distance_km"] == pytest.approx(d, rel=1e-12)
    assert 2.0e8 < attrs["sun_distance_km"] < 2.5e8  # Mars: 1.38-1.67 AU
    expected = ref_calibrate(_raw(edrs[1, 0], 1, 0), 1, 0, distance_km=d)
    _assert_matches(out.image.values, expected)


# -- flats from files --------------------------------------------------------------------------


def _write_geotiff(path, values):
    import rasterio

    with rasterio.open(path, "w", driver="GTiff", height=1, width=values.size, count=1, dtype="float32") as dst:
        dst.write(values.astype(np.float32)[None, None, :])
    return path


def _write_isis_flat(path, values, attrs):
    from ctxdask.io.isis_write import write_isis

    ds = xr.Dataset({"image": (("line", "sample"), values.astype(np.float32)[None, :], {"calibration": "rate"})},
                    attrs=attrs)
    return write_isis(ds, path)


def _write_handmade_cube(path, values):
    """A minimal BandSequential Real cube, like ISISDATA's ctxFlat_000N.cub (1 line)."""
    label = (
        "Object = IsisCube\n  Object = Core\n    StartByte = 65537\n    Format = BandSequential\n"
        f"    Group = Dimensions\n      Samples = {values.size}\n      Lines = 1\n      Bands = 1\n    End_Group\n"
        "    Group = Pixels\n      Type = Real\n      ByteOrder = Lsb\n      Base = 0.0\n      Multiplier = 1.0\n"
        "    End_Group\n  End_Object\nEnd_Object\nObject = Label\n  Bytes = 65536\nEnd_Object\nEnd\n"
    ).encode()
    path.write_bytes(label.ljust(65536, b"\0") + values.astype("<f4").tobytes())
    return path


@pytest.mark.parametrize("kind", ["npy", "tif", "cub-write_isis", "cub-handmade"])
def test_flat_from_file(edrs, flat_values, tmp_path, kind):
    path = edrs[2, 480]
    ds = _open(path)
    if kind == "npy":
        flat_file = tmp_path / "flat.npy"
        np.save(flat_file, flat_values)
    elif kind == "tif":
        flat_file = _write_geotiff(tmp_path / "flat.tif", flat_values)
    elif kind == "cub-write_isis":
        flat_file = _write_isis_flat(tmp_path / "flat.cub", flat_values, ds.attrs)
    else:
        flat_file = _write_handmade_cube(tmp_path / "flat.cub", flat_values)
    out = calibrate(ds, flat=str(flat_file), units="rate")
    assert out.image.attrs["flat_source"] == str(flat_file)
    _assert_matches(out.image.values, ref_calibrate(_raw(path, 2, 480), 2, 480, flat=flat_values, units="rate"))
    assert "flat " + str(flat_file) in out.image.attrs["history"]


@pytest.mark.parametrize(
    ("flat", "match"),
    [
        (np.ones(4000), "5000"),
        (np.ones((2, 5000)), "one line"),
        ("missing.npy", "not found"),
    ],
    ids=["short", "2-D", "missing"],
)
def test_bad_flat_is_a_clear_error(edrs, tmp_path, flat, match):
    if isinstance(flat, str):
        flat = str(tmp_path / flat)
    with pytest.raises(FlatError, match=match):
        calibrate(_open(edrs[1, 0]), flat=flat)


def test_flat_too_short_for_the_first_pixel(tmp_path):
    """Detector pixels beyond a 5000-value flat (open_edr refuses such an EDR; a Dataset can still say so)."""
    ds = ctxdask.open_edr(make_edr(tmp_path / "far.IMG", lines=4, line_samples=2048, first_pixel=1000))
    ds = ds.assign_coords(detector_pixel=ds.detector_pixel + 3000)
    with pytest.raises(FlatError, match="detector pixels"):
        calibrate(ds, flat=np.ones(5000))


def test_unknown_flat_format(edrs, tmp_path):
    bad = tmp_path / "flat.txt"
    bad.write_text("1 1 1")
    with pytest.raises(FlatError, match="unknown flat-field format"):
        calibrate(_open(edrs[1, 0]), flat=bad)


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("first_pixel", [0, 480])
def test_even_odd_on_summing_2_is_a_clear_error(edrs, first_pixel):
    ds = _open(edrs[2, first_pixel])
    with pytest.raises(CalibrationError, match="summing 2") as info:
        calibrate(ds, flat=np.ones(5000), even_odd=True)
    assert isinstance(info.value, CTXError)
    assert str(edrs[2, first_pixel]) in str(info.value)
    with pytest.raises(CalibrationError, match="summing 1"):
        even_odd_correct(calibrate(ds, flat=np.ones(5000)))


def test_lin_mode_is_unsupported(tmp_path):
    path = make_edr(tmp_path / "lin.IMG", lines=8, line_samples=256, bit_mode="LIN4")
    ds = ctxdask.open_edr(path, allow_unsupported_mode=True)
    with pytest.raises(UnsupportedModeError, match="LIN4"):
        decompand(ds)
    with pytest.raises(UnsupportedModeError, match="LIN4"):
        calibrate(ds, flat=np.ones(5000))


def test_calibrating_twice_raises(edrs):
    once = calibrate(_open(edrs[1, 0]), flat=np.ones(5000), units="rate")
    with pytest.raises(CalibrationError, match="already calibrated"):
        calibrate(once, flat=np.ones(5000))
    with pytest.raises(CalibrationError, match="already"):
        decompand(once)
    with pytest.raises(CalibrationError, match="already"):
        decompand(decompand(_open(edrs[1, 0])))


def test_bad_units(edrs):
    with pytest.raises(CalibrationError, match="units"):
        calibrate(_open(edrs[1, 0]), units="radiance")


# -- attrs, warning, writing -------------------------------------------------------------------


def test_attrs_record_every_constant(edrs, flat_values):
    ds = _open(edrs[1, 0])
    iof = calibrate(ds, flat=flat_values, sun_distance_km=DISTANCE_KM).image.attrs
    assert iof["calibration"] == "iof" and iof["units"] == "1"
    assert iof["exposure_ms"] == EXPOSURE_MS
    assert iof["flat_source"] == "array"
    assert iof["sun_distance_km"] == DISTANCE_KM
    w1 = 3660.5 * (2.07e8 / DISTANCE_KM) ** 2
    assert iof["iof_factor"] == pytest.approx(1 / (EXPOSURE_MS * w1), rel=1e-14)
    history = iof["history"].splitlines()
    assert [re.search(r"(open_edr|decompand|ctxcal)", line).group(1) for line in history] == [
        "open_edr", "decompand", "ctxcal"]
    rate = calibrate(ds, flat=flat_values, units="rate").image.attrs
    assert rate["calibration"] == "rate" and rate["units"] == "DN/ms"
    assert rate["exposure_ms"] == EXPOSURE_MS
    assert "iof_factor" not in rate and "sun_distance_km" not in rate
    # the input is not modified
    assert ds.image.attrs["calibration"] == "raw" and ds.image.dtype == np.uint8


def test_unity_flat_warns_and_is_recorded(edrs):
    ds = _open(edrs[1, 0])
    with pytest.warns(UnityFlatWarning, match="unity flat"):
        out = calibrate(ds, units="rate")
    assert out.image.attrs["flat_source"] == "unity"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnityFlatWarning)
        calibrate(ds, flat=np.ones(5000), units="rate")


def _netcdf_engine(engine: str) -> str:
    # h5netcdf >= 1.4 needs h5py (its "h5py" extra) to write; without it the engine is unusable
    pytest.importorskip("h5py" if engine == "h5netcdf" else engine)
    return engine


@pytest.mark.parametrize("even_odd", [False, True])
@pytest.mark.parametrize("store", ["zarr", "netcdf-h5netcdf", "netcdf-scipy"])
def test_calibrated_dataset_writes_as_it_is(edrs, flat_values, tmp_path, store, even_odd):
    out = calibrate(_open(edrs[1, 0]), flat=flat_values, even_odd=even_odd, sun_distance_km=DISTANCE_KM)
    expected = out.image.values
    if store == "zarr":
        out.to_zarr(tmp_path / "c.zarr", consolidated=False)
        back = xr.open_zarr(tmp_path / "c.zarr", consolidated=False)
    else:
        engine = _netcdf_engine(store.split("-")[1])
        out.to_netcdf(tmp_path / "c.nc", engine=engine)
        back = xr.open_dataset(tmp_path / "c.nc", engine=engine)
    with back:
        np.testing.assert_array_equal(back.image.values, expected)
        assert back.image.dtype == np.float32
        for key in ("calibration", "units", "history", "iof_factor", "sun_distance_km", "flat_source", "exposure_ms"):
            assert back.image.attrs[key] == out.image.attrs[key]
        assert back.attrs["PRODUCT_ID"] == out.attrs["PRODUCT_ID"]
        assert back.attrs["pds3_label"] == out.attrs["pds3_label"]
        if even_odd:
            assert float(back.even_odd_offset) == float(out.even_odd_offset)


# -- laziness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("even_odd", [False, True])
def test_nothing_computes_until_values_or_write(edrs, flat_values, tmp_path, even_odd, compute_counter):
    ds = _open(edrs[1, 0])
    counts = decompand(ds)
    out = calibrate(ds, flat=flat_values, even_odd=even_odd, sun_distance_km=DISTANCE_KM)
    repr(out), repr(counts), dict(out.image.attrs)
    assert compute_counter.calls == 0
    counts.image.values
    assert compute_counter.calls == 1
    out.image.values
    assert compute_counter.calls == 2
    out.to_zarr(tmp_path / "c.zarr", consolidated=False)
    assert compute_counter.calls == 3


def test_one_read_per_line_chunk(edrs, flat_values, tmp_path, raw_reads):
    out = calibrate(_open(edrs[1, 0]), flat=flat_values, sun_distance_km=DISTANCE_KM)
    chunks = -(-LINES // CHUNK)
    out.image.compute(scheduler="sync")
    assert len(raw_reads) == chunks
    assert len({r.start for r in raw_reads}) == chunks
    raw_reads.clear()
    out.to_zarr(tmp_path / "c.zarr", consolidated=False)  # image, dark, prefix, suffix: still one read per chunk
    assert len(raw_reads) == chunks


def test_even_odd_reads_twice_and_holds_no_block(edrs, flat_values, raw_reads):
    """ctxevenodd needs the whole image for its offset: statistics pass, then an output pass.

    The output pass must read the file again rather than keep raw blocks from the
    first pass (what ``dask.graph_manipulation.bind`` silently did in dask 2026.8):
    every chunk is read once per pass, and no raw buffer is alive when the
    next one is read.
    """
    out = calibrate(_open(edrs[1, 0]), flat=flat_values, even_odd=True, sun_distance_km=DISTANCE_KM)
    chunks = -(-LINES // CHUNK)
    out.image.compute(scheduler="sync")
    starts = [r.start for r in raw_reads]
    assert len(starts) == 2 * chunks
    # the first pass reads every chunk before the second starts
    assert sorted(starts[:chunks]) == sorted(starts[chunks:]) == sorted(set(starts))
    assert all(r.buffer() is None for r in raw_reads)  # nothing read is kept


def test_even_odd_raw_blocks_do_not_accumulate(edrs, flat_values, raw_reads):
    """At most one earlier raw block is alive at any read (the sync scheduler, 5 chunks)."""
    out = calibrate(_open(edrs[1, 0]), flat=flat_values, even_odd=True, sun_distance_km=DISTANCE_KM)
    out.image.compute(scheduler="sync")
    peak = [r.alive_before for r in raw_reads]
    assert len(peak) == 2 * -(-LINES // CHUNK)
    assert max(peak) <= 1, peak


# -- the real ISIS test cube -------------------------------------------------------------------


def _set(text: str, key: str, value) -> str:
    new, n = re.subn(rf"(?m)^(\s*{key}\s*=\s*)\S+", lambda m: m.group(1) + str(value), text, count=1)
    assert n == 1, key
    return new


def test_isis_test_cube_rebuilt_as_edr(reference_dir, tmp_path):
    """ctxTestImage.cub (mroctx2isis + spiceinit of P01_001473_2479_XI_67N185W, 20x20 crop).

    The crop is lines 1-20, samples 1-20 of a summing-1, first-pixel-480 image
    (AlphaCube), so its dark rows are table records 0-19 and its samples are
    image columns 0-19. The EDR rebuilt from those pixels, dark table and
    original label calibrates (unity flat, DN/ms) to the value ctxcal's formula
    gives directly from the cube's DN and dark table.
    """
    from ctxdask.io.isis_read import read_cube, read_original_label, read_table

    cube = reference_dir / "isis" / "ctxTestImage.cub"
    if not cube.is_file():
        pytest.skip("ctxTestImage.cub is not in the reference folder")
    dn = read_cube(cube, dtype=np.float64).compute()[0]
    dark = read_table(cube, "Ctx Prefix Dark Pixels")["DarkPixels"][: dn.shape[0]].astype(np.float64)
    assert dn.shape == (20, 20) and dark.shape == (20, 16)

    lines, n_dark = dn.shape[0], dark.shape[1]
    line_samples = -(-(n_dark + dn.shape[1]) // 16) * 16  # 48: 16 dark, 20 cube samples, 12 filler
    raw = np.full((lines, line_samples), 100, dtype=np.uint8)
    raw[:, :n_dark] = compand_block(dark)
    raw[:, n_dark : n_dark + dn.shape[1]] = compand_block(dn)

    text = read_original_label(cube).rstrip("\0 \r\n") + "\n"
    text = _set(text, "LINES", lines)
    text = _set(text, "LINE_SAMPLES", line_samples)
    text = _set(text, "RECORD_BYTES", line_samples)
    text = _set(text, "CHECKSUM", f"16#{int(raw.sum(dtype=np.uint64)) % 2**32:08X}#")
    records = 1
    for _ in range(3):  # the record counts change the label length only through their digits
        text = _set(text, "LABEL_RECORDS", records)
        text = _set(text, "FILE_RECORDS", records + lines)
        text = _set(text, r"\^IMAGE", records + 1)
        records = -(-len(text.encode()) // line_samples)
    edr = tmp_path / "P01_001473_2479_XI_67N185W.IMG"
    edr.write_bytes(text.encode().ljust(records * line_samples, b" ") + raw.tobytes())

    ds = ctxdask.open_edr(edr)
    assert (ds.attrs["SAMPLING_FACTOR"], ds.attrs["SAMPLE_FIRST_PIXEL"]) == (1, 480)
    assert ds.attrs["LINE_EXPOSURE_DURATION"] == 1.88
    np.testing.assert_array_equal(decompand(ds).image.values[:, :20], dn)  # lossless rebuild
    with pytest.warns(UnityFlatWarning):
        out = calibrate(ds, units="rate")
    got = out.image.values[:, :20]

    a, b = dark[:, 0::2].mean(axis=1), dark[:, 1::2].mean(axis=1)
    line_dark = np.where(np.arange(20) % 2 == 0, a[:, None], b[:, None])
    expected = ((dn - line_dark) / 1.88).astype(np.float32)
    assert np.isfinite(expected).all() and not np.allclose(a, b)
    np.testing.assert_allclose(got, expected, rtol=2e-7, atol=0)
    # the detector pixels ctxcal would index a flat with: 480 - 38 = 442 onwards
    assert ds.detector_pixel.values[:3].tolist() == [442, 443, 444]
