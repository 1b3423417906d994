"""open_edr: layout in every mode, laziness, remote reads, clusters, bad input."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import xarray as xr

import ctxdask
from ctxdask import edr
from ctxdask.exceptions import (
    CTXError,
    EmptyFileError,
    LabelError,
    LabelInconsistentError,
    MissingFileError,
    NotAFileError,
    NotCTXError,
    TruncatedFileError,
    UnsupportedModeError,
)
from ctxdask.testing import edr_from_label, make_edr

# (summing, first pixel, line samples): the four modes of DESIGN.md section 4
MODES = [(1, 0, 256), (1, 480, 256), (2, 0, 128), (2, 1024, 128)]
# expected (prefix bytes, dark columns, suffix bytes) per mode
EXPECTED = {
    (1, False): (38, range(14, 38), 18),
    (1, True): (16, range(0, 16), 0),
    (2, False): (19, range(7, 19), 9),
    (2, True): (8, range(0, 8), 0),
}


def raw_lines(path, lines, line_samples):
    """The image records exactly as written, read back independently of ctxdask."""
    data = np.fromfile(path, dtype=np.uint8)
    return data[data.size - lines * line_samples :].reshape(lines, line_samples)


@pytest.mark.parametrize("summing, first_pixel, width", MODES)
def test_every_pixel_of_every_variable_in_every_mode(tmp_path, summing, first_pixel, width):
    path = make_edr(tmp_path / "a.IMG", lines=48, line_samples=width, summing=summing, first_pixel=first_pixel,
                    lost_lines=[3], saturated_fraction=0.01)
    raw = raw_lines(path, 48, width)
    prefix, dark_cols, suffix = EXPECTED[(summing, first_pixel > 0)]
    ds = ctxdask.open_edr(path, chunks={"line": 16})
    assert ds.image.dims == ("line", "sample") and ds.image.dtype == np.uint8
    np.testing.assert_array_equal(ds.image.values, raw[:, prefix : width - suffix])
    np.testing.assert_array_equal(ds.dark.values, raw[:, dark_cols.start : dark_cols.stop])
    np.testing.assert_array_equal(ds.prefix.values, raw[:, :prefix])
    np.testing.assert_array_equal(ds.suffix.values, raw[:, width - suffix :])
    assert ds.sizes == {"line": 48, "sample": width - prefix - suffix, "dark_sample": len(dark_cols),
                        "prefix_sample": prefix, "suffix_sample": suffix}
    np.testing.assert_array_equal(ds.dark_sample, np.asarray(dark_cols))
    # lazy indexing of arbitrary windows returns the same bytes
    np.testing.assert_array_equal(ds.image[5:31:3, 7:40].values, raw[5:31:3, prefix + 7 : prefix + 40])
    np.testing.assert_array_equal(ds.image[17].values, raw[17, prefix : width - suffix])
    assert ds.image.attrs["calibration"] == "raw" and ds.image.attrs["units"] == "DN"


@pytest.mark.parametrize("summing, first_pixel, offset", [(1, 0, 0), (1, 480, 442), (2, 0, 0), (2, 1024, 986)])
def test_detector_pixel_coordinate(tmp_path, summing, first_pixel, offset):
    ds = ctxdask.open_edr(make_edr(tmp_path / "a.IMG", lines=16, line_samples=128, summing=summing,
                                   first_pixel=first_pixel))
    expected = offset + summing * np.arange(ds.sizes["sample"])
    np.testing.assert_array_equal(ds.detector_pixel.values, expected)


def test_time_coordinate_uses_exposure_and_summing(tmp_path):
    ds = ctxdask.open_edr(make_edr(tmp_path / "a.IMG", lines=32, line_samples=128, summing=2,
                                   start_time="2010-01-02T03:04:05.678", exposure_ms=1.877))
    times = ds.time.values
    assert times.dtype == np.dtype("datetime64[ns]")
    assert times[0] == np.datetime64("2010-01-02T03:04:05.678")
    step = np.diff(times).astype("int64")
    np.testing.assert_allclose(step, 2 * 1.877e6, atol=1)


@pytest.mark.parametrize("name", ["B10_013341_1010_XN_79S172W", "D10_031011_1864_XI_06N201W",
                                  "P01_001472_1747_XI_05S146W", "P01_001473_2479_XI_67N185W"])
def test_real_labels_with_synthetic_pixels(reference_dir, tmp_path, name):
    path = edr_from_label(reference_dir / "labels" / f"{name}.lbl", tmp_path / f"{name}.IMG", lines=64)
    ds = ctxdask.open_edr(path)
    assert ds.attrs["PRODUCT_ID"] == name
    assert ds.attrs["INSTRUMENT_ID"] == "CTX"
    assert ds.attrs["LINES"] == 64 == ds.sizes["line"]
    assert ds.attrs["LINE_EXPOSURE_DURATION_units"] == "MSEC"
    first_pixel = ds.attrs["SAMPLE_FIRST_PIXEL"]
    assert ds.sizes["sample"] == (5000 if first_pixel == 0 else ds.attrs["LINE_SAMPLES"] - 16)
    assert ds.time.values[0] == np.datetime64(ds.attrs["START_TIME"])
    assert "END" in ds.attrs["pds3_label"].upper()
    assert ctxdask.validate(path).ok
    if name == "P01_001472_1747_XI_05S146W":
        assert "PDS_VERSION_ID" not in ds.attrs


def test_xarray_engine_entry_point(tmp_path):
    path = make_edr(tmp_path / "a.IMG", lines=32, line_samples=128)
    ds = xr.open_dataset(path, engine="ctx")
    assert ds.image.shape == (32, 128 - 56)
    assert xr.backends.list_engines()["ctx"].guess_can_open(str(path))
    chunked = xr.open_dataset(path, engine="ctx", chunks={})
    assert chunked.image.chunks is not None


def test_open_reads_label_only_and_chunks_read_only_their_lines(tmp_path, raw_reads):
    width, lines = 256, 4096
    path = make_edr(tmp_path / "a.IMG", lines=lines, line_samples=width)
    ds = ctxdask.open_edr(path, chunks={"line": 512})
    assert raw_reads == []  # opening parsed the label only
    offset = ds.attrs["LABEL_RECORDS"] * width
    ds.image[1024:1536].values
    assert [(r.start, r.length) for r in raw_reads] == [(offset + 1024 * width, 512 * width)]


def test_open_and_select_never_compute(tmp_path, compute_counter):
    path = make_edr(tmp_path / "a.IMG", lines=64, line_samples=128)
    ds = ctxdask.open_edr(path)
    sub = ds.isel(line=slice(10, 20))[["image", "dark"]]
    assert compute_counter.calls == 0
    sub.image.values
    assert compute_counter.calls == 1


def test_backend_array_pickles_and_holds_no_handle(tmp_path):
    path = make_edr(tmp_path / "a.IMG", lines=32, line_samples=128)
    product = edr.describe_edr(path)
    array = edr.CTXBackendArray(product.data_source, product.image_offset, 128, 32, (38, 110))
    clone = pickle.loads(pickle.dumps(array))
    assert clone.shape == (32, 72)
    ds = ctxdask.open_edr(path)
    restored = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(restored.image.values, ds.image.values)


def test_http_range_reads(tmp_path, http_server):
    base, root, log = http_server
    width, lines = 256, 1024
    path = make_edr(root / "B10_013341_1010_XN_79S172W.IMG", lines=lines, line_samples=width)
    url = f"{base}/B10_013341_1010_XN_79S172W.IMG"
    ds = ctxdask.open_edr(url, chunks={"line": 128})
    assert ds.attrs["PRODUCT_ID"] == "B10_013341_1010_XN_79S172W"
    opened = list(log)
    # the label and the size only: no GET beyond the first label-sized range
    assert all(m == "HEAD" or (r and r.startswith("bytes=0-")) for m, _, r in opened)
    log.clear()
    window = ds.image[256:384].values
    raw = raw_lines(path, lines, width)
    np.testing.assert_array_equal(window, raw[256:384, 38:-18])
    ranges = [r for m, _, r in log if m == "GET"]
    offset = ds.attrs["LABEL_RECORDS"] * width
    assert ranges == [f"bytes={offset + 256 * width}-{offset + 384 * width - 1}"]


def test_detached_label_via_http(tmp_path, http_server):
    base, root, _ = http_server
    make_edr(root / "B10_013341_1010_XN_79S172W.IMG", lines=32, line_samples=128, detached=True)
    ds = ctxdask.open_edr(f"{base}/B10_013341_1010_XN_79S172W.LBL")
    assert ds.image.shape == (32, 72)
    ds_img = ctxdask.open_edr(f"{base}/B10_013341_1010_XN_79S172W.IMG")
    np.testing.assert_array_equal(ds.image.values, ds_img.image.values)


@pytest.mark.cluster
def test_computes_on_multiprocess_local_cluster(tmp_path):
    from distributed import Client, LocalCluster

    path = make_edr(tmp_path / "a.IMG", lines=256, line_samples=256, seed=3)
    expected = raw_lines(path, 256, 256)[:, 38:-18].astype(np.float64).mean()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            ds = ctxdask.open_edr(path, chunks={"line": 64})
            mean = ds.image.mean().compute()
            workers = client.run(lambda: __import__("os").getpid())
    assert float(mean) == pytest.approx(expected)
    assert len(set(workers.values())) == 2


# -- bad input: every case gets a CTXError naming the file and the problem -------------------


def _label_edr(tmp_path, replace=None, lines=32, width=128, **kwargs):
    """A small valid EDR with whole label lines replaced (keeping the label length).

    ``replace`` maps a keyword to its new value text.
    """
    path = make_edr(tmp_path / "x.IMG", lines=lines, line_samples=width, **kwargs)
    data = bytearray(path.read_bytes())
    for key, value in (replace or {}).items():
        match = re.search(rb"(?m)^( *)" + key + rb" *= *[^\n]*", data)
        assert match, key
        line = match.group(1) + key + b" = " + value
        assert len(line) <= len(match.group(0)), key
        data[match.start() : match.end()] = line.ljust(len(match.group(0)))
    path.write_bytes(bytes(data))
    return path



BAD_INPUTS = {
    "empty file": (lambda p: p.write_bytes(b""), EmptyFileError, "empty"),
    "binary garbage": (lambda p: p.write_bytes(np.random.default_rng(1).bytes(20000)), LabelError, "binary"),
    "label garbage": (lambda p: p.write_bytes(b"PDS_VERSION_ID = PDS3\nOBJECT = IMAGE\n(((\nEND\n"), LabelError, "parsed"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_files(tmp_path, case):
    make, error, words = BAD_INPUTS[case]
    path = tmp_path / "bad.IMG"
    make(path)
    with pytest.raises(error, match=words) as info:
        ctxdask.open_edr(path)
    assert isinstance(info.value, CTXError) and str(path) in str(info.value)


def test_truncated_image(tmp_path):
    path = make_edr(tmp_path / "x.IMG", lines=64, line_samples=128)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(TruncatedFileError, match="truncated image.*fetch the product again") as info:
        ctxdask.open_edr(path)
    assert str(path) in str(info.value)


def test_label_that_lies_about_its_size(tmp_path):
    path = _label_edr(tmp_path, {b"FILE_RECORDS": b"20"})
    with pytest.raises(LabelInconsistentError, match="contradicts itself") as info:
        ctxdask.open_edr(path)
    assert str(path) in str(info.value)


def test_lines_of_a_billion(tmp_path):
    path = _label_edr(tmp_path, {b"LINES": b"1000000000", b"FILE_RECORDS": b"1000000050"})
    with pytest.raises(LabelInconsistentError, match="image buffer") as info:
        ctxdask.open_edr(path)
    assert str(path) in str(info.value)


def test_hirise_product(tmp_path):
    path = tmp_path / "PSP_001330_1395_RED5_0.IMG"
    path.write_bytes(
        b'PDS_VERSION_ID = PDS3\nRECORD_BYTES = 100\nFILE_RECORDS = 2\n^IMAGE = 2\n'
        b'INSTRUMENT_ID = HIRISE\nOBJECT = IMAGE\nLINES = 1\nLINE_SAMPLES = 100\n'
        b'SAMPLE_BITS = 8\nEND_OBJECT = IMAGE\nEND\n'.ljust(100) + bytes(100)
    )
    with pytest.raises(NotCTXError, match="HIRISE product, not a CTX EDR") as info:
        ctxdask.open_edr(path)
    assert str(path) in str(info.value)


def test_map_projected_ctx_product(tmp_path):
    path = tmp_path / "B10_013341_1010_XN_79S172W_MAP.IMG"
    path.write_bytes(
        b'PDS_VERSION_ID = PDS3\nRECORD_BYTES = 100\nFILE_RECORDS = 2\n^IMAGE = 2\n'
        b'INSTRUMENT_ID = CTX\nDATA_SET_ID = "MRO-M-CTX-5-MAP-V1.0"\n'
        b'OBJECT = IMAGE_MAP_PROJECTION\nMAP_PROJECTION_TYPE = EQUIRECTANGULAR\nEND_OBJECT = IMAGE_MAP_PROJECTION\n'
        b'OBJECT = IMAGE\nLINES = 1\nLINE_SAMPLES = 100\nSAMPLE_BITS = 8\nEND_OBJECT = IMAGE\nEND\n'.ljust(400)
        + bytes(100)
    )
    with pytest.raises(NotCTXError, match="map-projected") as info:
        ctxdask.open_edr(path)
    assert str(path) in str(info.value)


def test_lin_mode_is_unsupported_like_isis(tmp_path):
    path = make_edr(tmp_path / "x.IMG", lines=16, line_samples=128, bit_mode="LIN4")
    with pytest.raises(UnsupportedModeError, match="LIN4 is not supported.*ISIS") as info:
        ctxdask.open_edr(path)
    assert str(path) in str(info.value)
    # the raw bytes stay readable on request
    assert ctxdask.open_edr(path, allow_unsupported_mode=True).image.shape == (16, 72)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(NotAFileError, match="directory") as info:
        ctxdask.open_edr(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(MissingFileError, match="no such file"):
        ctxdask.open_edr(tmp_path / "nope.IMG")


@pytest.mark.parametrize(
    "key, value, words",
    [
        (b"SAMPLING_FACTOR", b"4", "SAMPLING_FACTOR"),
        (b"SAMPLE_BITS", b"12", "8-bit"),
        (b"SAMPLE_BIT_MODE_ID", b"CUBIC", "SIS knows"),
        (b"LINE_EXPOSURE_DURATION", b"-1 <MSEC>", "positive"),
        (b"START_TIME", b"yesterday", "START_TIME"),
        (b"LINES", b"-5", "positive whole number"),
        (b"SAMPLE_FIRST_PIXEL", b"WHO", "SAMPLE_FIRST_PIXEL"),
    ],
)
def test_illegal_label_values(tmp_path, key, value, words):
    path = _label_edr(tmp_path, {key: value})
    with pytest.raises(CTXError, match=words) as info:
        ctxdask.open_edr(path)
    assert str(path) in str(info.value)


def test_errors_pickle_for_workers():
    err = TruncatedFileError("/data/x.IMG", "truncated image")
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is TruncatedFileError and str(clone) == str(err) and clone.path == "/data/x.IMG"
