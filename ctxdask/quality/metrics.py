"""Per-image quality metrics of a raw CTX EDR, computed lazily in one pass over the pixels.

:func:`measure` turns the raw Dataset of :func:`ctxdask.open_edr` into a lazy
Dataset of metrics. Every line block is reduced once by
:func:`block_partials` to a vector of sufficient statistics (sums, counts and
histograms), the vectors are summed, and :func:`finalize_metrics` turns the
sum into the metrics. Because the reductions read the same dask array as
:func:`ctxdask.calibrate`, ``dask.compute(calibrated_write, metrics)`` reads
each line block of the file once.

Definitions (raw = 8-bit EDR value, DN = decompanded through the SQROOT table)
-------------------------------------------------------------------------------
fill_fraction
    Active pixels with raw 0 (lost-packet zero fill; ISIS Null) / all active pixels.
saturated_fraction
    Active pixels with raw 255 / all active pixels.
valid_fraction
    ``1 - fill_fraction - saturated_fraction``: pixels with 0 < raw < 255.
lost lines
    Lines whose active pixels are all raw 0 (the decompressor zero-fills a
    lost packet's lines). Count, fraction of lines, and inclusive ranges.
dark level / dark noise, per channel
    Mean and standard deviation (DN) of the masked dark-reference pixels over
    the lines that are not lost. Summing 1: channel A = even-index dark
    pixels, B = odd-index ones (the two CCD read-out channels ctxcal
    separates); summing 2: one channel ``AB``. ``dark_noise`` is the worst
    channel, ``dark_level`` the mean over all dark pixels.
even/odd offset (summing 1)
    ctxevenodd's ``(mean odd columns - mean even columns) / 2`` of valid
    pixels after subtracting each line's channel dark, in DN;
    ``even_odd_relative = |offset| / signal``. NaN for summing 2.
signal
    Median DN of valid pixels minus ``dark_level``.
noise (SNR estimator)
    Pixel noise from differences ``d = x[l+1] - x[l]`` (DN) of vertically
    adjacent valid pixels of the same column, within each line block: for
    white noise ``std(d) = sigma x sqrt(2)``. Same-column differences cancel
    the column-wise even/odd offset, the flat field and any along-line scene
    pattern. The estimate is a clipped RMS: ``noise = sqrt(mean(d^2) / 2)``
    over the pairs with ``|d| <= 5 x 1.4826 x median(|d|)``, so edges and
    outliers beyond five robust sigmas are left out, while the RMS (unlike the
    median alone) stays unbiased when the SQROOT companding steps are as
    coarse as the noise. Scene texture at the pixel scale adds to it, so it is
    an upper bound of the instrument noise (and the SNR a lower bound). Pairs
    that straddle two line blocks are not counted, so the value moves very
    slightly with the chunking.
snr
    ``signal / noise``.
contrast
    Robust percentile spread over the median:
    ``(DN(p_high) - DN(p_low)) / signal`` (percentiles of valid pixels,
    default 2 and 98; ``quality.contrast-percentiles``).
haze
    Dark-object floor over the median: ``(DN(p_haze) - dark_level) / signal``
    (default the 1st percentile; ``quality.haze-percentile``). Atmospheric
    haze adds a roughly uniform path radiance, which raises the darkest
    objects towards the median: 0 for black shadows, towards 1 for a hazy,
    flat image.
histogram
    Counts of each raw value 0..255 over all active pixels.

Percentiles come from the raw histogram (the table is monotonic, so the DN
percentile is the table value of the raw percentile), with numpy's
``inverted_cdf`` definition: exact, and no second pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ctxdask import __version__, companding
from ctxdask.quality.errors import QualityError
from ctxdask.quality.thumbnail import thumbnail as _thumbnail
from ctxdask.settings import current as current_settings
from ctxdask.validation import line_ranges

__all__ = [
    "METRICS",
    "QualityMetrics",
    "block_partials",
    "finalize_metrics",
    "hist_percentile",
    "line_stats_block",
    "measure",
]

_TABLE = companding.SQROOT_TABLE.astype(np.int64)
_TABLE_F = companding.SQROOT_TABLE.astype(np.float64)
#: bins of the |line difference| histogram: every possible |DN difference|
_DIFF_BINS = companding.SQROOT_MAX_DN + 1

# layout of the per-block vector of sufficient statistics
_HIST = slice(0, 256)
_LOST = 256  # lost lines
_DARK = 257  # per channel (A, B): count, sum, sum of squares  -> 257..262
_EO = 263  # valid dark-subtracted pixels: even count, even sum, odd count, odd sum -> 263..266
_DIFF = slice(267, 267 + _DIFF_BINS)
N_PARTIALS = 267 + _DIFF_BINS

#: scalar metrics in the order :func:`finalize_metrics` returns them: name -> (units, long name)
METRICS: dict[str, tuple[str, str]] = {
    "fill_fraction": ("1", "fraction of active pixels with raw 0 (lost-packet fill)"),
    "saturated_fraction": ("1", "fraction of active pixels with raw 255"),
    "valid_fraction": ("1", "fraction of active pixels with 0 < raw < 255"),
    "lost_line_count": ("1", "lines whose active pixels are all raw 0"),
    "lost_line_fraction": ("1", "lost lines / lines"),
    "dark_level": ("DN", "mean of all dark-reference pixels of lines not lost"),
    "dark_noise": ("DN", "standard deviation of the dark-reference pixels, worst channel"),
    "even_odd_offset": ("DN", "ctxevenodd offset (mean odd - mean even columns) / 2, dark-subtracted"),
    "even_odd_relative": ("1", "|even_odd_offset| / signal"),
    "signal": ("DN", "median DN of valid pixels - dark_level"),
    "noise": ("DN", "clipped RMS of vertical pixel differences / sqrt(2)"),
    "snr": ("1", "signal / noise"),
    "contrast": ("1", "(DN(p_high) - DN(p_low)) / signal"),
    "haze": ("1", "(DN(p_haze) - dark_level) / signal: dark-object floor"),
}
_PER_CHANNEL = 4  # level and noise of channels A and B follow the scalar metrics
N_METRICS = len(METRICS) + _PER_CHANNEL


# -- block functions (plain numpy, imported by workers) ---------------------------------------


def line_stats_block(image: np.ndarray, dark: np.ndarray, *, summing: int) -> np.ndarray:
    """Per-line lost flag and dark means of one block: ``(lines, 3)`` float64.

    Columns: 1.0 where every active pixel of the line is raw 0, the mean DN of
    channel A (even-index dark pixels; all of them for summing 2) and of
    channel B (odd-index; NaN for summing 2). Lost lines get NaN dark means.
    """
    image = np.asarray(image)
    d = _TABLE_F[np.asarray(dark)]
    out = np.full((image.shape[0], 3), np.nan)
    lost = ~np.any(image, axis=1) if image.shape[1] else np.zeros(image.shape[0], bool)
    out[:, 0] = lost
    if d.shape[1]:
        if summing == 1:
            out[:, 1] = d[:, 0::2].mean(axis=1)
            out[:, 2] = d[:, 1::2].mean(axis=1) if d.shape[1] > 1 else np.nan
        else:
            out[:, 1] = d.mean(axis=1)
    out[lost, 1:] = np.nan
    return out


def block_partials(image: np.ndarray, dark: np.ndarray, *, summing: int) -> np.ndarray:
    """Sufficient statistics of one full-width line block, ``(1, N_PARTIALS)`` float64.

    Parameters
    ----------
    image : ndarray (lines, samples) uint8
        Raw active pixels (sample 0 of the block is sample 0 of the image, so
        column parity is the image's).
    dark : ndarray (lines, dark samples) uint8
        Raw dark-reference pixels of the same lines.
    summing : int
        SAMPLING_FACTOR: 1 gives channels A/B, 2 one channel.

    Returns
    -------
    ndarray
        The sums laid out as ``_HIST``, ``_LOST``, ``_DARK``, ``_EO``, ``_DIFF``;
        adding the vectors of two blocks gives the vector of both.
    """
    raw = np.asarray(image)
    out = np.zeros((1, N_PARTIALS))
    vec = out[0]
    vec[_HIST] = np.bincount(raw.ravel(), minlength=256)
    lost = ~np.any(raw, axis=1) if raw.shape[1] else np.zeros(raw.shape[0], bool)
    vec[_LOST] = lost.sum()
    keep = ~lost

    d = _TABLE_F[np.asarray(dark)[keep]]
    channels = (d[:, 0::2], d[:, 1::2]) if summing == 1 else (d,)
    line_dark = []
    for c, values in enumerate(channels):
        vec[_DARK + 3 * c : _DARK + 3 * c + 3] = values.size, values.sum(), np.square(values).sum()
        line_dark.append(values.mean(axis=1) if values.shape[1] else np.zeros(values.shape[0]))

    rows = raw[keep]
    valid = (rows > 0) & (rows < 255)
    if summing == 1 and rows.size:
        dn = _TABLE_F[rows]
        for p in (0, 1):
            cols = dn[:, p::2] - line_dark[p][:, None]
            ok = valid[:, p::2]
            vec[_EO + 2 * p] = ok.sum()
            vec[_EO + 2 * p + 1] = cols[ok].sum()

    # vertically adjacent valid pixel pairs (lost lines are invalid, so pairs never span them)
    both = (raw[1:] > 0) & (raw[1:] < 255) & (raw[:-1] > 0) & (raw[:-1] < 255)
    diff = np.abs(_TABLE[raw[1:][both]] - _TABLE[raw[:-1][both]])
    vec[_DIFF] = np.bincount(diff, minlength=_DIFF_BINS)
    return out


def hist_percentile(hist: np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0-100) of the values a histogram counts, ``inverted_cdf`` rule.

    The smallest bin index whose cumulative count reaches ``q / 100`` of the
    total (what ``np.percentile(values, q, method="inverted_cdf")`` returns).
    NaN for an empty histogram.
    """
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    if total <= 0:
        return math.nan
    cumulative = np.cumsum(hist)
    return float(np.searchsorted(cumulative, q / 100.0 * total, side="left").clip(0, hist.size - 1))


def _interpolated_median(hist: np.ndarray) -> float:
    """Median of integer values counted by ``hist``, interpolated within its bin.

    Bin ``k`` holds the values in ``[k - 1/2, k + 1/2)`` (``[0, 1/2)`` for 0,
    as |d| >= 0), spread evenly: the usual grouped-data median, which moves
    smoothly with the data instead of jumping between integers.
    """
    total = hist.sum()
    if total <= 0:
        return math.nan
    cumulative = np.cumsum(hist)
    k = int(np.searchsorted(cumulative, total / 2.0, side="left"))
    below = cumulative[k - 1] if k else 0.0
    lower, width = (0.0, 0.5) if k == 0 else (k - 0.5, 1.0)
    return lower + width * (total / 2.0 - below) / hist[k]


def _noise(diff_hist: np.ndarray) -> float:
    """Pixel noise from the histogram of |vertical differences| (see the module docstring)."""
    if diff_hist.sum() <= 0:
        return math.nan
    robust = 1.4826 * _interpolated_median(diff_hist)  # sigma of d, robust but quantized
    clip = max(5.0 * robust, 1.0)
    k = np.arange(diff_hist.size, dtype=np.float64)
    inside = k <= clip
    variance = (diff_hist[inside] * k[inside] ** 2).sum() / diff_hist[inside].sum()
    return math.sqrt(variance / 2.0)


def finalize_metrics(
    partials: np.ndarray,
    *,
    lines: int,
    samples: int,
    summing: int,
    contrast_percentiles: Sequence[float],
    haze_percentile: float,
) -> np.ndarray:
    """The metric vector (order of :data:`METRICS`, then level/noise of A and B) from summed partials."""
    p = np.asarray(partials, dtype=np.float64).reshape(-1)
    hist = p[_HIST]
    pixels = float(lines * samples)
    out = np.full(N_METRICS, np.nan)
    m = dict.fromkeys(METRICS, math.nan)
    if pixels:
        m["fill_fraction"] = hist[0] / pixels
        m["saturated_fraction"] = hist[255] / pixels
        m["valid_fraction"] = hist[1:255].sum() / pixels
    m["lost_line_count"] = p[_LOST]
    m["lost_line_fraction"] = p[_LOST] / lines if lines else math.nan

    levels, noises = [math.nan, math.nan], [math.nan, math.nan]
    n_all = s_all = 0.0
    for c in range(2 if summing == 1 else 1):
        n, s, ss = p[_DARK + 3 * c : _DARK + 3 * c + 3]
        if n:
            levels[c] = s / n
            noises[c] = math.sqrt(max(ss / n - (s / n) ** 2, 0.0))
            n_all, s_all = n_all + n, s_all + s
    if n_all:
        m["dark_level"] = s_all / n_all
        m["dark_noise"] = max(v for v in noises if not math.isnan(v))

    valid_hist = hist.copy()
    valid_hist[[0, 255]] = 0
    median_dn = _percentile_dn(valid_hist, 50.0)
    dark = m["dark_level"] if not math.isnan(m["dark_level"]) else 0.0
    signal = median_dn - dark
    m["signal"] = signal
    m["noise"] = _noise(p[_DIFF])

    if summing == 1:
        n_even, s_even, n_odd, s_odd = p[_EO : _EO + 4]
        if n_even and n_odd:
            m["even_odd_offset"] = (s_odd / n_odd - s_even / n_even) / 2.0
    if signal > 0:
        m["even_odd_relative"] = abs(m["even_odd_offset"]) / signal
        if m["noise"] > 0:
            m["snr"] = signal / m["noise"]
        elif m["noise"] == 0:
            m["snr"] = math.inf
        low, high = contrast_percentiles
        m["contrast"] = (_percentile_dn(valid_hist, high) - _percentile_dn(valid_hist, low)) / signal
        m["haze"] = (_percentile_dn(valid_hist, haze_percentile) - dark) / signal
    out[: len(METRICS)] = [m[k] for k in METRICS]
    out[len(METRICS) :] = [levels[0], noises[0], levels[1], noises[1]]
    return out


def _percentile_dn(raw_hist: np.ndarray, q: float) -> float:
    raw = hist_percentile(raw_hist, q)
    return math.nan if math.isnan(raw) else float(_TABLE_F[int(raw)])


# -- the lazy Dataset ----------------------------------------------------------------------


def measure(
    ds: xr.Dataset,
    *,
    image: xr.DataArray | None = None,
    thumbnail_size: int | None = None,
    contrast_percentiles: Sequence[float] | None = None,
    haze_percentile: float | None = None,
) -> xr.Dataset:
    """Lazy quality metrics (and a thumbnail) of a raw CTX EDR.

    Parameters
    ----------
    ds : xarray.Dataset
        The raw Dataset of :func:`ctxdask.open_edr` (``image`` and ``dark``
        uint8, ``calibration="raw"``). Metrics need raw values: fill (raw 0),
        saturation (raw 255) and the raw histogram are lost after decompanding.
    image : xarray.DataArray, optional
        The image to make the thumbnail from, e.g. ``calibrate(ds).image`` so
        that the thumbnail shares the calibration graph. Default: ``ds.image``
        decompanded to DN (fill as NaN).
    thumbnail_size : int, optional
        Longest thumbnail side (default ``quality.thumbnail-size``).
    contrast_percentiles : (float, float), optional
        Default ``quality.contrast-percentiles``.
    haze_percentile : float, optional
        Default ``quality.haze-percentile``.

    Returns
    -------
    xarray.Dataset
        Dask-backed: 0-d variables named as in :data:`METRICS`;
        ``dark_level_channel`` / ``dark_noise_channel`` (channel);
        ``histogram`` (raw: 256); ``lost`` (line, bool); ``line_dark``
        (line, channel) per-line dark means; ``thumbnail``
        (thumb_line, thumb_sample). Nothing is computed: pass it to
        :func:`dask.compute` together with other work on the same EDR, then to
        :meth:`QualityMetrics.from_dataset`.

    Raises
    ------
    QualityError
        ``ds`` is not a raw EDR Dataset.
    UnsupportedModeError
        For LIN-companded images (no table to turn raw values into DN).
    """
    where = ds.attrs.get("source") or ds.attrs.get("PRODUCT_ID")
    if "image" not in ds or "dark" not in ds:
        raise QualityError(where, "quality metrics need the 'image' and 'dark' variables of ctxdask.open_edr")
    if ds.image.attrs.get("calibration", "raw") != "raw" or ds.image.dtype != np.uint8:
        raise QualityError(
            where,
            f"quality metrics need the raw 8-bit pixels, not {ds.image.attrs.get('calibration')!r} "
            f"{ds.image.dtype}: pass the Dataset of ctxdask.open_edr (and the calibrated image as image=)",
        )
    companding.check_bit_mode(str(ds.attrs.get("SAMPLE_BIT_MODE_ID", "")), path=where)
    summing = int(ds.attrs.get("SAMPLING_FACTOR", 1))
    if contrast_percentiles is None:
        contrast_percentiles = current_settings().quality.contrast_percentiles
    low, high = (float(v) for v in contrast_percentiles)
    haze_q = float(current_settings().quality.haze_percentile if haze_percentile is None else haze_percentile)
    if not 0 <= low < high <= 100 or not 0 <= haze_q <= 100:
        raise QualityError(where, f"percentiles must lie in 0..100 with low < high, not {low}, {high}, {haze_q}")

    raw = _as_dask(ds.image.data)
    if raw.numblocks[1] != 1:
        raw = raw.rechunk({1: -1})  # block_partials needs whole lines (column parity, line pairs)
    dark = _as_dask(ds.dark.data).rechunk((raw.chunks[0], -1))
    lines, samples = raw.shape
    nblocks = raw.numblocks[0]

    parts = da.map_blocks(
        block_partials, raw, dark, summing=summing, chunks=((1,) * nblocks, (N_PARTIALS,)),
        dtype=np.float64, meta=np.empty((0, 0), np.float64),
    )
    metric_vector = da.map_blocks(
        finalize_metrics, parts.sum(axis=0), lines=lines, samples=samples, summing=summing,
        contrast_percentiles=(low, high), haze_percentile=haze_q,
        chunks=((N_METRICS,),), dtype=np.float64, meta=np.empty((0,), np.float64),
    )
    per_line = da.map_blocks(
        line_stats_block, raw, dark, summing=summing, chunks=(raw.chunks[0], (3,)),
        dtype=np.float64, meta=np.empty((0, 0), np.float64),
    )
    channels = ["A", "B"] if summing == 1 else ["AB"]
    nch = len(channels)

    variables: dict[str, Any] = {}
    for i, (name, (units, long_name)) in enumerate(METRICS.items()):
        variables[name] = xr.Variable((), metric_vector[i], {"units": units, "long_name": long_name})
    base = len(METRICS)
    variables["dark_level_channel"] = xr.Variable(
        "channel", metric_vector[base : base + 2 * nch : 2], {"units": "DN", "long_name": "mean dark pixel"}
    )
    variables["dark_noise_channel"] = xr.Variable(
        "channel", metric_vector[base + 1 : base + 2 * nch : 2],
        {"units": "DN", "long_name": "dark pixel standard deviation"},
    )
    variables["histogram"] = xr.Variable(
        "raw", parts[:, _HIST].sum(axis=0).astype(np.int64), {"long_name": "count of each raw value (all pixels)"}
    )
    variables["lost"] = xr.Variable("line", per_line[:, 0].astype(bool), {"long_name": "line is zero-filled"})
    variables["line_dark"] = xr.Variable(
        ("line", "channel"), per_line[:, 1 : 1 + nch], {"units": "DN", "long_name": "mean dark pixel of each line"}
    )
    source = image if image is not None else ds.image
    thumb = _thumbnail(source, thumbnail_size)
    variables["thumbnail"] = thumb.variable
    coords = {"raw": np.arange(256), "channel": channels, "line": ds.line.values}
    attrs = {
        "product_id": str(ds.attrs.get("PRODUCT_ID", "")),
        "source": str(ds.attrs.get("source", "")),
        "lines": lines,
        "samples": samples,
        "summing": summing,
        "contrast_percentiles": [low, high],
        "haze_percentile": haze_q,
        "thumbnail_factor": thumb.attrs["factor"],
        "thumbnail_calibration": str(source.attrs.get("calibration", "")),
        "history": f"ctxdask {__version__} quality.measure",
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _as_dask(data: Any) -> da.Array:
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=-1)


# -- computed metrics --------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-able Python value: NaN and infinities become None."""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


@dataclasses.dataclass(frozen=True)
class QualityMetrics:
    """The computed metrics of one image (definitions in :mod:`ctxdask.quality.metrics`).

    Floats are NaN (``inf`` for the SNR of a noiseless image) where a metric
    cannot be measured; :meth:`to_dict` turns those into ``None``.
    """

    product_id: str
    lines: int
    samples: int
    summing: int
    fill_fraction: float
    saturated_fraction: float
    valid_fraction: float
    lost_line_count: int
    lost_line_fraction: float
    lost_line_ranges: tuple[tuple[int, int], ...]
    dark_level: float
    dark_noise: float
    dark_level_channel: dict[str, float]
    dark_noise_channel: dict[str, float]
    even_odd_offset: float
    even_odd_relative: float
    signal: float
    noise: float
    snr: float
    contrast: float
    haze: float
    histogram: tuple[int, ...]

    @classmethod
    def from_dataset(cls, metrics: xr.Dataset) -> QualityMetrics:
        """Build from the Dataset of :func:`measure` (computed first if still lazy; the thumbnail is not)."""
        metrics = metrics.drop_vars(["thumbnail"], errors="ignore").compute()
        lost = np.flatnonzero(metrics["lost"].values)
        channels = [str(c) for c in metrics["channel"].values]
        scalars = {name: float(metrics[name]) for name in METRICS}
        scalars["lost_line_count"] = int(scalars["lost_line_count"])
        return cls(
            product_id=str(metrics.attrs.get("product_id", "")),
            lines=int(metrics.attrs["lines"]),
            samples=int(metrics.attrs["samples"]),
            summing=int(metrics.attrs["summing"]),
            lost_line_ranges=tuple(line_ranges(metrics["line"].values[lost])),
            dark_level_channel=dict(zip(channels, map(float, metrics["dark_level_channel"].values))),
            dark_noise_channel=dict(zip(channels, map(float, metrics["dark_noise_channel"].values))),
            histogram=tuple(int(v) for v in metrics["histogram"].values),
            **scalars,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (NaN/inf as None), flat apart from the ranges and histogram.

        Per-channel values appear as ``dark_level_A``, ``dark_noise_B``, ... so
        that each is one database column.
        """
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("dark_level_channel", "dark_noise_channel"):
                prefix = field.name.removesuffix("_channel")
                out.update({f"{prefix}_{c}": _plain(v) for c, v in value.items()})
            elif field.name == "lost_line_ranges":
                out[field.name] = [[int(a), int(b)] for a, b in value]
            elif field.name == "histogram":
                out[field.name] = [int(v) for v in value]
            else:
                out[field.name] = _plain(value)
        return out

    def grade(self, thresholds: Mapping[str, Mapping[str, float | None] | None] | None = None):
        """:func:`ctxdask.quality.grade` of these metrics."""
        from ctxdask.quality.grade import grade

        return grade(self, thresholds)
