"""Detector flat fields from stacks of CTX images: a bounded-memory dask reduction.

ISIS builds CTX flats with ``makeflat`` (``IMAGETYPE=LINESCAN``,
``isis/src/base/apps/makeflat/makeflat.cpp``): per frame of NUMLINES lines,
column means divided by the frame mean; frames whose standard deviation
exceeds STDEVTOL are dropped; the result is the valid-pixel-weighted mean of
the normalised column means, written as one line of samples. It needs every
input to have the same width and makes three passes over the data through a
temporary cube. FU Berlin's monthly CTX flats (accepted into ``ctxcal`` as
``MONTHLYFLAT``, DOI-USGS/ISIS3 pull request 5338, issue 5279) were made that
way from hundreds of images a month.

:func:`build_flat` does the same job in one pass per image, on any cluster:

1. **Per image block** (:func:`block_statistics`): a histogram of the raw
   8-bit values of every sample column (``samples x 256`` counts) plus the
   dark-pixel sums of the lines that are not lost. Histograms add, so the
   blocks of an image reduce exactly, in a tree.
2. **Per image** (:func:`image_profile`): from the column histograms, a
   trimmed mean (``trim`` of the ranks cut at each end) of decompanded,
   dark-subtracted DN per column. Lost lines (raw 0) are left out;
   saturated (raw 255) and near-dark pixels are *censored*: they count as
   ranks above / below the trimmed window, so they do not bias the column
   (a column with more censored pixels than the trim is unusable). The
   profile is normalised by its median (images that cover the whole CCD)
   or, for ``SAMPLE_FIRST_PIXEL > 0`` images, by its median ratio to the
   flat of the full-width images over the pixels they share.
3. **Across images** (:class:`CombineState`): per CCD pixel, a histogram of
   the normalised ratios (``bins`` over ``ratio_range``; under- and
   overflow kept as censored ranks), again exactly additive and reduced as
   a tree. The flat is the per-pixel median or sigma-clipped mean of that
   histogram, with its standard error and the number of images behind it.

Memory is the raw chunks being read (``chunk-lines x LINE_SAMPLES`` bytes per
thread) plus a few fixed-size histograms, whatever the number of images.
Summing-2 samples map to the CCD pair ``(p, p + 1)`` with
``p = detector_pixel``; they measure the pair mean, which is what ctxcal
divides summing-2 images by, and fill pixels no summing-1 image reaches.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.sizeof import sizeof

from ctxdask.companding import SQROOT_TABLE, check_bit_mode
from ctxdask.exceptions import CTXError
from ctxdask.radiometry.flat import FlatError
from ctxdask.settings import FlatBuildSettings, SettingsError
from ctxdask.settings import current as current_settings

__all__ = [
    "CCD_PIXELS",
    "BlockStatistics",
    "CombineState",
    "FlatResult",
    "FlatSettings",
    "ImageProfile",
    "block_statistics",
    "build_flat",
    "image_profile",
]

#: CCD pixels of the CTX line array; ctxcal reads this many flat values
CCD_PIXELS = 5000
#: lines per work strip of the column histogram (64 x 5056 indices stay small)
_STRIP_LINES = 64
_LUT = SQROOT_TABLE.astype(np.float64)
_DARK_LUT = _LUT.copy()  # dark raw 0 decompands to 1 as in ISIS (the table already gives 1)

Method = Literal["median", "clipped-mean"]


# -- settings --------------------------------------------------------------------------------------


class FlatSettings(FlatBuildSettings):
    """How flats are built (``ctxdask.flat.build`` in ``ctxdask.yaml``).

    Attributes
    ----------
    method : {"median", "clipped-mean"}
        Per-pixel combination of the images' normalised profiles.
    clip_sigma : float
        Clipping limit of ``"clipped-mean"`` in robust standard deviations.
    trim : float
        Fraction of each column's ranks cut at each end by the trimmed mean
        (at least; more when an image has more saturated or near-dark pixels).
    max_trim : float
        Images whose censored pixels need more of the ranks cut are rejected.
    near_dark_dn : float
        Pixels less than this many DN above the dark level are censored low.
    min_valid_lines : int
        Images with fewer lines left after lost lines are rejected.
    min_signal_dn : float
        Images whose median column level is below this (DN above dark) are rejected.
    min_usable_columns : float
        Images with a smaller fraction of usable columns are rejected.
    min_images : int
        CCD pixels backed by fewer images get no flat value of their own.
    bins : int
        Histogram bins of the normalised ratio per CCD pixel.
    ratio_range : (float, float)
        Range of those bins; ratios outside count as censored ranks.
    split_every : int
        Fan-in of the tree reductions.
    """

    def check(self) -> None:
        """The ratio bins must bracket 1 (the model checks each field's kind and range)."""
        lo, hi = self.ratio_range
        if not 0 < lo < 1 < hi:
            raise SettingsError("flat.build.ratio-range", f"must bracket 1, not {self.ratio_range}")


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
    lines, samples = image.shape
    offsets = np.arange(samples, dtype=np.intp) * 256
    # uint32: a column of one image has at most 53,093 lines (the CTX buffer), so sums of blocks fit
    histogram = np.zeros(samples * 256, dtype=np.uint32)
    index = np.empty((min(_STRIP_LINES, max(lines, 1)), samples), dtype=np.intp)
    for start in range(0, lines, _STRIP_LINES):
        n = min(_STRIP_LINES, lines - start)
        index[:n] = image[start : start + n]
        index[:n] += offsets
        histogram += np.bincount(index[:n].ravel(), minlength=samples * 256).astype(np.uint32)
    lost = image.max(axis=1, initial=0) == 0  # the decompressor zero-fills whole lost lines
    d = _DARK_LUT[np.asarray(dark)[~lost]]
    dark_sum = np.array([d[:, 0::2].sum(), d[:, 1::2].sum()])
    dark_count = np.array([d[:, 0::2].size, d[:, 1::2].size], dtype=np.float64)
    return BlockStatistics(histogram.reshape(samples, 256), dark_sum, dark_count, lines, int(lost.sum()))


@sizeof.register(BlockStatistics)
def _sizeof_block_statistics(stats: BlockStatistics) -> int:
    return stats.histogram.nbytes + 64  # what dask (and distributed's memory accounting) should count


def _sum_statistics(*parts: BlockStatistics) -> BlockStatistics:
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


def image_profile(stats: BlockStatistics, info: Mapping[str, Any], detector_pixel: np.ndarray,
                  settings: FlatSettings) -> ImageProfile:
    """Trimmed-mean column profile of one image from its column histograms (see the module doc)."""
    info = dict(info)
    summing = int(info["summing"])
    hist = stats.histogram.astype(np.float64)
    samples = hist.shape[0]
    valid_lines = stats.lines - stats.lost_lines
    info.update(lines=stats.lines, lost_lines=stats.lost_lines, valid_lines=valid_lines)
    if valid_lines < settings.min_valid_lines:
        return _reject(info, detector_pixel, f"only {valid_lines} lines left after {stats.lost_lines} lost lines "
                                             f"(< {settings.min_valid_lines})")
    if summing == 1:
        dark_ab = stats.dark_sum / np.maximum(stats.dark_count, 1)
        dark = dark_ab[np.arange(samples) % 2]  # even samples: A channel, odd: B (ctxcal)
    else:
        dark = np.full(samples, stats.dark_sum.sum() / max(stats.dark_count.sum(), 1))
    signal = _LUT[None, 1:] - dark[:, None]  # (samples, 255): DN above dark of raw 1..255
    counts = hist[:, 1:]  # raw 0 is lost-packet fill: no data at all
    total = counts.sum(axis=1)
    low = signal < settings.near_dark_dn
    censored_low = np.where(low, counts, 0).sum(axis=1)
    censored_high = counts[:, -1]  # raw 255: saturated
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
    before = np.cumsum(counts, axis=1) - counts  # ranks below each value
    # each value's share of the rank window [lo, hi)
    share = np.clip(np.minimum(before + counts, hi[:, None]) - np.maximum(before, lo[:, None]), 0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        trimmed = (share * signal).sum(axis=1) / (hi - lo)
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


def _reject(info: dict, detector_pixel: np.ndarray, reason: str) -> ImageProfile:
    info["rejected"] = reason
    return ImageProfile(info, None, detector_pixel)


# -- across images --------------------------------------------------------------------------------


@dataclasses.dataclass
class CombineState:
    """Per CCD pixel, the histogram of the images' normalised ratios: additive, fixed size.

    Attributes
    ----------
    counts : dict
        Summing mode (1 or 2) -> ``(CCD_PIXELS, bins + 2)`` uint32 counts; bin 0
        is underflow, the last overflow. A mode without images has no entry.
    images : list of dict
        The ``info`` of every image seen, accepted or rejected.
    """

    counts: dict[int, np.ndarray]
    images: list[dict]

    def __add__(self, other: CombineState) -> CombineState:
        counts = dict(self.counts)
        for mode, c in other.counts.items():
            counts[mode] = counts[mode] + c if mode in counts else c
        return CombineState(counts, self.images + other.images)


@sizeof.register(CombineState)
def _sizeof_combine_state(state: CombineState) -> int:
    return sum(c.nbytes for c in state.counts.values()) + 300 * len(state.images)


@sizeof.register(ImageProfile)
def _sizeof_image_profile(profile: ImageProfile) -> int:
    return (0 if profile.values is None else profile.values.nbytes) + profile.detector_pixel.nbytes + 500


def _bin_index(ratio: np.ndarray, settings: FlatSettings) -> np.ndarray:
    lo, hi = settings.ratio_range
    width = (hi - lo) / settings.bins
    index = np.floor((ratio - lo) / width).astype(np.int64) + 1
    return np.clip(index, 0, settings.bins + 1)


def _add_profiles(*profiles: ImageProfile, settings: FlatSettings,
                  reference: np.ndarray | None = None) -> CombineState:
    """Bin some images' profiles into a new :class:`CombineState`.

    With ``reference`` (the flat of the full-width images), each profile is
    first divided by its median ratio to the reference over the pixels it covers.
    """
    state = CombineState({}, [])
    for profile in profiles:
        info = dict(profile.info)
        state.images.append(info)
        if profile.values is None:
            continue
        summing = int(info["summing"])
        pixels = profile.detector_pixel
        values = profile.values.astype(np.float64)
        if reference is not None:
            ref = reference[pixels] if summing == 1 else (reference[pixels] + reference[pixels + 1]) / 2
            scale = float(np.nanmedian(values / ref))
            if not np.isfinite(scale) or scale <= 0:
                info["rejected"] = "no usable overlap with the full-width flat"
                continue
            values = values / scale
            info["normalised_by"] = "full-width flat"
        else:
            info.setdefault("normalised_by", "own median" if profile.full_width else
                            "own median (no full-width flat to normalise against)")
        ok = np.isfinite(values)
        counts = state.counts.setdefault(summing, np.zeros((CCD_PIXELS, settings.bins + 2), dtype=np.uint32))
        index = _bin_index(values[ok], settings)
        for offset in range(summing):  # a summed sample measures the mean of its CCD pair
            target = pixels[ok] + offset
            keep = target < CCD_PIXELS
            counts[target[keep], index[keep]] += 1  # pixels are distinct within one image
        info["accepted"] = True
    return state


def _merge_states(*states: CombineState) -> CombineState:
    total = states[0]
    for state in states[1:]:
        total = total + state
    return total


def _quantile(counts: np.ndarray, q: float, settings: FlatSettings) -> np.ndarray:
    """Per-row ``q`` quantile of binned counts, linear within a bin (NaN if it falls outside the range)."""
    lo, hi = settings.ratio_range
    width = (hi - lo) / settings.bins
    total = counts.sum(axis=1)
    cum = np.cumsum(counts, axis=1)
    target = q * total
    b = np.argmax(cum >= target[:, None], axis=1)  # first bin reaching the rank
    prev = np.take_along_axis(cum, np.maximum(b - 1, 0)[:, None], axis=1)[:, 0] * (b > 0)
    inside = np.take_along_axis(counts, b[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip((target - prev) / inside, 0, 1)
    value = lo + (b - 1 + frac) * width
    ok = (b >= 1) & (b <= settings.bins) & (total > 0)
    return np.where(ok, value, np.nan)


def _truncated_std_factor(k: float) -> float:
    """Standard deviation of a unit normal truncated to +-k."""
    phi = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(k / math.sqrt(2))
    return math.sqrt(1 - 2 * k * phi / mass)


def estimate(counts: np.ndarray, settings: FlatSettings, method: Method | None = None) -> dict[str, np.ndarray]:
    """Per-pixel flat, standard error and image count from ratio histograms.

    Parameters
    ----------
    counts : ndarray (pixels, bins + 2)
    settings : FlatSettings
    method : {"median", "clipped-mean"}, optional
        Default ``settings.method``.

    Returns
    -------
    dict
        ``flat``, ``uncertainty`` (standard error), ``count`` (images per
        pixel) and ``used`` (images inside the clip for the clipped mean).
    """
    method = method or settings.method
    lo, hi = settings.ratio_range
    width = (hi - lo) / settings.bins
    c = counts.astype(np.float64)
    n = c.sum(axis=1)
    median = _quantile(c, 0.5, settings)
    sigma = (_quantile(c, 0.75, settings) - _quantile(c, 0.25, settings)) / 1.349
    sigma = np.sqrt(sigma**2 + width**2 / 12)  # never below the bin's own resolution
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "median":
            return {"flat": median, "uncertainty": 1.2533 * sigma / np.sqrt(n), "count": n, "used": n}
        centres = lo + (np.arange(settings.bins) + 0.5) * width
        inner = c[:, 1:-1]
        center, spread = median, sigma
        factor = _truncated_std_factor(settings.clip_sigma)
        for _ in range(5):
            keep = np.abs(centres[None, :] - center[:, None]) <= settings.clip_sigma * spread[:, None]
            w = inner * keep
            used = w.sum(axis=1)
            mean = (w * centres).sum(axis=1) / used
            var = (w * (centres - mean[:, None]) ** 2).sum(axis=1) / np.maximum(used - 1, 1)
            spread = np.sqrt(np.maximum(var, width**2 / 12)) / factor
            center = mean
        uncertainty = spread * factor / np.sqrt(used)
        return {"flat": center, "uncertainty": uncertainty, "count": n, "used": used}


# -- results --------------------------------------------------------------------------------------


@dataclasses.dataclass
class FlatResult:
    """A built flat and everything about how it was made.

    Attributes
    ----------
    key : str
        ``"all"`` or the month ``"YYYY-MM"``.
    flat : ndarray (5000,) or None
        The flat, median 1; pixels with fewer than ``min_images`` images are
        interpolated from their neighbours (``count`` tells which). None
        when the group has too few usable images (``problem`` says why).
    uncertainty : ndarray (5000,)
        Standard error of each value (NaN where interpolated).
    count : ndarray (5000,)
        Images behind each value (0 where interpolated).
    images : list of dict
        Every image considered: measurements and ``rejected`` reason.
    method : str
    settings : dict
    notes : list of str
    problem : str or None
    """

    key: str
    flat: np.ndarray | None
    uncertainty: np.ndarray | None
    count: np.ndarray | None
    images: list[dict]
    method: str
    settings: dict
    notes: list[str] = dataclasses.field(default_factory=list)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether a flat was made."""
        return self.flat is not None

    @property
    def accepted(self) -> list[dict]:
        """The records of the images that went into the flat."""
        return [i for i in self.images if i.get("accepted") and not i.get("rejected")]

    @property
    def rejected(self) -> list[dict]:
        """The records of the images left out, each with its reason."""
        return [i for i in self.images if i.get("rejected")]


def _finish(state: CombineState, settings: FlatSettings, key: str) -> FlatResult:
    """The flat of a group from its combined state."""
    notes: list[str] = []
    settings_dict = dataclasses.asdict(settings)
    accepted = [i for i in state.images if i.get("accepted") and not i.get("rejected")]
    if len(accepted) < settings.min_images:
        return FlatResult(key, None, None, None, state.images, settings.method, settings_dict, notes,
                          f"{len(accepted)} usable images, fewer than min_images={settings.min_images}")
    flat = np.full(CCD_PIXELS, np.nan)
    uncertainty = np.full(CCD_PIXELS, np.nan)
    count = np.zeros(CCD_PIXELS)
    for mode in (2, 1):  # summing-1 values win wherever they are backed by enough images
        if mode not in state.counts:
            continue
        est = estimate(state.counts[mode], settings)
        good = (est["count"] >= settings.min_images) & np.isfinite(est["flat"])
        flat[good], uncertainty[good], count[good] = est["flat"][good], est["uncertainty"][good], est["count"][good]
    if 1 in state.counts and 2 in state.counts:
        one, two = estimate(state.counts[1], settings), estimate(state.counts[2], settings)
        both = (one["count"] >= settings.min_images) & (two["count"] >= settings.min_images)
        if both.sum() > 1:
            pair = (one["flat"][:-1] + one["flat"][1:]) / 2
            diff = (two["flat"][:-1] - pair)[both[:-1] & both[1:]]
            notes.append(f"summing-2 pair means agree with the summing-1 flat to {np.nanstd(diff):.4f} RMS")
    good = np.isfinite(flat)
    if not good.any():
        return FlatResult(key, None, None, None, state.images, settings.method, settings_dict, notes,
                          f"no CCD pixel is covered by {settings.min_images} or more usable images")
    scale = float(np.median(flat[good]))
    flat, uncertainty = flat / scale, uncertainty / scale
    if not good.all():
        x = np.arange(CCD_PIXELS)
        flat[~good] = np.interp(x[~good], x[good], flat[good])
        notes.append(f"{int((~good).sum())} CCD pixels have fewer than {settings.min_images} images; "
                     "their values are interpolated from neighbours (count 0)")
    return FlatResult(key, flat, uncertainty, count, state.images, settings.method, settings_dict, notes)


# -- the graph ------------------------------------------------------------------------------------


def _tree(func, items: Sequence, split_every: int, **kwargs):
    """Reduce delayed ``items`` with ``func(*group, **kwargs)`` in a tree of fan-in ``split_every``."""
    items = list(items)
    while len(items) > 1:
        items = [dask.delayed(func, pure=True)(*items[i : i + split_every], **kwargs)
                 for i in range(0, len(items), split_every)]
    return items[0]


def _image_info(ds: xr.Dataset) -> dict:
    attrs = ds.attrs
    return {
        "source": str(attrs.get("source", "")),
        "product_id": str(attrs.get("PRODUCT_ID", "")),
        "start_time": str(attrs.get("START_TIME", "")),
        "summing": int(attrs.get("SAMPLING_FACTOR", 1)),
        "first_pixel": int(attrs.get("SAMPLE_FIRST_PIXEL", 0)),
        "samples": int(ds.sizes["sample"]),
    }


def _profile_graph(ds: xr.Dataset, settings: FlatSettings):
    """Delayed :class:`ImageProfile` of one opened EDR: one read of each line block."""
    image = ds.image.data
    dark = ds.dark.data
    if not isinstance(image, da.Array):
        image = da.from_array(np.asarray(image), chunks=(current_settings().chunk_lines, -1))
    image = image.rechunk({1: -1})
    dark = da.asarray(dark).rechunk({0: image.chunks[0], 1: -1})
    blocks = [dask.delayed(block_statistics, pure=True)(i, d)
              for i, d in zip(image.to_delayed(optimize_graph=False).ravel(),
                              dark.to_delayed(optimize_graph=False).ravel())]
    stats = _tree(_sum_statistics, blocks, settings.split_every)
    return dask.delayed(image_profile, pure=True)(stats, _image_info(ds), ds.detector_pixel.values, settings)


def _combine_graph(members: Sequence[xr.Dataset], settings: FlatSettings, reference: np.ndarray | None = None):
    """Delayed :class:`CombineState` of some images: profiles binned in groups, then states merged in a tree."""
    profiles = [_profile_graph(ds, settings) for ds in members]
    k = settings.split_every
    states = [dask.delayed(_add_profiles, pure=True)(*profiles[i : i + k], settings=settings, reference=reference)
              for i in range(0, len(profiles), k)]
    return _tree(_merge_states, states, k)


def _open(item: xr.Dataset | str | os.PathLike) -> xr.Dataset:
    if isinstance(item, xr.Dataset):
        return item
    from ctxdask.backend import open_edr

    return open_edr(item)


def _month(ds: xr.Dataset) -> str:
    return str(np.datetime64(str(ds.attrs["START_TIME"]).rstrip("Z"), "M"))


def build_flat(
    datasets: Iterable[xr.Dataset | str | os.PathLike],
    *,
    by: Literal["all", "month"] = "all",
    method: Method | None = None,
    min_images: int | None = None,
    settings: FlatSettings | None = None,
) -> FlatResult | dict[str, FlatResult]:
    """Build CTX detector flats from a stack of EDRs, reading each image once.

    Runs on the current dask scheduler (a ``distributed.Client`` if one is
    active). See the module docstring for the method.

    Parameters
    ----------
    datasets : iterable of xarray.Dataset or path
        Raw EDRs from :func:`ctxdask.open_edr`, or their paths. A path that
        cannot be opened is recorded as rejected with its error; it does not
        stop the build.
    by : {"all", "month"}
        One flat from all images, or one per calendar month of START_TIME
        (as FU Berlin's monthly flats).
    method : {"median", "clipped-mean"}, optional
        Per-pixel combination; default from the settings.
    min_images : int, optional
        Minimum images behind a pixel (and in a group); default from the settings.
    settings : FlatSettings, optional
        Default :meth:`FlatSettings.from_config`.

    Returns
    -------
    FlatResult or dict of str to FlatResult
        One result for ``by="all"``; ``{"YYYY-MM": result}`` for ``by="month"``.
    """
    if by not in ("all", "month"):
        raise ValueError(f"by must be 'all' or 'month', not {by!r}")
    settings = settings or FlatSettings.from_config()
    settings = dataclasses.replace(settings, **{k: v for k, v in
                                                {"method": method, "min_images": min_images}.items()
                                                if v is not None})
    groups: dict[str, list[xr.Dataset]] = {}
    unreadable: list[dict] = []
    for item in datasets:
        try:
            ds = _open(item)
            if ds.image.attrs.get("calibration", "raw") != "raw":
                raise FlatError(ds.attrs.get("source"), "flat building needs raw EDR pixels (open_edr output)")
            check_bit_mode(ds.attrs.get("SAMPLE_BIT_MODE_ID", ""), path=ds.attrs.get("source"))
            key = _month(ds) if by == "month" else "all"
        except (CTXError, OSError, KeyError, ValueError) as exc:
            unreadable.append({"source": os.fspath(item) if not isinstance(item, xr.Dataset)
                               else str(item.attrs.get("source", "")), "rejected": f"unreadable: {exc}"})
            continue
        groups.setdefault(key, []).append(ds)

    # stage 1: images that cover the whole CCD (and groups with no such image: everything)
    full = {key: [ds for ds in members if _covers_ccd(ds)] for key, members in groups.items()}
    first = {key: (full[key] or members) for key, members in groups.items()}
    graphs = {key: _combine_graph(members, settings) for key, members in first.items()}
    (states,) = dask.compute(graphs)
    results = {key: _finish(state, settings, key) for key, state in states.items()}

    # stage 2: first-pixel > 0 images, normalised against their group's full-width flat
    partial = {key: [ds for ds in members if not _covers_ccd(ds)] for key, members in groups.items()
               if full[key] and results[key].ok}
    partial = {key: members for key, members in partial.items() if members}
    if partial:
        graphs = {key: _combine_graph(members, settings, reference=results[key].flat)
                  for key, members in partial.items()}
        (more,) = dask.compute(graphs)
        for key, extra in more.items():
            results[key] = _finish(states[key] + extra, settings, key)
    # the full-width images alone made no flat (too few): every image of the group, each by its own median,
    # rather than partial images left out without a word
    retry = {key: members for key, members in groups.items()
             if full[key] and not results[key].ok and len(full[key]) < len(members)}
    if retry:
        (again,) = dask.compute({key: _combine_graph(members, settings) for key, members in retry.items()})
        for key, state in again.items():
            results[key] = _finish(state, settings, key)
            results[key].notes.append("the full-width images alone were too few for a flat: every image was "
                                      "normalised by its own median, so windows may disagree in scale")
    for key in groups:
        if not full[key]:
            results[key].notes.append("no image covers the whole CCD: images were normalised by their own "
                                      "median, so flats of different windows may disagree in scale")
    for result in results.values():
        result.images.extend(dict(u) for u in unreadable)
    if by == "all":
        if not results:
            return FlatResult("all", None, None, None, unreadable, settings.method, dataclasses.asdict(settings),
                              problem="no readable images")
        return results["all"]
    return dict(sorted(results.items()))


def _covers_ccd(ds: xr.Dataset) -> bool:
    pixels = ds.detector_pixel.values
    summing = int(ds.attrs.get("SAMPLING_FACTOR", 1))
    return pixels.size > 0 and int(pixels[0]) == 0 and int(pixels[-1]) + summing >= CCD_PIXELS
