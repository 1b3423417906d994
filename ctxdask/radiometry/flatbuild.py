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
   blocks of an image reduce exactly, in a tree. Each block is read, sliced
   and counted by one task (:mod:`~ctxdask.radiometry.flatgraph`); an image
   of one block is one task from read to profile.
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
thread) plus a few fixed-size histograms and up to 64 profiles (20 KB each)
per combine task, whatever the number of images. The per-image steps are in
:mod:`~ctxdask.radiometry.flatstats`.
Summing-2 samples map to the CCD pair ``(p, p + 1)`` with
``p = detector_pixel``; they measure the pair mean, which is what ctxcal
divides summing-2 images by, and fill pixels no summing-1 image reaches.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from typing import Literal

import dask
import numpy as np
import xarray as xr
from dask.sizeof import sizeof

from ctxdask.companding import check_bit_mode
from ctxdask.exceptions import CTXError
from ctxdask.radiometry.flat import FlatError
from ctxdask.radiometry.flatgraph import profile_graph, tree
from ctxdask.radiometry.flatstats import (
    CCD_PIXELS,
    BlockStatistics,
    ImageProfile,
    block_statistics,
    image_profile,
)
from ctxdask.settings import FlatBuildSettings, SettingsError

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

#: images binned into one combine state: their profiles (20 KB each) are gathered by one task, and
#: fewer states (20 MB each at 1000 bins) mean fewer to allocate, send between workers and add
_PROFILES_PER_STATE = 64

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
    # quantiles from the integer counts: numpy's running sums along rows are far slower in float
    whole = counts if np.issubdtype(counts.dtype, np.integer) else counts.astype(np.int64)
    median = _quantile(whole, 0.5, settings)
    sigma = (_quantile(whole, 0.75, settings) - _quantile(whole, 0.25, settings)) / 1.349
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


def _combine_graph(members: Sequence[xr.Dataset], settings: FlatSettings, reference: np.ndarray | None = None):
    """Delayed :class:`CombineState` of some images: profiles binned in groups, then states merged in a tree."""
    profiles = [profile_graph(ds, settings) for ds in members]
    k = _PROFILES_PER_STATE
    states = [dask.delayed(_add_profiles, pure=True)(*profiles[i : i + k], settings=settings, reference=reference)
              for i in range(0, len(profiles), k)]
    return tree(_merge_states, states, settings.split_every)


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
