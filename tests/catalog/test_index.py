"""The PDS3 index table reader: the real CTX cumindex layout, wild-table quirks, properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from cumindex import CTX_COLUMNS, default_row, format_row, write_cumindex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxdask.catalog import IndexFormatError, iter_index, open_index, read_index

PIDS = ["T01_000801_1353_XN_44S195W", "T01_000801_1867_XN_06N202W", "T01_000802_1412_XN_38S223W",
        "T01_000803_1393_XN_40S250W", "T01_000804_1599_XN_20S280W"]


@pytest.fixture
def ctx_index(tmp_path):
    rows = [default_row(pid, ORBIT_NUMBER=int(pid[4:10])) for pid in PIDS]
    rows[1].update(SCALED_PIXEL_WIDTH=0.0, EMISSION_ANGLE=999.9, RATIONALE_DESC='Quoted, with "commas", inside',
                   VOLUME_ID="MROX_0002")
    return write_cumindex(tmp_path, rows), rows


def test_writer_matches_the_real_label_layout():
    # the writer lays fields out itself; its byte positions must be the real label's
    record = format_row(default_row(PIDS[0]))
    for name, _type, start, width, _fmt, _na in CTX_COLUMNS:
        field = record[start - 1: start - 1 + width].decode()
        if _type == "CHARACTER":
            assert record[start - 2:start - 1] == b'"' and record[start - 1 + width:start + width] == b'"', name
        assert field.strip() != "" or name == "USAGE_NOTE", name
    assert len(record) == 555 and record.endswith(b"\r\n")


def test_ctx_cumindex_types_and_values(ctx_index):
    label, rows = ctx_index
    table = open_index(label)
    assert (table.rows, table.record_bytes, len(table.columns), table.object_name) == (5, 555, 51, "TABLE")
    df = read_index(label, dtypes={"IMAGE_TIME": "time"})
    assert list(df.columns) == [c[0] for c in CTX_COLUMNS]
    assert df.index.name == "row" and list(df.index) == [0, 1, 2, 3, 4]
    assert str(df["PRODUCT_ID"].dtype) == "str" and df["PRODUCT_ID"].tolist() == PIDS
    assert df["ORBIT_NUMBER"].dtype == "Int64" and df["ORBIT_NUMBER"].tolist() == [801, 801, 802, 803, 804]
    assert df["EMISSION_ANGLE"].dtype == "float64"
    assert df["IMAGE_TIME"].dtype == "datetime64[ns]"
    assert df["IMAGE_TIME"][0] == pd.Timestamp("2006-09-27T21:58:33.012")
    # NOT_APPLICABLE_CONSTANT values read as missing; others untouched
    assert math.isnan(df["SCALED_PIXEL_WIDTH"][1]) and math.isnan(df["EMISSION_ANGLE"][1])
    assert df["SCALED_PIXEL_WIDTH"][0] == 5.01 and df["CENTER_LONGITUDE"][0] == 195.47
    # quoted text keeps its commas and inner quotes, loses its padding
    assert df["RATIONALE_DESC"][1] == 'Quoted, with "commas", inside'
    assert df["VOLUME_ID"].tolist() == ["MROX_0001", "MROX_0002", "MROX_0001", "MROX_0001", "MROX_0001"]
    raw = read_index(label, columns=["SCALED_PIXEL_WIDTH"], mask_constants=False)
    assert raw["SCALED_PIXEL_WIDTH"][1] == 0.0
    assert table.column("EMISSION_ANGLE").missing == (999.9,)


def test_lf_only_table_reads_the_same(tmp_path, ctx_index):
    label, rows = ctx_index
    lf_label = write_cumindex(tmp_path / "lf", rows, lf_only=True)
    assert open_index(lf_label).record_bytes == 554
    pd.testing.assert_frame_equal(read_index(lf_label), read_index(label))


def test_chunks_columns_and_filter(ctx_index):
    label, _ = ctx_index
    full = read_index(label, columns=["PRODUCT_ID", "ORBIT_NUMBER"])
    chunks = list(iter_index(label, columns=["PRODUCT_ID", "ORBIT_NUMBER"], chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    pd.testing.assert_frame_equal(pd.concat(chunks), full)
    assert list(full.columns) == ["PRODUCT_ID", "ORBIT_NUMBER"]
    late = read_index(label, columns=["PRODUCT_ID", "ORBIT_NUMBER"], chunk_rows=2,
                      where=lambda c: c["ORBIT_NUMBER"] >= 802)
    assert late["PRODUCT_ID"].tolist() == PIDS[2:] and list(late.index) == [2, 3, 4]
    none = read_index(label, columns=["ORBIT_NUMBER"], where=lambda c: c["ORBIT_NUMBER"] < 0)
    assert len(none) == 0 and none["ORBIT_NUMBER"].dtype == "Int64"
    with pytest.raises(KeyError, match="no column 'NOPE'"):
        read_index(label, columns=["NOPE"])


def test_truncated_table(ctx_index):
    label, _ = ctx_index
    tab = label.parent / "CUMINDEX.TAB"
    tab.write_bytes(tab.read_bytes()[:-100])
    with pytest.raises(IndexFormatError, match="truncated table: the label declares 5 rows of 555 bytes but the file holds 4"):
        open_index(label)


def test_bad_number_names_row_and_column(ctx_index):
    label, _ = ctx_index
    tab = label.parent / "CUMINDEX.TAB"
    data = bytearray(tab.read_bytes())
    start = 555 * 3 + 173 - 1  # row 4, EMISSION_ANGLE
    data[start:start + 6] = b"  x.yz"
    tab.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=r"row 4, column EMISSION_ANGLE \(bytes 173-178\): 'x.yz' is not a real"):
        read_index(label)
    # other columns still read
    assert len(read_index(label, columns=["PRODUCT_ID"])) == 5


def test_table_over_http(http_server, ctx_index):
    base, root, log = http_server
    label, _ = ctx_index
    for name in ("cumindex.lbl", "CUMINDEX.TAB"):
        (root / name).write_bytes((label.parent / name).read_bytes())
    df = read_index(f"{base}/cumindex.lbl", columns=["PRODUCT_ID"], chunk_rows=2)
    assert df["PRODUCT_ID"].tolist() == PIDS
    assert any(r[2] for r in log if r[1] == "/CUMINDEX.TAB")  # read with Range requests


GENERIC_LABEL = """PDS_VERSION_ID = PDS3
RECORD_TYPE = FIXED_LENGTH
RECORD_BYTES = {row_bytes}
FILE_RECORDS = {rows}
^INDEX_TABLE = "INDEX.TAB"
OBJECT = INDEX_TABLE
  INTERCHANGE_FORMAT = ASCII
  ROWS = {rows}
  ROW_BYTES = {row_bytes}
  COLUMNS = {ncols}
  {structure}
{columns}
END_OBJECT = INDEX_TABLE
END
"""


def _column(name, data_type, start, nbytes, extra=""):
    return (f"  OBJECT = COLUMN\n    NAME = {name}\n    DATA_TYPE = {data_type}\n    START_BYTE = {start}\n"
            f"    BYTES = {nbytes}\n{extra}  END_OBJECT = COLUMN\n")


def test_items_times_missing_and_structure_file(tmp_path):
    # a non-CTX index: an ITEMS column, day-of-year and ISO times, "N/A" text, blank integer,
    # and the columns in a ^STRUCTURE format file in ../LABEL
    rows = [
        '"A1",  1.5,  2.5,  3.5,2006-001T12:00:00.50,"N/A",  7\r\n',
        '"B2", -1.0,  0.0,  9.9,2007-12-31T00:00:00Z,"ok ",   \r\n',
    ]
    row_bytes = len(rows[0])
    columns = (_column("NAME", "CHARACTER", 2, 2)
               + _column("VEC", "ASCII_REAL", 6, 17, "    ITEMS = 3\n    ITEM_BYTES = 5\n    ITEM_OFFSET = 6\n")
               + _column("WHEN", "TIME", 24, 20)
               + _column("NOTE", "CHARACTER", 46, 3, '    MISSING_CONSTANT = "N/A"\n')
               + _column("COUNT", "ASCII_INTEGER", 51, 3))
    (tmp_path / "INDEX").mkdir()
    (tmp_path / "LABEL").mkdir()
    (tmp_path / "LABEL" / "INDEX.FMT").write_text(columns)
    (tmp_path / "INDEX" / "INDEX.TAB").write_text("".join(rows), newline="")
    label = tmp_path / "INDEX" / "INDEX.LBL"
    label.write_text(GENERIC_LABEL.format(row_bytes=row_bytes, rows=2, ncols=5, structure='^STRUCTURE = "INDEX.FMT"',
                                          columns=""))
    df = read_index(label)
    assert list(df.columns) == ["NAME", "VEC_1", "VEC_2", "VEC_3", "WHEN", "NOTE", "COUNT"]
    assert df[["VEC_1", "VEC_2", "VEC_3"]].to_numpy().tolist() == [[1.5, 2.5, 3.5], [-1.0, 0.0, 9.9]]
    assert df["WHEN"].tolist() == [pd.Timestamp("2006-01-01T12:00:00.5"), pd.Timestamp("2007-12-31")]
    assert df["NOTE"].isna().tolist() == [True, False] and df["NOTE"][1] == "ok"
    assert df["COUNT"][0] == 7 and df["COUNT"].isna().tolist() == [False, True]
    assert read_index(label, columns=["VEC"]).shape == (2, 3)


@pytest.mark.parametrize("label_text, message", [
    ("PDS_VERSION_ID = PDS3\nRECORD_BYTES = 10\nOBJECT = IMAGE\nLINES = 1\nEND_OBJECT = IMAGE\nEND\n",
     "not a PDS3 table label"),
    (GENERIC_LABEL.format(row_bytes=10, rows=1, ncols=1, structure="", columns=_column("A", "ASCII_INTEGER", 8, 5)),
     "does not fit in ROW_BYTES = 10"),
    (GENERIC_LABEL.format(row_bytes=10, rows=1, ncols=2, structure="",
                          columns=_column("A", "ASCII_INTEGER", 1, 2) + _column("A", "ASCII_INTEGER", 3, 2)),
     "defines column A twice"),
    (GENERIC_LABEL.format(row_bytes=10, rows=1, ncols=1, structure="", columns=_column("A", "ASCII_INTEGER", 1, 2))
     .replace("INDEX_TABLE = \"INDEX.TAB\"", "INDEX_TABLE = \"MISSING.TAB\""),
     "does not exist"),
])
def test_bad_labels(tmp_path, label_text, message):
    (tmp_path / "INDEX.TAB").write_bytes(b"0123456789")
    label = tmp_path / "INDEX.LBL"
    label.write_text(label_text)
    with pytest.raises(IndexFormatError, match=message):
        read_index(label)


# -- property: whatever fits a fixed-width layout reads back exactly ----------------------------

_text = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='"'), min_size=0, max_size=12)
_kinds = st.sampled_from(["CHARACTER", "ASCII_INTEGER", "ASCII_REAL"])


@st.composite
def tables(draw):
    ncols = draw(st.integers(1, 6))
    kinds = [draw(_kinds) for _ in range(ncols)]
    nrows = draw(st.integers(0, 8))
    values = []
    for kind in kinds:
        if kind == "CHARACTER":
            col = [draw(st.one_of(st.none(), _text.filter(lambda s: s.strip() == s))) for _ in range(nrows)]
        elif kind == "ASCII_INTEGER":
            col = [draw(st.one_of(st.none(), st.integers(-(10**12), 10**12))) for _ in range(nrows)]
        else:
            col = [draw(st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False).map(lambda x: round(x, 4))))
                   for _ in range(nrows)]
        values.append(col)
    quote = draw(st.booleans())
    crlf = draw(st.booleans())
    align = draw(st.sampled_from(["<", ">"]))
    return kinds, values, nrows, quote, crlf, align


def _render(kind, value, quote):
    if value is None:
        return ""
    if kind == "CHARACTER":
        return f'"{value}"' if quote else value
    return repr(value) if kind == "ASCII_REAL" else str(value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables())
def test_fixed_width_round_trip(tmp_path_factory, table):
    kinds, values, nrows, quote, crlf, align = table
    widths = [max([len(_render(k, v, quote)) for v in col] + [1]) + 2 for k, col in zip(kinds, values)]
    starts, pos = [], 1
    for w in widths:
        starts.append(pos)
        pos += w + 1  # one comma between fields
    end = "\r\n" if crlf else "\n"
    row_bytes = pos - 1 + len(end)
    lines = []
    for r in range(nrows):
        cells = [f"{_render(k, col[r], quote):{align}{w}}" for k, col, w in zip(kinds, values, widths)]
        lines.append(",".join(cells) + end)
    folder = tmp_path_factory.mktemp("prop")
    (folder / "INDEX.TAB").write_text("".join(lines), newline="")
    cols = "".join(_column(f"C{i}", k, s, w) for i, (k, s, w) in enumerate(zip(kinds, starts, widths)))
    (folder / "INDEX.LBL").write_text(GENERIC_LABEL.format(row_bytes=row_bytes, rows=nrows, ncols=len(kinds),
                                                            structure="", columns=cols))
    df = read_index(folder / "INDEX.LBL", chunk_rows=3)
    assert len(df) == nrows
    for i, (kind, col) in enumerate(zip(kinds, values)):
        got = df[f"C{i}"]
        expected_dtype = {"CHARACTER": "str", "ASCII_INTEGER": "Int64", "ASCII_REAL": "float64"}[kind]
        assert str(got.dtype) == expected_dtype
        for value, cell in zip(col, got.tolist()):
            if value is None or (kind == "CHARACTER" and value == ""):
                assert cell is None or (isinstance(cell, float) and math.isnan(cell)) or cell is pd.NA
            elif kind == "ASCII_REAL":
                assert cell == value  # repr() round-trips exactly
            else:
                assert cell == value


def test_numeric_precision_at_scale(tmp_path):
    # a chunked read of many rows equals the one-shot read, value for value
    rng = np.random.default_rng(1)
    rows = [default_row(PIDS[i % 5], CENTER_LATITUDE=float(np.round(rng.uniform(-89, 89), 2)),
                        ORBIT_NUMBER=int(rng.integers(1, 99999))) for i in range(2000)]
    label = write_cumindex(tmp_path, rows)
    one = read_index(label, columns=["CENTER_LATITUDE", "ORBIT_NUMBER"], chunk_rows=10_000)
    many = read_index(label, columns=["CENTER_LATITUDE", "ORBIT_NUMBER"], chunk_rows=333)
    pd.testing.assert_frame_equal(one, many)
    assert one["CENTER_LATITUDE"].tolist() == [r["CENTER_LATITUDE"] for r in rows]
