"""Write PDS3 index labels and tables in the real CTX ``cumindex.lbl`` layout.

The 51 columns, their order, DATA_TYPE, START_BYTE, BYTES, FORMAT and
NOT_APPLICABLE_CONSTANT are those of the MRO CTX EDR cumulative index label
(``MROX_nnnn/INDEX/CUMINDEX.LBL``, RECORD_BYTES = 555): quoted CHARACTER
fields, right-justified numbers, comma separators, CRLF record ends.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

# name, DATA_TYPE, START_BYTE, BYTES, FORMAT, NOT_APPLICABLE_CONSTANT
CTX_COLUMNS: list[tuple[str, str, int, int, str, float | None]] = [
    ("VOLUME_ID", "CHARACTER", 2, 9, "A9", None),
    ("FILE_SPECIFICATION_NAME", "CHARACTER", 14, 35, "A35", None),
    ("ORIGINAL_PRODUCT_ID", "CHARACTER", 52, 16, "A16", None),
    ("PRODUCT_ID", "CHARACTER", 71, 26, "A26", None),
    ("IMAGE_TIME", "CHARACTER", 100, 23, "A23", None),
    ("INSTRUMENT_ID", "CHARACTER", 126, 6, "A6", None),
    ("INSTRUMENT_MODE_ID", "CHARACTER", 135, 5, "A5", None),
    ("LINE_SAMPLES", "ASCII_INTEGER", 142, 4, "I4", None),
    ("LINES", "ASCII_INTEGER", 147, 6, "I6", None),
    ("SPATIAL_SUMMING", "ASCII_INTEGER", 154, 2, "I2", None),
    ("SCALED_PIXEL_WIDTH", "ASCII_REAL", 157, 8, "F8.2", 0.0),
    ("PIXEL_ASPECT_RATIO", "ASCII_REAL", 166, 6, "F6.2", 0.0),
    ("EMISSION_ANGLE", "ASCII_REAL", 173, 6, "F6.2", 999.9),
    ("INCIDENCE_ANGLE", "ASCII_REAL", 180, 6, "F6.2", 999.9),
    ("PHASE_ANGLE", "ASCII_REAL", 187, 6, "F6.2", 999.9),
    ("CENTER_LONGITUDE", "ASCII_REAL", 194, 6, "F6.2", 999.9),
    ("CENTER_LATITUDE", "ASCII_REAL", 201, 6, "F6.2", 999.9),
    ("UPPER_LEFT_LONGITUDE", "ASCII_REAL", 208, 6, "F6.2", 999.9),
    ("UPPER_LEFT_LATITUDE", "ASCII_REAL", 215, 6, "F6.2", 999.9),
    ("UPPER_RIGHT_LONGITUDE", "ASCII_REAL", 222, 6, "F6.2", 999.9),
    ("UPPER_RIGHT_LATITUDE", "ASCII_REAL", 229, 6, "F6.2", 999.9),
    ("LOWER_LEFT_LONGITUDE", "ASCII_REAL", 236, 6, "F6.2", 999.9),
    ("LOWER_LEFT_LATITUDE", "ASCII_REAL", 243, 6, "F6.2", 999.9),
    ("LOWER_RIGHT_LONGITUDE", "ASCII_REAL", 250, 6, "F6.2", 999.9),
    ("LOWER_RIGHT_LATITUDE", "ASCII_REAL", 257, 6, "F6.2", 999.9),
    ("MISSION_PHASE_NAME", "CHARACTER", 265, 10, "A10", None),
    ("TARGET_NAME", "CHARACTER", 278, 6, "A6", None),
    ("SPACECRAFT_CLOCK_START_COUNT", "CHARACTER", 287, 15, "A15", None),
    ("FOCAL_PLANE_TEMPERATURE", "ASCII_REAL", 304, 5, "F5.1", None),
    ("LINE_EXPOSURE_DURATION", "ASCII_REAL", 310, 8, "F8.4", None),
    ("OFFSET_MODE_ID", "CHARACTER", 320, 11, "A11", None),
    ("SAMPLE_FIRST_PIXEL", "ASCII_INTEGER", 333, 4, "I4", None),
    ("SCALED_IMAGE_WIDTH", "ASCII_REAL", 338, 7, "F7.2", 0.0),
    ("SCALED_IMAGE_HEIGHT", "ASCII_REAL", 346, 8, "F8.2", 0.0),
    ("SPACECRAFT_ALTITUDE", "ASCII_REAL", 355, 7, "F7.2", None),
    ("TARGET_CENTER_DISTANCE", "ASCII_REAL", 363, 7, "F7.2", None),
    ("SLANT_DISTANCE", "ASCII_REAL", 371, 7, "F7.2", 0.0),
    ("USAGE_NOTE", "CHARACTER", 380, 1, "A1", None),
    ("NORTH_AZIMUTH", "ASCII_REAL", 383, 6, "F6.2", 0.0),
    ("SUB_SOLAR_AZIMUTH", "ASCII_REAL", 390, 6, "F6.2", 0.0),
    ("SUB_SOLAR_LONGITUDE", "ASCII_REAL", 397, 6, "F6.2", None),
    ("SUB_SOLAR_LATITUDE", "ASCII_REAL", 404, 6, "F6.2", None),
    ("SUB_SPACECRAFT_LONGITUDE", "ASCII_REAL", 411, 6, "F6.2", None),
    ("SUB_SPACECRAFT_LATITUDE", "ASCII_REAL", 418, 6, "F6.2", None),
    ("SOLAR_DISTANCE", "ASCII_REAL", 425, 11, "F11.1", None),
    ("SOLAR_LONGITUDE", "ASCII_REAL", 437, 6, "F6.2", None),
    ("LOCAL_TIME", "ASCII_REAL", 444, 5, "F5.2", 0.0),
    ("IMAGE_SKEW_ANGLE", "ASCII_REAL", 450, 5, "F5.1", 0.0),
    ("RATIONALE_DESC", "CHARACTER", 457, 80, "A80", None),
    ("DATA_QUALITY_DESC", "CHARACTER", 540, 6, "A6", None),
    ("ORBIT_NUMBER", "ASCII_INTEGER", 548, 6, "I6", None),
]
ROW_BYTES = 555


def default_row(product_id: str, volume: str = "MROX_0001", **values: Any) -> dict[str, Any]:
    """A plausible CTX index row for ``product_id``; keyword arguments override fields."""
    orbit = int(product_id[4:10])
    row: dict[str, Any] = {
        "VOLUME_ID": volume, "FILE_SPECIFICATION_NAME": f"DATA/{product_id}.IMG",
        "ORIGINAL_PRODUCT_ID": "4A_04_1000000100", "PRODUCT_ID": product_id,
        "IMAGE_TIME": "2006-09-27T21:58:33.012", "INSTRUMENT_ID": "CTX", "INSTRUMENT_MODE_ID": "NIFL",
        "LINE_SAMPLES": 5056, "LINES": 5120, "SPATIAL_SUMMING": 1, "SCALED_PIXEL_WIDTH": 5.01,
        "PIXEL_ASPECT_RATIO": 1.21, "EMISSION_ANGLE": 0.08, "INCIDENCE_ANGLE": 84.00, "PHASE_ANGLE": 83.93,
        "CENTER_LONGITUDE": 195.47, "CENTER_LATITUDE": -44.73,
        "UPPER_LEFT_LONGITUDE": 195.72, "UPPER_LEFT_LATITUDE": -45.01,
        "UPPER_RIGHT_LONGITUDE": 195.13, "UPPER_RIGHT_LATITUDE": -44.96,
        "LOWER_LEFT_LONGITUDE": 195.81, "LOWER_LEFT_LATITUDE": -44.49,
        "LOWER_RIGHT_LONGITUDE": 195.22, "LOWER_RIGHT_LATITUDE": -44.45,
        "MISSION_PHASE_NAME": "TRANSITION", "TARGET_NAME": "MARS", "SPACECRAFT_CLOCK_START_COUNT": "0843861531:210",
        "FOCAL_PLANE_TEMPERATURE": 282.8, "LINE_EXPOSURE_DURATION": 1.877, "OFFSET_MODE_ID": "194/200/201",
        "SAMPLE_FIRST_PIXEL": 0, "SCALED_IMAGE_WIDTH": 25.06, "SCALED_IMAGE_HEIGHT": 31.00,
        "SPACECRAFT_ALTITUDE": 250.93, "TARGET_CENTER_DISTANCE": 3637.29, "SLANT_DISTANCE": 250.93,
        "USAGE_NOTE": "N", "NORTH_AZIMUTH": 276.59, "SUB_SOLAR_AZIMUTH": 228.02, "SUB_SOLAR_LONGITUDE": 249.82,
        "SUB_SOLAR_LATITUDE": 23.36, "SUB_SPACECRAFT_LONGITUDE": 195.47, "SUB_SPACECRAFT_LATITUDE": -44.72,
        "SOLAR_DISTANCE": 242892520.7, "SOLAR_LONGITUDE": 112.76, "LOCAL_TIME": 15.63, "IMAGE_SKEW_ANGLE": 90.1,
        "RATIONALE_DESC": "South mid-latitude crater", "DATA_QUALITY_DESC": "OK", "ORBIT_NUMBER": orbit,
    }
    row.update(values)
    return row


def format_row(row: Mapping[str, Any]) -> bytes:
    """One 555-byte record: quoted text, right-justified numbers, CRLF."""
    fields = []
    for name, data_type, _start, width, fmt, na in CTX_COLUMNS:
        value = row.get(name)
        if data_type == "CHARACTER":
            text = "" if value is None else str(value)
            if len(text) > width:
                raise ValueError(f"{name}: {text!r} is wider than {width}")
            fields.append(f'"{text:<{width}}"')
        else:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                value = na if na is not None else 0
            if fmt.startswith("I"):
                text = f"{int(value):>{width}d}"
            else:
                decimals = int(fmt.split(".")[1])
                text = f"{float(value):>{width}.{decimals}f}"
            if len(text) > width:
                raise ValueError(f"{name}: {value!r} does not fit {fmt}")
            fields.append(text)
    record = (",".join(fields) + "\r\n").encode("ascii")
    assert len(record) == ROW_BYTES, len(record)
    return record


def label_text(rows: int, table_name: str = "CUMINDEX.TAB") -> str:
    """The CTX cumulative index label for ``rows`` rows."""
    lines = [
        "PDS_VERSION_ID                 = PDS3",
        "RECORD_TYPE                    = FIXED_LENGTH",
        f"RECORD_BYTES                   = {ROW_BYTES}",
        f"FILE_RECORDS                   = {rows}",
        f'^TABLE                         = "{table_name}"',
        'DATA_SET_ID                    = "MRO-M-CTX-2-EDR-L0-V1.0"',
        'SPACECRAFT_NAME                = "MARS RECONNAISSANCE ORBITER"',
        'INSTRUMENT_NAME                = "CONTEXT CAMERA"',
        "TARGET_NAME                    = MARS",
        'MISSION_PHASE_NAME             = "N/A"',
        "PRODUCT_CREATION_TIME          = 2007-05-23T19:00:00",
        "",
        "OBJECT                         = TABLE",
        " INTERCHANGE_FORMAT            = ASCII",
        f" ROWS                          = {rows}",
        f" COLUMNS                       = {len(CTX_COLUMNS)}",
        f" ROW_BYTES                     = {ROW_BYTES}",
        " INDEX_TYPE                    = CUMULATIVE",
        "",
    ]
    for number, (name, data_type, start, width, fmt, na) in enumerate(CTX_COLUMNS, 1):
        lines += ["OBJECT = COLUMN", f"NAME = {name}", f"COLUMN_NUMBER = {number}", f"DATA_TYPE = {data_type}",
                  f"START_BYTE = {start}", f"BYTES = {width}", f'FORMAT = "{fmt}"']
        if na is not None:
            lines.append(f"NOT_APPLICABLE_CONSTANT = {na}")
        lines += [f'DESCRIPTION = "{name.lower().replace("_", " ")}"', "END_OBJECT = COLUMN", ""]
    lines += ["END_OBJECT                     = TABLE", "", "END", ""]
    return "\r\n".join(lines)


def write_cumindex(folder: str | pathlib.Path, rows: Iterable[Mapping[str, Any]], *,
                   lf_only: bool = False) -> pathlib.Path:
    """Write ``cumindex.lbl`` + ``CUMINDEX.TAB`` into ``folder``; return the label path.

    ``lf_only`` turns every CRLF of the table into LF, as a careless transfer
    would, while the label still says 555 bytes per record.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = b"".join(format_row(r) for r in rows)
    if lf_only:
        data = data.replace(b"\r\n", b"\n")
    (folder / "CUMINDEX.TAB").write_bytes(data)
    label = folder / "cumindex.lbl"
    label.write_text(label_text(data.count(b"\n")), newline="")
    return label
