"""ISIS3 cubes: the public reading and writing API.

Reading lives in :mod:`ctxdask.io.isis_read`, writing in
:mod:`ctxdask.io.isis_write`, pixel types and special values in
:mod:`ctxdask.io.isis_pixels`; this module gathers what users call.
"""

from __future__ import annotations

from ctxdask.io.isis_pixels import PIXEL_TYPES, PixelType, decode_block, encode_block, pixel_type
from ctxdask.io.isis_read import (
    CubeLayout,
    read_blob,
    read_block,
    read_cube,
    read_label,
    read_label_text,
    read_original_label,
    read_table,
)
from ctxdask.io.isis_write import DARK_TABLE_NAME, good_tile_size, write_isis

__all__ = [
    "DARK_TABLE_NAME",
    "PIXEL_TYPES",
    "CubeLayout",
    "PixelType",
    "decode_block",
    "encode_block",
    "good_tile_size",
    "pixel_type",
    "read_blob",
    "read_block",
    "read_cube",
    "read_label",
    "read_label_text",
    "read_original_label",
    "read_table",
    "write_isis",
]
