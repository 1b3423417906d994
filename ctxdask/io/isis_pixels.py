"""ISIS3 pixel types and special pixel values, and the block conversions between them.

ISIS stores "special pixels" in reserved values of each pixel type
(``isis/src/base/objs/SpecialPixel/SpecialPixel.h``):

============  ===========  ===========  ===========  ===========  ===========
type          Null         Lrs          Lis          His          Hrs
============  ===========  ===========  ===========  ===========  ===========
UnsignedByte  0            0            0            255          255
UnsignedWord  0            1            2            65534        65535
SignedWord    -32768       -32767       -32766       -32765       -32764
Real          0xFF7FFFFB   0xFF7FFFFC   0xFF7FFFFD   0xFF7FFFFE   0xFF7FFFFF
============  ===========  ===========  ===========  ===========  ===========

(Real values are IEEE float32 bit patterns: the five most negative finite
floats.) ctxdask reads every special pixel as NaN and writes NaN as Null.
The block functions here are plain numpy and importable at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "PixelType",
    "PIXEL_TYPES",
    "NULL4",
    "LRS4",
    "LIS4",
    "HIS4",
    "HRS4",
    "pixel_type",
    "decode_block",
    "encode_block",
    "good_tile_size",
]


def _f32(bits: int) -> float:
    return float(np.array(bits, dtype=np.uint32).view(np.float32))


NULL4: Final[float] = _f32(0xFF7FFFFB)
LRS4: Final[float] = _f32(0xFF7FFFFC)
LIS4: Final[float] = _f32(0xFF7FFFFD)
HIS4: Final[float] = _f32(0xFF7FFFFE)
HRS4: Final[float] = _f32(0xFF7FFFFF)


@dataclass(frozen=True)
class PixelType:
    """One ISIS pixel type: storage dtype, special values and the valid range.

    Attributes
    ----------
    name : str
        The ISIS name (``Core/Pixels/Type``).
    dtype : numpy.dtype
        Native-order storage dtype.
    null, lrs, lis, his, hrs : int or float
        The special pixel values.
    valid_min, valid_max : int or float
        The range of ordinary values that can be stored.
    """

    name: str
    dtype: np.dtype
    null: float
    lrs: float
    lis: float
    his: float
    hrs: float
    valid_min: float
    valid_max: float

    @property
    def itemsize(self) -> int:
        """Bytes per pixel."""
        return self.dtype.itemsize

    @property
    def specials(self) -> tuple[float, ...]:
        """The special pixel values: Null, Lrs, Lis, His, Hrs."""
        return (self.null, self.lrs, self.lis, self.his, self.hrs)


PIXEL_TYPES: Final[dict[str, PixelType]] = {
    "UnsignedByte": PixelType("UnsignedByte", np.dtype(np.uint8), 0, 0, 0, 255, 255, 1, 254),
    "UnsignedWord": PixelType(
        "UnsignedWord", np.dtype(np.uint16), 0, 1, 2, 65534, 65535, 3, 65522
    ),
    "SignedWord": PixelType(
        "SignedWord", np.dtype(np.int16), -32768, -32767, -32766, -32765, -32764, -32752, 32767
    ),
    "Real": PixelType(
        "Real",
        np.dtype(np.float32),
        NULL4,
        LRS4,
        LIS4,
        HIS4,
        HRS4,
        _f32(0xFF7FFFFA),
        float(np.finfo(np.float32).max),
    ),
}


def pixel_type(name: str) -> PixelType:
    """Look up an ISIS pixel type by name (case-insensitive).

    Raises
    ------
    KeyError
        For a type ctxdask does not handle (e.g. ``SignedInteger``, ``Double``).
    """
    for key, value in PIXEL_TYPES.items():
        if key.lower() == str(name).lower():
            return value
    raise KeyError(f"ISIS pixel type {name!r} is not supported (use one of {list(PIXEL_TYPES)})")


def decode_block(
    stored: np.ndarray,
    ptype: PixelType,
    base: float = 0.0,
    multiplier: float = 1.0,
    dtype: npt.DTypeLike = np.float32,
) -> np.ndarray:
    """Stored pixels -> physical values, every special pixel -> NaN.

    Parameters
    ----------
    stored : numpy.ndarray
        Pixels in the storage dtype (any byte order).
    ptype : PixelType
        Their ISIS pixel type.
    base, multiplier : float
        ``Core/Pixels`` scaling: value = base + multiplier * stored (integer types).
    dtype : dtype, default float32
        Output float dtype.

    Returns
    -------
    numpy.ndarray
    """
    if ptype.dtype.kind == "f":
        # the five specials are the most negative finite floats; anything at or
        # below Null (including -inf) is special
        values = stored.astype(dtype, copy=True)
        values[stored <= np.float32(ptype.null)] = np.nan
        return values
    special = np.isin(stored, np.unique(np.array(ptype.specials, dtype=ptype.dtype)))
    if base == 0.0 and multiplier == 1.0:
        values = stored.astype(dtype)
    else:
        # scaling in float64, as ISIS does, before narrowing
        values = (base + multiplier * stored.astype(np.float64)).astype(dtype)
    values[special] = np.nan
    return values


def encode_block(
    values: npt.ArrayLike,
    ptype: PixelType,
    byte_order: str = "<",
    base: float = 0.0,
    multiplier: float = 1.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Physical values -> stored pixels: NaN -> Null, out of range -> Lrs/Hrs.

    Integer types are rounded to nearest; values that do not fit the valid range
    become the representation-saturation specials (Lrs below, Hrs above), as
    ISIS does when it writes a value that its output type cannot hold.

    Parameters
    ----------
    values : array_like
        Physical values (float or integer).
    ptype : PixelType
        Output pixel type.
    byte_order : {"<", ">"}
        Output byte order.
    base, multiplier : float
        Scaling of the output cube: stored = (value - base) / multiplier.
    out : numpy.ndarray, optional
        Where to write the stored pixels (``ptype``'s dtype in native byte
        order, the shape of ``values``), e.g. a window of a padded tile buffer;
        only with ``byte_order`` native.

    Returns
    -------
    numpy.ndarray
        In ``ptype``'s dtype with the requested byte order (``out`` if given).
    """
    if out is not None and ptype.dtype.newbyteorder(byte_order) != ptype.dtype.newbyteorder("="):
        raise ValueError("encode_block writes into out= only in native byte order")
    a = np.asarray(values)
    if ptype.dtype.kind == "f" and a.dtype == np.float32 and base == 0.0 and multiplier == 1.0:
        # float32 to Real: one copy, then fix the (usually few) pixels outside the valid range;
        # the same result as the float64 path, since every float32 widens exactly
        if out is None:
            stored = a.astype(ptype.dtype)
        else:
            stored = out
            np.copyto(stored, a)
        valid = stored >= np.float32(ptype.valid_min)
        valid &= stored <= np.float32(ptype.valid_max)  # NaN fails both
        if not valid.all():
            invalid = ~valid
            picked = stored[invalid]
            stored[invalid] = np.where(np.isnan(picked), ptype.null, np.where(picked < 0, ptype.lrs, ptype.hrs))
        return stored if out is not None else stored.astype(ptype.dtype.newbyteorder(byte_order), copy=False)
    v = np.asarray(values, dtype=np.float64)
    if base != 0.0 or multiplier != 1.0:
        v = (v - base) / multiplier
    out_dtype = ptype.dtype.newbyteorder(byte_order)
    missing = np.isnan(v)
    if ptype.dtype.kind == "f":
        low = v < ptype.valid_min  # includes -inf
        high = v > ptype.valid_max  # includes +inf
        encoded = np.where(missing | low | high, 0.0, v).astype(np.float32)
    else:
        r = np.rint(np.where(missing, 0.0, v))
        low = r < ptype.valid_min
        high = r > ptype.valid_max
        encoded = np.clip(r, ptype.valid_min, ptype.valid_max).astype(ptype.dtype)
    encoded[low] = ptype.lrs
    encoded[high] = ptype.hrs
    encoded[missing] = ptype.null
    if out is not None:
        out[...] = encoded
        return out
    return encoded.astype(out_dtype, copy=False)


def good_tile_size(dimension: int, itemsize: int) -> int:
    """ISIS's tile edge for a new cube (``CubeTileHandler::findGoodSize``).

    At most ``2048 / itemsize`` (1024 for SignedWord, 512 for Real): the whole
    dimension if it fits, else its largest divisor above 128, else 128.
    """
    max_size = 2048 // itemsize
    if dimension <= max_size:
        return dimension
    for size in range(max_size, 128, -1):
        if dimension % size == 0:
            return size
    return 128
