"""Tests of the streaming ISIS3 cube writer: read back with ctxdask, pvl and GDAL."""

from __future__ import annotations

import re
import warnings

import dask
import dask.array as da
import numpy as np
import pvl
import pytest
import xarray as xr
from dask.callbacks import Callback

from ctxdask.companding import compand_block, decompand_block, decompand_dark_block
from ctxdask.exceptions import UnsupportedModeError
from ctxdask.io import isis_read as ir
from ctxdask.io import isis_write as iw
from ctxdask.io.isis_write import good_tile_size, write_isis

rasterio = pytest.importorskip("rasterio")

PDS_LABEL = """PDS_VERSION_ID               = PDS3
SPACECRAFT_NAME              = MARS_RECONNAISSANCE_ORBITER
MISSION_PHASE_NAME           = PSP
TARGET_NAME                  = MARS
INSTRUMENT_ID                = CTX
PRODUCER_ID                  = MRO_CTX_TEAM
DATA_SET_ID                  = MRO-M-CTX-2-EDR-L0-V1.0
PRODUCT_CREATION_TIME        = 2007-02-22T00:36:01
PRODUCT_ID                   = P01_001473_2479_XI_67N185W
START_TIME                   = 2006-11-19T06:16:39.003
SPACECRAFT_CLOCK_START_COUNT = 0848384217:216
FOCAL_PLANE_TEMPERATURE      = 291.8 <K>
SAMPLE_BIT_MODE_ID           = SQROOT
OFFSET_MODE_ID               = 196/187/185
LINE_EXPOSURE_DURATION       = 1.880 <MSEC>
SAMPLING_FACTOR              = 1
SAMPLE_FIRST_PIXEL           = 480
ORBIT_NUMBER                 = 1473
OBJECT = IMAGE
  LINES = 64
END_OBJECT = IMAGE
END
"""


def make_ds(lines=64, samples=40, ndark=16, *, label=PDS_LABEL, chunk=16, seed=0) -> xr.Dataset:
    """A small CTX Dataset in the data model of DESIGN.md section 3, raw uint8."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (lines, samples), dtype=np.uint8)
    image[3, 4:9] = 0  # lost-packet fill
    dark = rng.integers(0, 30, (lines, ndark), dtype=np.uint8)
    dark[0, 0] = 0
    attrs = {
        "PRODUCT_ID": "P01_001473_2479_XI_67N185W",
        "START_TIME": "2006-11-19T06:16:39.003",
        "LINE_EXPOSURE_DURATION": 1.88,
        "LINE_EXPOSURE_DURATION_units": "MSEC",
        "SAMPLING_FACTOR": 1,
        "SAMPLE_FIRST_PIXEL": 480,
        "SAMPLE_BIT_MODE_ID": "SQROOT",
        "pds3_label": label,
    }
    return xr.Dataset(
        {
            "image": (("line", "sample"), da.from_array(image, chunks=(chunk, -1)), {"calibration": "raw", "units": "DN"}),
            "dark": (("line", "dark_sample"), da.from_array(dark, chunks=(chunk, -1)), {"calibration": "raw", "units": "DN"}),
        },
        coords={"line": np.arange(lines), "sample": np.arange(samples)},
        attrs=attrs,
    )


def gdal_read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning: level-0/1 cubes have no map
        with rasterio.open(path) as src:
            assert src.driver == "ISIS3"
            return src.read(1, masked=True), src.profile


@pytest.mark.parametrize("fmt, tile", [("Tile", (16, 16)), ("Tile", None), ("BandSequential", None)])
def test_level0_from_raw(tmp_path, fmt, tile):
    ds = make_ds(lines=70, chunk=24)  # chunks do not align with the 16-line tiles
    path = write_isis(ds, tmp_path / "l0.cub", format=fmt, tile_size=tile)
    expected = decompand_block(ds.image.values)
    # ctxdask's reader
    got = ir.read_cube(path).compute()[0]
    np.testing.assert_array_equal(got, expected)
    # pvl
    label = pvl.load(str(path))
    pixels = label["IsisCube"]["Core"]["Pixels"]
    assert (pixels["Type"], pixels["ByteOrder"]) == ("SignedWord", "Lsb")
    assert label["IsisCube"]["Core"]["Format"] == fmt
    # GDAL's ISIS3 driver
    band, profile = gdal_read(path)
    assert profile["dtype"] == "int16" and profile["nodata"] == -32768
    np.testing.assert_array_equal(band.mask, np.isnan(expected))
    np.testing.assert_array_equal(band.filled(0), np.nan_to_num(expected, nan=0.0))
    # the dark table, decompanded like mroctx2isis (raw 0 -> 1)
    table = ir.read_table(path, "Ctx Prefix Dark Pixels")
    np.testing.assert_array_equal(table["DarkPixels"], decompand_dark_block(ds.dark.values))
    assert table["DarkPixels"][0, 0] == 1
    assert ir.read_original_label(path) == PDS_LABEL
    history = pvl.loads(ir.read_blob(path, "History").decode())
    assert history["ctxdask"]["Description"].startswith("Write a CTX cube like mroctx2isis")
    assert not list(tmp_path.glob(".*part"))


def test_label_groups_as_mroctx2isis(tmp_path, reference_dir):
    """Instrument, Archive and BandBin text identical to what ISIS wrote for B10_013341."""
    pds = (reference_dir / "labels" / "B10_013341_1010_XN_79S172W.lbl").read_text()
    isis = (reference_dir / "labels" / "B10_013341_1010_XN_79S172W.isis3.lbl").read_text()
    path = write_isis(make_ds(label=pds), tmp_path / "b10.cub")
    ours = ir.read_label_text(path)

    def group(text, name):
        return re.search(rf"^  Group = {name}\n.*?^  End_Group\n", text, re.S | re.M).group(0)

    for name in ("Instrument", "Archive", "BandBin"):
        assert group(ours, name) == group(isis, name)
    assert group(ours, "Kernels") == "  Group = Kernels\n    NaifFrameCode = -74021\n  End_Group\n"
    kernels = pvl.loads(isis)["IsisCube"]["Kernels"]
    assert kernels["NaifFrameCode"] == pvl.loads(ours)["IsisCube"]["Kernels"]["NaifFrameCode"]


def test_label_from_attrs_without_pds_label(tmp_path):
    ds = make_ds(label=None)
    ds.attrs.pop("pds3_label")
    ds.attrs.update(TARGET_NAME="PHOBOS", SPACECRAFT_NAME="MARS_RECON_ORBITER")
    label = pvl.load(str(write_isis(ds, tmp_path / "a.cub")))
    inst = label["IsisCube"]["Instrument"]
    assert inst["TargetName"] == "Phobos" and inst["SpacecraftName"] == "Mars_Reconnaissance_Orbiter"
    assert inst["LineExposureDuration"].value == 1.88 and inst["LineExposureDuration"].units == "MSEC"
    assert inst["SampleFirstPixel"] == 480 and inst["SpatialSumming"] == 1
    assert inst["MissionPhaseName"] == "UNKNOWN"  # the translation's InputDefault
    assert "OriginalLabel" not in label


def test_level0_from_counts(tmp_path):
    ds = make_ds()
    counts = ds.image.copy(data=ds.image.data.map_blocks(decompand_block, dtype=np.float32))
    counts.attrs["calibration"] = "counts"
    dark = ds.dark.copy(data=ds.dark.data.map_blocks(decompand_dark_block, dtype=np.float32))
    path = write_isis(ds.assign(image=counts, dark=dark), tmp_path / "c.cub")
    np.testing.assert_array_equal(ir.read_cube(path).compute()[0], decompand_block(ds.image.values))
    np.testing.assert_array_equal(ir.read_table(path, "Ctx Prefix Dark Pixels")["DarkPixels"],
                                  decompand_dark_block(ds.dark.values))


@pytest.mark.parametrize("units", ["iof", "rate"])
def test_level1(tmp_path, units):
    ds = make_ds(lines=50, samples=33)
    rng = np.random.default_rng(7)
    values = rng.normal(0.2, 0.05, (50, 33)).astype(np.float32)
    values[10, :5] = np.nan
    values[11, 0] = np.float32(1e38)  # representable: must survive exactly
    attrs = {"calibration": units, "units": "1" if units == "iof" else "DN/ms",
             "flat_source": "/data/ctxFlat_0001.cub", "iof_factor": 1.8676e-4}
    ds = ds.assign(image=(("line", "sample"), da.from_array(values, chunks=(7, -1)), attrs))
    path = write_isis(ds, tmp_path / "l1.cub")
    np.testing.assert_array_equal(ir.read_cube(path).compute()[0], values)
    label = pvl.load(str(path))
    assert label["IsisCube"]["Core"]["Pixels"]["Type"] == "Real"
    assert label["IsisCube"]["Core"]["TileLines"] == 50 and label["IsisCube"]["Core"]["TileSamples"] == 33
    radiometry = label["IsisCube"]["Radiometry"]
    assert radiometry["FlatFile"] == "/data/ctxFlat_0001.cub"
    assert radiometry["iof"] == (1.8676e-4 if units == "iof" else 1.0)  # ctxcal writes 1 for DN/ms
    band, profile = gdal_read(path)
    assert profile["dtype"] == "float32"
    np.testing.assert_array_equal(band.mask, np.isnan(values))
    np.testing.assert_array_equal(band.filled(np.nan), values)
    # NaN is stored as the ISIS Real Null bit pattern
    layout = ir.CubeLayout.from_label(path)
    stored = ir.read_block(layout, 10, 11, raw=True)
    assert stored.view(np.uint32)[0, 0] == 0xFF7FFFFB
    # level 1 keeps the dark table, as ctxcal propagates it
    assert ir.read_table(path, "Ctx Prefix Dark Pixels").shape == (50,)


def test_rebuild_real_test_cube_byte_for_byte(tmp_path, reference_dir):
    """Pixels and dark table of ISIS's own mroctx2isis cube, through EDR bytes and back."""
    src = reference_dir / "isis" / "ctxTestImage.cub"
    label = ir.read_label(src)
    dn = ir.read_cube(src).compute()[0]
    dark_dn = ir.read_table(src, "Ctx Prefix Dark Pixels", label=label)["DarkPixels"][:20]
    original = ir.read_original_label(src, label=label)
    raw_image, raw_dark = compand_block(dn), compand_block(dark_dn)  # the EDR bytes
    ds = xr.Dataset(
        {"image": (("line", "sample"), raw_image, {"calibration": "raw"}),
         "dark": (("line", "dark_sample"), raw_dark, {"calibration": "raw"})},
        attrs={"pds3_label": original, "SAMPLE_BIT_MODE_ID": "SQROOT"},
    )
    out = write_isis(ds, tmp_path / "rebuilt.cub")
    core = lambda p, n: p.read_bytes()[65536 : 65536 + n]  # noqa: E731
    assert core(out, 800) == core(src, 800)  # one 20x20 SignedWord tile, identical bytes
    np.testing.assert_array_equal(ir.read_table(out, "Ctx Prefix Dark Pixels")["DarkPixels"], dark_dn)
    ours, theirs = pvl.load(str(out))["IsisCube"], label["IsisCube"]
    for group in ("Instrument", "Archive", "BandBin"):
        assert ours[group] == theirs[group]


class _Computes(Callback):
    def __init__(self):
        super().__init__()
        self.count = 0

    def _start(self, dsk):
        self.count += 1


@pytest.mark.parametrize("where", ["in place", "from here"])
def test_streams_block_by_block(tmp_path, monkeypatch, where):
    """In place (local schedulers, workers sharing the file): one compute, one task per window
    writing its own rows. From here (workers elsewhere): windows come back a few per compute."""
    ds = make_ds(lines=96, chunk=16)  # 6 chunks
    seen = []

    def source(block, block_info=None):
        seen.append(block_info[0]["array-location"][0])
        return block

    if where == "from here":
        monkeypatch.setattr(iw, "_writers_sharing", lambda path: None)
    image = ds.image.copy(data=ds.image.data.map_blocks(source, dtype=np.uint8))
    with _Computes() as computes, dask.config.set(scheduler="sync"):
        path = write_isis(ds.assign(image=image), tmp_path / "s.cub", tile_size=(40, 16), blocks_per_compute=2)
    # in place, each of the single compute's tasks holds one window; from here, 6 windows go
    # 2 per compute: never the whole image at once
    assert computes.count == (1 if where == "in place" else 3)
    assert sorted(seen) == [(i, i + 16) for i in range(0, 96, 16)]  # each chunk read once
    np.testing.assert_array_equal(ir.read_cube(path).compute()[0], decompand_block(ds.image.values))
    np.testing.assert_array_equal(ir.read_table(path, "Ctx Prefix Dark Pixels")["DarkPixels"],
                                  decompand_dark_block(ds.dark.values).astype(np.int32))


def test_failure_leaves_nothing(tmp_path):
    ds = make_ds()

    def boom(block):
        raise RuntimeError("worker died")

    bad = ds.image.copy(data=ds.image.data.map_blocks(boom, dtype=np.uint8))
    target = tmp_path / "x.cub"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="worker died"):
        write_isis(ds.assign(image=bad), target)
    assert target.read_bytes() == b"old"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.cub"]


def test_refusals(tmp_path):
    ds = make_ds()
    with pytest.raises(ValueError, match="level-1"):
        write_isis(ds, tmp_path / "a.cub", level=1)
    iof = ds.image.astype(np.float32).assign_attrs(calibration="iof")
    with pytest.raises(ValueError, match="level-0"):
        write_isis(ds.assign(image=iof), tmp_path / "a.cub", level=0)
    with pytest.raises(ValueError, match="iof_factor"):
        write_isis(ds.assign(image=iof), tmp_path / "a.cub")
    lin = ds.copy()
    lin.attrs["SAMPLE_BIT_MODE_ID"] = "LIN4"
    with pytest.raises(UnsupportedModeError):
        write_isis(lin, tmp_path / "a.cub")
    assert not list(tmp_path.iterdir())


def test_good_tile_size_as_isis():
    assert good_tile_size(5000, 2) == 1000 and good_tile_size(24576, 2) == 1024  # the B10 cube
    assert good_tile_size(5000, 4) == 500 and good_tile_size(24576, 4) == 512
    assert good_tile_size(20, 2) == 20
    assert good_tile_size(1031, 2) == 128  # a prime: no divisor, ISIS falls back to 128


@pytest.mark.cluster
def test_cluster_workers_write_in_place_or_send_back(tmp_path, monkeypatch):
    """Workers that see the cube file write their own windows; otherwise blocks come back."""
    import logging

    from distributed import Client, LocalCluster

    ds = make_ds(lines=96, chunk=16)
    with dask.config.set(scheduler="sync"):
        reference = write_isis(ds, tmp_path / "sync.cub", tile_size=(40, 16))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        sharing = iw._writers_sharing(reference)
        assert sharing[0] is client and sorted(sharing[1:]) == sorted(client.scheduler_info()["workers"])
        in_place = write_isis(ds, tmp_path / "in-place.cub", tile_size=(40, 16))
        # a worker that sees another file (another host) makes the writer fetch the blocks
        monkeypatch.setattr(iw, "_file_identity", lambda path: (-1, -1))
        assert iw._writers_sharing(reference) is None
        sent_back = write_isis(ds, tmp_path / "sent-back.cub", tile_size=(40, 16))
    for path in (in_place, sent_back):
        np.testing.assert_array_equal(ir.read_cube(path).compute(scheduler="sync")[0],
                                      ir.read_cube(reference).compute(scheduler="sync")[0])
        np.testing.assert_array_equal(ir.read_table(path, "Ctx Prefix Dark Pixels"),
                                      ir.read_table(reference, "Ctx Prefix Dark Pixels"))
