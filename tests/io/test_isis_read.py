"""Tests of the ISIS3 cube reader, on the real ISIS test cube and on hand-built cubes."""

from __future__ import annotations

import numpy as np
import pytest

from ctxdask.exceptions import LabelError, TruncatedFileError, UnsupportedModeError
from ctxdask.io import isis_read as ir


def _cube(path, pixels: np.ndarray, *, type_name, byte_order="Lsb", fmt="BandSequential",
          tile=None, base=0.0, mult=1.0, tables=(), label_bytes=4096):
    """Write a cube byte by byte from a hand-written label, independently of ctxdask's writer.

    ``pixels`` is (bands, lines, samples) in the storage dtype; ``tables`` holds
    (label_object_text_with_{start}, bytes) pairs appended after the core.
    """
    bands, lines, samples = pixels.shape
    order = "<" if byte_order == "Lsb" else ">"
    stored = pixels.astype(pixels.dtype.newbyteorder(order))
    if fmt == "Tile":
        ts, tl = tile
        nrow, ncol = -(-lines // tl), -(-samples // ts)
        padded = np.zeros((bands, nrow * tl, ncol * ts), dtype=stored.dtype)
        padded[:, :lines, :samples] = stored
        core = padded.reshape(bands, nrow, tl, ncol, ts).transpose(0, 1, 3, 2, 4).tobytes()
        tile_kw = f"    TileSamples = {ts}\n    TileLines = {tl}\n"
    else:
        core, tile_kw = stored.tobytes(), ""
    pos = label_bytes + len(core)
    objects, blobs = "", b""
    for text, data in tables:
        objects += text.format(start=pos + 1, nbytes=len(data)) + "\n"
        pos += len(data)
        blobs += data
    label = (
        f"Object = IsisCube\n  Object = Core\n    StartByte = {label_bytes + 1}\n    Format = {fmt}\n"
        f"{tile_kw}    Group = Dimensions\n      Samples = {samples}\n      Lines = {lines}\n"
        f"      Bands = {bands}\n    End_Group\n    Group = Pixels\n      Type = {type_name}\n"
        f"      ByteOrder = {byte_order}\n      Base = {base}\n      Multiplier = {mult}\n"
        f"    End_Group\n  End_Object\nEnd_Object\n{objects}End\n"
    )
    path.write_bytes(label.encode().ljust(label_bytes, b"\0") + core + blobs)
    return path


def test_real_test_cube_pixels(reference_dir):
    path = reference_dir / "isis" / "ctxTestImage.cub"
    layout = ir.CubeLayout.from_label(path)
    assert (layout.samples, layout.lines, layout.bands) == (20, 20, 1)
    assert (layout.pixel_type, layout.byte_order, layout.start, layout.tiled) == ("SignedWord", "<", 65536, True)
    raw = np.frombuffer(path.read_bytes(), dtype="<i2", count=400, offset=65536).reshape(20, 20)
    cube = ir.read_cube(path)
    assert cube.shape == (1, 20, 20) and cube.dtype == np.float32
    np.testing.assert_array_equal(cube.compute()[0], raw)
    np.testing.assert_array_equal(ir.read_block(layout, 5, 9, raw=True), raw[5:9])
    assert 1 <= raw.min() and raw.max() <= 4080  # decompanded DN


def test_real_test_cube_tables(reference_dir):
    path = reference_dir / "isis" / "ctxTestImage.cub"
    label = ir.read_label(path)
    dark = ir.read_table(path, "Ctx Prefix Dark Pixels", label=label)
    assert dark.shape == (4096,) and dark.dtype["DarkPixels"].shape == (16,)
    expected = np.frombuffer(path.read_bytes(), dtype="<i4", count=4096 * 16, offset=69961).reshape(4096, 16)
    np.testing.assert_array_equal(dark["DarkPixels"], expected)
    sun = ir.read_table(path, "SunPosition", label=label)
    assert sun.dtype.names == ("J2000X", "J2000Y", "J2000Z", "J2000XV", "J2000YV", "J2000ZV", "ET")
    assert sun["ET"][0] == pytest.approx(217189064.18653)
    original = ir.read_original_label(path, label=label)
    assert original.startswith("PDS_VERSION_ID") and "P01_001473_2479_XI_67N185W" in original
    assert ir.read_blob(path, "History", label=label).startswith(b"Object = mroctx2isis")
    with pytest.raises(LabelError, match="no Table named 'Nope'"):
        ir.read_table(path, "Nope", label=label)


@pytest.mark.parametrize("byte_order", ["Lsb", "Msb"])
def test_bsq_multiband_unsigned_word_scaled(tmp_path, byte_order):
    rng = np.random.default_rng(3)
    pix = rng.integers(3, 60000, (2, 37, 11), dtype=np.uint16)
    pix[1, 5, 3], pix[0, 0, 0] = 0, 65535  # Null, Hrs
    path = _cube(tmp_path / "a.cub", pix, type_name="UnsignedWord", byte_order=byte_order, base=-10.0, mult=0.25)
    cube = ir.read_cube(path, chunk_lines=10, dtype=np.float64)
    assert cube.chunks == ((1, 1), (10, 10, 10, 7), (11,))
    got = cube.compute()
    expected = -10.0 + 0.25 * pix.astype(np.float64)
    expected[1, 5, 3] = expected[0, 0, 0] = np.nan
    np.testing.assert_array_equal(got, expected)


def test_tiled_real_with_padding_and_specials(tmp_path):
    rng = np.random.default_rng(4)
    pix = rng.normal(size=(1, 45, 23)).astype(np.float32)
    pix[0, 44, 22] = np.array(0xFF7FFFFB, dtype=np.uint32).view(np.float32)  # Null in the last tile
    path = _cube(tmp_path / "t.cub", pix, type_name="Real", byte_order="Msb", fmt="Tile", tile=(8, 16))
    layout = ir.CubeLayout.from_label(path)
    assert (layout.tile_samples, layout.tile_lines, layout.tile_columns, layout.tile_rows) == (8, 16, 3, 3)
    cube = ir.read_cube(path, chunk_lines=20)  # rounded up to whole tile rows
    assert cube.chunks[1] == (32, 13)
    got = cube.compute()[0]
    expected = pix[0].copy()
    expected[44, 22] = np.nan
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ir.read_block(layout, 14, 35), expected[14:35])  # spans 3 tile rows


def test_flat_field_cube(tmp_path):
    flat = np.linspace(0.9, 1.1, 5000, dtype=np.float32)[None, None, :]
    path = _cube(tmp_path / "ctxFlat_0001.cub", flat, type_name="Real", fmt="Tile", tile=(500, 1))
    np.testing.assert_array_equal(ir.read_cube(path)[0, 0].compute(), flat[0, 0])


def test_unsigned_byte(tmp_path):
    pix = np.array([[[0, 1, 254, 255]]], dtype=np.uint8)
    got = ir.read_cube(_cube(tmp_path / "b.cub", pix, type_name="UnsignedByte")).compute()
    np.testing.assert_array_equal(got[0, 0], [np.nan, 1, 254, np.nan])


def test_table_field_types(tmp_path):
    rec = np.dtype([("I", ">i4", (2,)), ("D", ">f8"), ("R", ">f4"), ("T", "S6")])
    data = np.array([((1, -2), 0.5, 1.5, b"abc"), ((3, 4), -1e300, 2.5, b"xyzxyz")], dtype=rec)
    table = (
        'Object = Table\n  Name = "Mixed Fields"\n  StartByte = {start}\n  Bytes = {nbytes}\n'
        "  Records = 2\n  ByteOrder = Msb\n"
        "  Group = Field\n    Name = I\n    Type = Integer\n    Size = 2\n  End_Group\n"
        "  Group = Field\n    Name = D\n    Type = Double\n    Size = 1\n  End_Group\n"
        "  Group = Field\n    Name = R\n    Type = Real\n    Size = 1\n  End_Group\n"
        "  Group = Field\n    Name = T\n    Type = Text\n    Size = 6\n  End_Group\nEnd_Object"
    )
    pix = np.ones((1, 2, 2), dtype=np.int16)
    path = _cube(tmp_path / "tab.cub", pix, type_name="SignedWord", tables=[(table, data.tobytes())])
    got = ir.read_table(path, "Mixed Fields")
    np.testing.assert_array_equal(got["I"], [[1, -2], [3, 4]])
    np.testing.assert_array_equal(got["D"], [0.5, -1e300])
    np.testing.assert_array_equal(got["R"], [1.5, 2.5])
    assert got["T"].tolist() == [b"abc", b"xyzxyz"]


def test_reads_are_lazy_and_pickle(tmp_path):
    import pickle

    pix = np.arange(40 * 7, dtype=np.int16).reshape(1, 40, 7)
    path = _cube(tmp_path / "l.cub", pix, type_name="SignedWord")
    cube = ir.read_cube(path, chunk_lines=8)
    assert cube.npartitions == 5
    path.unlink()  # nothing was read yet, so building the graph needed no data
    with pytest.raises(FileNotFoundError):
        cube.compute()
    layout = ir.CubeLayout("x", 1, 1, 1, "Real", "<", 0.0, 1.0, 0, 1, 1, False)
    assert pickle.loads(pickle.dumps(layout)) == layout


def test_errors(tmp_path):
    pix = np.ones((1, 10, 10), dtype=np.int16)
    path = _cube(tmp_path / "c.cub", pix, type_name="SignedWord")
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(TruncatedFileError, match="c.cub"):
        ir.read_cube(path)
    with pytest.raises(UnsupportedModeError, match="SignedInteger"):
        ir.read_cube(_cube(tmp_path / "i.cub", pix.astype(np.int32), type_name="SignedInteger"))
    junk = tmp_path / "junk.cub"
    junk.write_bytes(b"\x00\x01 not a cube" * 10)
    with pytest.raises(LabelError, match="no ISIS label"):
        ir.read_label(junk)
    layout = ir.CubeLayout.from_label(_cube(tmp_path / "ok.cub", pix, type_name="SignedWord"))
    with pytest.raises(IndexError):
        ir.read_block(layout, 5, 11)
