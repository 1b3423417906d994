"""CTX 8-bit companding: the SQROOT table, decompanding and its inverse.

CTX digitizes to 12 bits and maps each pixel to 8 bits through a lookup table
named by the label keyword ``SAMPLE_BIT_MODE_ID``. Only ``SQROOT`` is
documented (CTX EDR SIS, section 5, "CTX square root companding table"); the
SIS names ``LIN1``-``LIN16`` and ``LIN1CYC``-``LIN16CYC`` but gives no table,
and ISIS ``mroctx2isis`` refuses them, so ctxdask does too.

Decompanding follows ``mroctx2isis``:

* image pixels: raw 0 is the zero fill the ground software writes for lost
  packets and becomes Null (NaN here) -- ISIS's ``FILLGAP`` behaviour;
* dark (masked) pixels: raw 0 maps through the table to 1, like every other
  value;
* nothing is marked saturated.

All block functions are plain numpy, importable at module level, and never
modify their input, so dask workers can import them by reference.
"""

from __future__ import annotations

import re
from typing import Final

import numpy as np
import numpy.typing as npt

from ctxdask.exceptions import UnsupportedModeError

__all__ = [
    "SQROOT_TABLE",
    "SQROOT_INVERSE",
    "SQROOT_MAX_DN",
    "SUPPORTED_MODES",
    "check_bit_mode",
    "decompand_block",
    "decompand_dark_block",
    "compand_block",
]

# CTX EDR SIS (July 2009), section 5: 8-bit sqroot value -> 11-bit linear value,
# one row per 16 raw values.
_SQROOT_VALUES = (
    1, 3, 5, 7, 9, 11, 13, 15, 17, 20, 22, 24, 27, 29, 32, 35,
    38, 41, 44, 47, 50, 54, 58, 61, 65, 69, 73, 77, 82, 86, 91, 95,
    100, 105, 110, 115, 121, 126, 131, 137, 143, 149, 155, 161, 167, 173, 179, 186,
    193, 199, 206, 213, 220, 228, 235, 243, 250, 258, 266, 274, 282, 290, 298, 306,
    315, 324, 332, 341, 350, 359, 369, 378, 387, 397, 407, 416, 426, 436, 446, 457,
    467, 478, 488, 499, 510, 521, 532, 543, 554, 566, 577, 589, 601, 613, 625, 637,
    649, 662, 674, 687, 699, 712, 725, 738, 751, 765, 778, 792, 805, 819, 833, 847,
    861, 875, 890, 904, 919, 933, 948, 963, 978, 993, 1009, 1024, 1039, 1055, 1071, 1087,
    1103, 1119, 1135, 1151, 1168, 1184, 1201, 1218, 1235, 1252, 1269, 1286, 1304, 1321, 1339, 1356,
    1374, 1392, 1410, 1429, 1447, 1465, 1484, 1502, 1521, 1540, 1559, 1578, 1598, 1617, 1636, 1656,
    1676, 1696, 1715, 1736, 1756, 1776, 1796, 1817, 1838, 1858, 1879, 1900, 1921, 1943, 1964, 1985,
    2007, 2029, 2050, 2072, 2094, 2117, 2139, 2161, 2184, 2206, 2229, 2252, 2275, 2298, 2321, 2345,
    2368, 2392, 2415, 2439, 2463, 2487, 2511, 2535, 2560, 2584, 2609, 2634, 2658, 2683, 2709, 2734,
    2759, 2784, 2810, 2836, 2861, 2887, 2913, 2939, 2966, 2992, 3019, 3045, 3072, 3099, 3126, 3153,
    3180, 3207, 3235, 3262, 3290, 3317, 3345, 3373, 3401, 3430, 3458, 3486, 3515, 3544, 3573, 3601,
    3630, 3660, 3689, 3718, 3748, 3777, 3807, 3837, 3867, 3897, 3927, 3958, 3988, 4019, 4049, 4080,
)  # fmt: skip


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


#: The SQROOT table: ``SQROOT_TABLE[raw]`` is the linear DN of 8-bit ``raw`` (read-only).
SQROOT_TABLE: Final[np.ndarray] = _readonly(np.array(_SQROOT_VALUES, dtype=np.uint16))

#: The largest DN the table produces (raw 255).
SQROOT_MAX_DN: Final[int] = int(SQROOT_TABLE[-1])


def _build_inverse(table: np.ndarray) -> np.ndarray:
    """DN 0..max -> the raw value whose table entry is nearest (ties go to the lower raw)."""
    dn = np.arange(int(table[-1]) + 1)
    upper = np.clip(np.searchsorted(table, dn, side="left"), 0, table.size - 1)
    lower = np.clip(upper - 1, 0, None)
    take_lower = np.abs(dn - table[lower].astype(np.int64)) <= np.abs(
        table[upper].astype(np.int64) - dn
    )
    return np.where(take_lower, lower, upper).astype(np.uint8)


#: ``SQROOT_INVERSE[dn]`` is the raw byte whose table value is nearest ``dn``
#: (exact where ``dn`` is a table value), for DN 0..4080 (read-only).
SQROOT_INVERSE: Final[np.ndarray] = _readonly(_build_inverse(SQROOT_TABLE))

# float32 lookup tables used by the block functions: Null at raw 0 for image pixels
_IMAGE_LUT = SQROOT_TABLE.astype(np.float32)
_IMAGE_LUT[0] = np.nan
_IMAGE_LUT = _readonly(_IMAGE_LUT)
_DARK_LUT = _readonly(SQROOT_TABLE.astype(np.float32))

#: Modes ctxdask can decompand.
SUPPORTED_MODES: Final[frozenset[str]] = frozenset({"SQROOT"})

_LIN_MODE = re.compile(r"^LIN(?:[1-9]|1[0-6])(?:CYC)?$")


def check_bit_mode(mode: str, path: str | None = None) -> np.ndarray:
    """Return the companding table for ``SAMPLE_BIT_MODE_ID`` or refuse the mode.

    Parameters
    ----------
    mode : str
        The label's ``SAMPLE_BIT_MODE_ID`` (case and surrounding blanks ignored).
    path : str, optional
        The product the mode comes from, for the error message.

    Returns
    -------
    numpy.ndarray
        :data:`SQROOT_TABLE` for ``SQROOT``.

    Raises
    ------
    UnsupportedModeError
        For the linear modes ``LIN1``-``LIN16`` and ``LIN1CYC``-``LIN16CYC`` (the
        SIS names them without giving their tables; ISIS refuses them too) and
        for any value that is not a CTX mode at all.
    """
    norm = str(mode).strip().strip('"').upper()
    if norm == "SQROOT":
        return SQROOT_TABLE
    if _LIN_MODE.match(norm):
        reason = (
            f"SAMPLE_BIT_MODE_ID {norm} is a linear companding mode; the CTX EDR SIS "
            "names it but gives no table, so it cannot be decompanded (ISIS mroctx2isis "
            "refuses it too); only SQROOT images can be processed"
        )
    else:
        reason = (
            f"SAMPLE_BIT_MODE_ID {mode!r} is not a CTX companding mode (expected SQROOT, "
            "LIN1-LIN16 or LIN1CYC-LIN16CYC); only SQROOT images can be processed"
        )
    raise UnsupportedModeError(path, reason)


def _as_raw(raw: npt.ArrayLike) -> np.ndarray:
    """``raw`` as a uint8 array, refusing values a byte cannot hold."""
    a = np.asarray(raw)
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind not in "iu":
        raise TypeError(f"raw CTX pixels must be integers (uint8), got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(
            f"raw CTX pixels must lie in 0..255, got {a.min()}..{a.max()}: "
            "is the input already decompanded?"
        )
    return a.astype(np.uint8)


def decompand_block(raw: npt.ArrayLike, *, fill_gap: bool = True) -> np.ndarray:
    """Decompand raw SQROOT image pixels to linear DN.

    Parameters
    ----------
    raw : array_like of uint8
        Raw 8-bit pixels, any shape (typically a ``(lines, samples)`` block).
    fill_gap : bool, default True
        Treat raw 0 as lost-packet zero fill and return NaN (ISIS Null), as
        ``mroctx2isis FILLGAP=yes`` does. With ``False`` raw 0 maps to 1.

    Returns
    -------
    numpy.ndarray of float32
        Linear DN 1..4080, NaN where the pixel was fill; same shape as ``raw``.

    Examples
    --------
    >>> decompand_block(np.array([[0, 1, 255]], dtype=np.uint8)).tolist()
    [[nan, 3.0, 4080.0]]
    """
    lut = _IMAGE_LUT if fill_gap else _DARK_LUT
    # fancy indexing with a uint8 index into a 256-entry table: one pass, no bounds risk
    return lut[_as_raw(raw)]


def decompand_dark_block(raw: npt.ArrayLike) -> np.ndarray:
    """Decompand raw dark (masked) pixels: raw 0 becomes 1, never NaN.

    ``mroctx2isis`` maps the dark pixels through the table before it applies
    its gap filling, so a dark 0 is a genuine low reading, not fill.

    Parameters
    ----------
    raw : array_like of uint8
        Raw 8-bit dark pixels, any shape.

    Returns
    -------
    numpy.ndarray of float32
        Linear DN 1..4080, same shape as ``raw``.
    """
    return _DARK_LUT[_as_raw(raw)]


def compand_block(dn: npt.ArrayLike, *, exact: bool = True) -> np.ndarray:
    """Map linear DN back to raw SQROOT bytes (the inverse of :func:`decompand_block`).

    Used to rebuild an EDR from an ISIS level-0 cube (``mroctx2isis`` output).

    Parameters
    ----------
    dn : array_like
        Linear DN, integer or float. NaN (ISIS Null, lost-packet fill) becomes
        raw 0, as the ground software wrote it.
    exact : bool, default True
        Require every finite value to be a table entry, so the round trip is
        lossless. With ``False`` each value goes to the raw byte whose table
        value is nearest (DN outside 1..4080 is clipped first).

    Returns
    -------
    numpy.ndarray of uint8
        Raw bytes, same shape as ``dn``.

    Raises
    ------
    ValueError
        With ``exact=True``, if a value is not a table entry (it was not
        produced by decompanding, e.g. it has been calibrated or resampled).
    """
    a = np.asarray(dn)
    if a.dtype.kind == "f":
        missing = np.isnan(a)
        rounded = np.rint(np.where(missing, 1.0, a))
        if exact and np.any(rounded != np.where(missing, 1.0, a)):
            raise ValueError("DN values are not integers, so they are not SQROOT table values")
        idx = np.clip(rounded, 0, SQROOT_MAX_DN).astype(np.int64)
    elif a.dtype.kind in "iub":
        missing = None
        idx = np.clip(a, 0, SQROOT_MAX_DN).astype(np.int64)
        rounded = a
    else:
        raise TypeError(f"DN must be numeric, got dtype {a.dtype}")
    raw = SQROOT_INVERSE[idx]
    if exact:
        ok = SQROOT_TABLE[raw] == rounded
        if missing is not None:
            ok |= missing
        if not np.all(ok):
            bad = np.unique(np.asarray(rounded)[~ok])[:8]
            raise ValueError(
                f"DN values {bad.tolist()} are not SQROOT table values; pass exact=False "
                "to map each to the nearest table entry"
            )
    if missing is not None and missing.any():
        raw = np.where(missing, np.uint8(0), raw)
    return raw
