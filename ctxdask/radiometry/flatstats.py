"""Per-image statistics of flat building: column histograms of raw blocks, trimmed-mean column profiles.

These are the two steps of :mod:`ctxdask.radiometry.flatbuild` that see the
pixels (see its module docstring for the method):

* :func:`block_statistics` turns a block of raw lines into the histogram of
  the raw 8-bit values of every sample column plus the dark sums: additive, so
  the blocks of an image reduce exactly, whatever their size.
* :func:`image_profile` turns an image's summed histograms into its
  normalised trimmed-mean column profile, or a reason to reject the image.

Both are the cost of a flat beyond reading the pixels, so both are written as
a few whole-array numpy passes: the histogram counts 16 columns per
``np.bincount`` (its counts stay in the CPU cache and it needs no output the
size of the whole histogram per strip of lines), and the profile takes each
column's trimmed mean from cumulative counts and sums at the two cut ranks
instead of weighting all 255 values of every column.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from dask.sizeof import sizeof

from ctxdask.companding import SQROOT_TABLE
from ctxdask.settings import FlatBuildSettings

__all__ = ["BlockStatistics", "ImageProfile", "block_statistics", "column_histogram", "image_profile"]

#: CCD pixels of the CTX line array; ctxcal reads this many flat values
CCD_PIXELS = 5000
#: columns counted by one bincount: 16 x 256 counts stay in the CPU cache (measured: 2.6 ns a pixel at
#: 16 columns, 3.5 at 8, 4.4 at 24, 5.7 at 64; 8.6 for the former 64-line strips of whole lines)
_GROUP_COLUMNS = 16
#: key elements per bincount (256 KB of intp): bounds the work buffer whatever the block's lines
_GROUP_ELEMENTS = 1 << 15
_LUT = SQROOT_TABLE.astype(np.float64)
_LUT_INT = SQROOT_TABLE.astype(np.int64)
_DARK_LUT = _LUT.copy()  # dark raw 0 decompands to 1 as in ISIS (the table already gives 1)


# -- per block ------------------------------------------------------------------------------------


@dataclasses.dataclass
class BlockStatistics:
    """What one pass over some lines of an image leaves: additive, fixed size.

    Attributes
    ----------
    histogram : ndarray (samples, 256) uint32
        Count of each raw value per sample column.
    dark_sum, dark_count : ndarray (2,)
        Decompanded dark pixels of the lines that are not lost: sum and count,
        even (A) and odd (B) dark columns.
    lines, lost_lines : int
    """

    histogram: np.ndarray
    dark_sum: np.ndarray
    dark_count: np.ndarray
    lines: int
    lost_lines: int

    def __add__(self, other: BlockStatistics) -> BlockStatistics:
        return BlockStatistics(self.histogram + other.histogram, self.dark_sum + other.dark_sum,
                               self.dark_count + other.dark_count, self.lines + other.lines,
                               self.lost_lines + other.lost_lines)


def column_histogram(image: np.ndarray) -> np.ndarray:
    """Count of each raw value in every column of a block of raw lines.

    Parameters
    ----------
    image : ndarray (lines, samples) uint8

    Returns
    -------
    ndarray (samples, 256) uint32
        uint32: a column of one image has at most 53,093 lines (the CTX
        buffer), so the sums of an image's blocks fit.
    """
    lines, samples = image.shape
    histogram = np.zeros((samples, 256), dtype=np.uint32)
    width = max(1, min(_GROUP_COLUMNS, samples))
    strip = max(1, _GROUP_ELEMENTS // width)
    keys = np.empty(min(lines, strip) * width, dtype=np.intp)
    offsets = np.arange(width, dtype=np.intp) * 256  # column c of the group counts in bins c*256 ..
    for start in range(0, lines, strip):
        rows = min(strip, lines - start)
        for c0 in range(0, samples, width):
            n = min(width, samples - c0)
            k = keys[: rows * n].reshape(rows, n)
            np.add(image[start : start + rows, c0 : c0 + n], offsets[:n], out=k)
            histogram[c0 : c0 + n] += np.bincount(keys[: rows * n], minlength=n * 256).reshape(n, 256).astype(
                np.uint32, copy=False)
    return histogram


def block_statistics(image: np.ndarray, dark: np.ndarray) -> BlockStatistics:
    """Column histograms and dark sums of one block of raw lines.

    Parameters
    ----------
    image : ndarray (lines, samples) uint8
        Raw active pixels.
    dark : ndarray (lines, dark samples) uint8
        Raw dark-reference pixels of the same lines.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"flat statistics read raw uint8 pixels, got {image.dtype}")
    lines = image.shape[0]
    lost = image.max(axis=1, initial=0) == 0  # the decompressor zero-fills whole lost lines
    d = _DARK_LUT[np.asarray(dark)[~lost]]
    dark_sum = np.array([d[:, 0::2].sum(), d[:, 1::2].sum()])
    dark_count = np.array([d[:, 0::2].size, d[:, 1::2].size], dtype=np.float64)
    return BlockStatistics(column_histogram(image), dark_sum, dark_count, lines, int(lost.sum()))


@sizeof.register(BlockStatistics)
def _sizeof_block_statistics(stats: BlockStatistics) -> int:
    return stats.histogram.nbytes + 64  # what dask (and distributed's memory accounting) should count


def sum_statistics(*parts: BlockStatistics) -> BlockStatistics:
    """The statistics of several blocks of one image."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


# -- per image ------------------------------------------------------------------------------------


@dataclasses.dataclass
class ImageProfile:
    """One image's normalised column profile, or why it was rejected.

    Attributes
    ----------
    info : dict
        ``source``, ``product_id``, ``start_time``, ``summing``, ``first_pixel``,
        ``samples`` and, once measured, ``valid_lines``, ``lost_lines``,
        ``saturated_fraction``, ``near_dark_fraction``, ``usable_columns``,
        ``median_signal_dn``, ``profile_scatter``; ``rejected`` (reason or None).
    values : ndarray (samples,) or None
        Trimmed-mean DN above dark per sample divided by the image's median
        (NaN for unusable columns); None when rejected.
    detector_pixel : ndarray (samples,)
        CCD pixel of each sample (the first of the pair when summing 2).
    """

    info: dict
    values: np.ndarray | None
    detector_pixel: np.ndarray

    @property
    def rejected(self) -> str | None:
        """Why the image was rejected, or None."""
        return self.info.get("rejected")

    @property
    def full_width(self) -> bool:
        """True when the image covers CCD pixels 0..4999."""
        p = self.detector_pixel
        return p.size > 0 and int(p[0]) == 0 and int(p[-1]) + int(self.info["summing"]) >= CCD_PIXELS


@sizeof.register(ImageProfile)
def _sizeof_image_profile(profile: ImageProfile) -> int:
    return (0 if profile.values is None else profile.values.nbytes) + profile.detector_pixel.nbytes + 500


def _sum_below(ranks: np.ndarray, sums: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Per column, the sum of the values of its ``rank`` lowest pixels (fractional ranks: linear).

    ``ranks[c, v]`` counts the pixels of column ``c`` at raw values ``1..v+1``
    and ``sums[c, v]`` their decompanded sum. The sum is continuous in
    ``rank``, so a value landing on a bin edge is the same from either side.
    """
    columns, values = ranks.shape
    # ranks are whole numbers: comparing with the rank's floor is the same test, without a cast to float
    whole = np.floor(rank).astype(ranks.dtype)
    b = np.minimum(np.count_nonzero(ranks <= whole[:, None], axis=1), values - 1)  # the value holding the rank
    rows = np.arange(columns)
    below = np.maximum(b - 1, 0)
    ranks_below = np.where(b > 0, ranks[rows, below], 0).astype(np.float64)
    sums_below = np.where(b > 0, sums[rows, below], 0).astype(np.float64)
    return sums_below + (rank - ranks_below) * _LUT[1:][b]


def image_profile(stats: BlockStatistics, info: Mapping[str, Any], detector_pixel: np.ndarray,
                  settings: FlatBuildSettings) -> ImageProfile:
    """Trimmed-mean column profile of one image from its column histograms (see the module doc)."""
    info = dict(info)
    summing = int(info["summing"])
    detector_pixel = np.asarray(detector_pixel)
    samples = stats.histogram.shape[0]
    valid_lines = stats.lines - stats.lost_lines
    info.update(lines=stats.lines, lost_lines=stats.lost_lines, valid_lines=valid_lines)
    if valid_lines < settings.min_valid_lines:
        return _reject(info, detector_pixel, f"only {valid_lines} lines left after {stats.lost_lines} lost lines "
                                             f"(< {settings.min_valid_lines})")
    if summing == 1:
        dark_levels = stats.dark_sum / np.maximum(stats.dark_count, 1)
        channel = np.arange(samples) % 2  # even samples: A channel, odd: B (ctxcal)
    else:
        dark_levels = np.array([stats.dark_sum.sum() / max(stats.dark_count.sum(), 1)])
        channel = np.zeros(samples, dtype=np.intp)
    dark = dark_levels[channel]
    counts = stats.histogram[:, 1:]  # raw 0 is lost-packet fill: no data at all
    # integers: exact, and numpy's integer running sums along a row are several times faster than float ones
    # uint32 ranks (a column has at most 53,093 pixels); sums in place: on a distributed worker every
    # temporary this size is a fresh memory map, paid for in page faults
    ranks = np.cumsum(counts, axis=1, dtype=np.uint32)  # pixels at or below each raw value 1..255
    sums = np.multiply(counts, _LUT_INT[1:], dtype=np.int64)  # their decompanded sum
    np.cumsum(sums, axis=1, out=sums)
    total = ranks[:, -1].astype(np.float64)
    # near dark: DN above dark below near_dark_dn; the table rises, so they are each column's lowest values
    n_low = np.array([int(np.count_nonzero(_LUT[1:] - level < settings.near_dark_dn)) for level in dark_levels])
    k = n_low[channel]
    censored_low = np.where(k > 0, ranks[np.arange(samples), np.maximum(k - 1, 0)], 0).astype(np.float64)
    censored_high = counts[:, -1].astype(np.float64)  # raw 255: saturated
    # one rank window for every column of the image, wide enough to hold no censored pixel in 95% of
    # them: columns trimmed differently would not be comparable
    with np.errstate(invalid="ignore", divide="ignore"):
        cut_low = max(settings.trim, float(np.nan_to_num(np.quantile(censored_low / np.maximum(total, 1), 0.95))))
        cut_high = max(settings.trim, float(np.nan_to_num(np.quantile(censored_high / np.maximum(total, 1), 0.95))))
    info.update(trim_low=cut_low, trim_high=cut_high)
    if cut_low + cut_high > settings.max_trim:
        return _reject(info, detector_pixel, f"too many censored pixels: 5% of columns have {cut_high:.0%} or more "
                                             f"saturated or {cut_low:.0%} or more near dark (limit "
                                             f"{settings.max_trim:.0%} together)")
    lo, hi = cut_low * total, (1 - cut_high) * total
    # the ranks [lo, hi) of each column: their DN sum, less the dark level of each
    with np.errstate(invalid="ignore", divide="ignore"):
        trimmed = (_sum_below(ranks, sums, hi) - _sum_below(ranks, sums, lo)) / (hi - lo) - dark
    usable = (total >= settings.min_valid_lines / 2) & (censored_low <= lo + 0.5) & (censored_high <= total - hi + 0.5)
    usable &= hi > lo
    trimmed = np.where(usable, trimmed, np.nan)
    n_pixels = max(total.sum(), 1)
    median_signal = float(np.nanmedian(trimmed)) if usable.any() else float("nan")
    info.update(
        saturated_fraction=float(censored_high.sum() / n_pixels),
        near_dark_fraction=float(censored_low.sum() / n_pixels),
        usable_columns=float(usable.mean()),
        median_signal_dn=median_signal,
        dark_dn=[float(x) for x in np.atleast_1d(stats.dark_sum / np.maximum(stats.dark_count, 1))],
    )
    if usable.mean() < settings.min_usable_columns:
        return _reject(info, detector_pixel, f"only {usable.mean():.0%} of columns usable (saturated "
                                             f"{info['saturated_fraction']:.1%}, near dark "
                                             f"{info['near_dark_fraction']:.1%} of pixels)")
    if not median_signal >= settings.min_signal_dn:
        return _reject(info, detector_pixel, f"too dark: median signal {median_signal:.1f} DN above dark "
                                             f"(< {settings.min_signal_dn:g})")
    values = trimmed / median_signal
    # column-to-column roughness: how much scene (or noise) each column carries
    info["profile_scatter"] = float(np.nanmedian(np.abs(np.diff(values))) * 1.4826 / math.sqrt(2))
    return ImageProfile(info, values.astype(np.float32), detector_pixel)


def block_profile(image: np.ndarray, dark: np.ndarray, info: Mapping[str, Any], detector_pixel: Any,
                  settings: FlatBuildSettings) -> ImageProfile:
    """The profile of an image read as one block: both steps in one task."""
    return image_profile(block_statistics(image, dark), info, np.asarray(detector_pixel), settings)


def _reject(info: dict, detector_pixel: np.ndarray, reason: str) -> ImageProfile:
    info["rejected"] = reason
    return ImageProfile(info, None, detector_pixel)
