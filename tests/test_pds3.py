"""PDS3 label reading: attached and detached, as labels occur in the wild."""

from __future__ import annotations

import pvl
import pytest

from ctxdask import pds3
from ctxdask.exceptions import EmptyFileError, LabelError, MissingFileError, NotAFileError
from ctxdask.testing import make_edr

REAL_LABELS = [
    "B10_013341_1010_XN_79S172W.lbl",
    "D10_031011_1864_XI_06N201W.lbl",
    "P01_001472_1747_XI_05S146W.lbl",
    "P01_001473_2479_XI_67N185W.lbl",
]


@pytest.mark.parametrize("name", REAL_LABELS)
def test_real_labels_parse_with_types_and_units(reference_dir, name):
    label = pds3.read_label(reference_dir / "labels" / name)
    assert label.attached
    assert label["INSTRUMENT_ID"] == "CTX"
    assert isinstance(label["IMAGE"]["LINES"], int)
    exposure = label["LINE_EXPOSURE_DURATION"]
    assert isinstance(exposure, pvl.collections.Quantity) and exposure.units == "MSEC"
    assert label["IMAGE"]["SAMPLE_BIT_MASK"] == 0xFF
    attrs = pds3.label_attrs(label.module)
    assert attrs["LINE_EXPOSURE_DURATION_units"] == "MSEC"
    assert isinstance(attrs["LINE_EXPOSURE_DURATION"], float)
    assert attrs["FOCAL_PLANE_TEMPERATURE_units"] == "K"
    assert attrs["IMAGE_POINTER"] == 2
    assert isinstance(attrs["START_TIME"], str) and attrs["START_TIME"].startswith("20")
    assert attrs["LINES"] == label["IMAGE"]["LINES"]
    # every attr is a plain, serializable value
    assert all(isinstance(v, (str, int, float)) for v in attrs.values())


def test_label_without_pds_version_id(reference_dir):
    label = pds3.read_label(reference_dir / "labels" / "P01_001472_1747_XI_05S146W.lbl")
    assert "PDS_VERSION_ID" not in label.module
    assert label["PRODUCT_ID"] == "P01_001472_1747_XI_05S146W"


def test_quoted_and_unquoted_strings_and_times(reference_dir):
    quoted = pds3.label_attrs(pds3.read_label(reference_dir / "labels" / "D10_031011_1864_XI_06N201W.lbl").module)
    bare = pds3.label_attrs(pds3.read_label(reference_dir / "labels" / "B10_013341_1010_XN_79S172W.lbl").module)
    assert quoted["DATA_SET_ID"] == bare["DATA_SET_ID"] == "MRO-M-CTX-2-EDR-L0-V1.0"
    assert quoted["SPACECRAFT_CLOCK_START_COUNT"] == "1047245959:234"
    assert bare["SPACECRAFT_CLOCK_START_COUNT"] == "0928283918:060"
    assert bare["START_TIME"] == "2009-06-01T00:38:16.057"
    assert bare["CHECKSUM"] == 0xC0790F29


def test_crlf_and_padding(reference_dir, tmp_path):
    text = (reference_dir / "labels" / "B10_013341_1010_XN_79S172W.lbl").read_bytes()
    crlf = tmp_path / "crlf.IMG"
    crlf.write_bytes(text.replace(b"\n", b"\r\n").ljust(5056, b"\0") + b"\x07" * 100)
    label = pds3.read_label(crlf)
    assert label["PRODUCT_ID"] == "B10_013341_1010_XN_79S172W"
    assert label.text.endswith("End\r\n") or label.text.rstrip().endswith("End")
    assert label.pointer() == (str(crlf), 5056)


def test_detached_label_found_beside_image(tmp_path):
    img = make_edr(tmp_path / "B10_013341_1010_XN_79S172W.IMG", lines=32, line_samples=128, detached=True)
    label = pds3.read_label(img)
    assert not label.attached
    assert label.source.endswith(".LBL")
    assert label.pointer() == (str(img), 0)
    # the label itself opens too
    assert pds3.read_label(tmp_path / "B10_013341_1010_XN_79S172W.LBL").pointer() == (str(img), 0)


def test_pointer_forms(tmp_path):
    module = pvl.loads('RECORD_BYTES = 100\n^IMAGE = 3\nEND')
    assert pds3.Label("x", "", module, True, 0).pointer() == ("x", 200)
    module = pvl.loads('RECORD_BYTES = 100\n^IMAGE = 2049 <BYTES>\nEND')
    assert pds3.Label("x", "", module, True, 0).pointer() == ("x", 2048)
    (tmp_path / "data.img").write_bytes(b"")
    module = pvl.loads('RECORD_BYTES = 100\n^IMAGE = ("DATA.IMG", 2)\nEND')
    src, offset = pds3.Label(str(tmp_path / "a.lbl"), "", module, False, 0).pointer()
    assert (src, offset) == (str(tmp_path / "data.img"), 100)
    with pytest.raises(LabelError, match="not a valid PDS3 pointer"):
        pds3.Label("x", "", pvl.loads("^IMAGE = -4\nEND"), True, 0).pointer()


@pytest.mark.parametrize(
    "content, error, words",
    [
        (b"", EmptyFileError, "empty"),
        (bytes(range(256)) * 64, LabelError, "binary"),
        (b"Dear diary, today I opened a CTX image.\n" * 10, LabelError, "no PDS3 label"),
        (b"PDS_VERSION_ID = PDS3\nLINES = 12\n" + b"A = 1\n" * 10, LabelError, "no END"),
        (b"PDS_VERSION_ID = PDS3\nLINES = = 12\nEND\n", LabelError, "cannot be parsed"),
        (b"PDS_VERSION_ID = PDS3\nNOTE = \"caf\xc3\xa9\"\nEND\n", LabelError, "non-ASCII"),
    ],
)
def test_bad_labels_raise_clear_errors(tmp_path, content, error, words):
    path = tmp_path / "bad.IMG"
    path.write_bytes(content)
    with pytest.raises(error, match=words) as info:
        pds3.read_label(path)
    assert str(path) in str(info.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(MissingFileError, match="no such file"):
        pds3.read_label(tmp_path / "nope.IMG")
    with pytest.raises(NotAFileError, match="directory"):
        pds3.read_label(tmp_path)


def test_format_time_keeps_label_precision():
    import datetime

    assert pds3.format_time(datetime.datetime(2009, 6, 1, 0, 38, 16, 57000)) == "2009-06-01T00:38:16.057"
    assert pds3.format_time(datetime.datetime(2009, 6, 1, 0, 38, 16)) == "2009-06-01T00:38:16"
    assert pds3.format_time(datetime.datetime(2009, 6, 1, 0, 38, 16, 57001)) == "2009-06-01T00:38:16.057001"
