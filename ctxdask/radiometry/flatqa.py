"""QA of built flats: a plot per flat and one small offline HTML page.

For each :class:`~ctxdask.radiometry.flatbuild.FlatResult`,
:func:`plot_flat` draws the flat, its standard error and the number of
images behind each CCD pixel (PNG, matplotlib's Agg backend);
:func:`write_qa_page` writes ``index.html`` beside the flats with the
plots, the notes of the build, and every image: accepted ones with their
measurements, rejected ones first with the reason. Every value from the
images (paths, product ids, reasons) is HTML-escaped.
"""

from __future__ import annotations

import datetime
import html
import math
import os
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np

from ctxdask import __version__
from ctxdask.extras import require
from ctxdask.io.atomic import atomic_path
from ctxdask.radiometry.flatbuild import FlatResult

__all__ = ["plot_flat", "write_qa_page"]


def plot_flat(result: FlatResult, path: str | os.PathLike, *, reference: np.ndarray | None = None) -> pathlib.Path:
    """Plot a flat, its uncertainty and image count per CCD pixel as a PNG.

    Parameters
    ----------
    result : FlatResult
        A successful build.
    path : path
        The PNG to write.
    reference : ndarray, optional
        A known flat to overlay (tests, synthetic data).

    Raises
    ------
    ctxdask.extras.MissingExtraError
        Without the ``products`` extra (matplotlib).
    """
    require("products", "the flat QA plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    pixels = np.arange(result.flat.size)
    fig = Figure(figsize=(11, 7.5), dpi=100, layout="constrained")
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True, height_ratios=[3, 1.4, 1])
    interpolated = result.count == 0
    ax1.plot(pixels, result.flat, lw=0.5, color="tab:blue", label="flat")
    if reference is not None:
        ax1.plot(pixels, reference, lw=0.5, color="tab:orange", alpha=0.7, label="known flat")
    if interpolated.any():
        ax1.plot(pixels[interpolated], result.flat[interpolated], ".", ms=2, color="tab:red",
                 label="interpolated (too few images)")
    ax1.set_ylabel("flat (median 1)")
    ax1.set_title(f"ctxdask flat {result.key}: {len(result.accepted)} images, {result.method}, "
                  f"{len(result.rejected)} rejected")
    ax1.legend(loc="lower center", fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(pixels, 100 * result.uncertainty, lw=0.5, color="tab:green")
    if reference is not None:
        ax2.plot(pixels, 100 * np.abs(result.flat / reference - 1), lw=0.4, color="tab:orange", alpha=0.6,
                 label="|flat / known - 1|")
        ax2.legend(loc="upper center", fontsize=8)
    ax2.set_ylabel("standard error (%)")
    ax2.grid(alpha=0.3)
    ax3.plot(pixels, result.count, lw=0.8, color="tab:purple")
    ax3.set_ylabel("images")
    ax3.set_xlabel("CCD pixel (detector_pixel)")
    ax3.set_ylim(0, max(1.0, float(result.count.max()) * 1.1))
    ax3.grid(alpha=0.3)
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse;font-size:90%}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#eee}.bad{color:#a00}
.ok{color:#070}img{max-width:100%;border:1px solid #ddd}code{font-size:90%}"""

_COLUMNS = (("product_id", "product id"), ("start_time", "START_TIME"), ("summing", "sum"),
            ("first_pixel", "first pixel"), ("valid_lines", "valid lines"), ("lost_lines", "lost"),
            ("saturated_fraction", "saturated"), ("near_dark_fraction", "near dark"),
            ("median_signal_dn", "median DN"), ("profile_scatter", "pixel scatter"),
            ("normalised_by", "normalised by"))


def _cell(key: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if key.endswith("fraction"):
        return f"{100 * value:.2f}%"
    if key == "profile_scatter":
        return f"{100 * value:.2f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return html.escape(str(value))


def _image_table(images: Sequence[dict]) -> str:
    rows = sorted(images, key=lambda i: (not i.get("rejected"), str(i.get("start_time", "")), str(i.get("source"))))
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in _COLUMNS)
    out = [f"<table><tr><th>status</th>{head}<th>file</th></tr>"]
    for info in rows:
        reason = info.get("rejected")
        status = f'<td class="bad">rejected: {html.escape(str(reason))}</td>' if reason else '<td class="ok">used</td>'
        cells = "".join(f"<td>{_cell(key, info.get(key))}</td>" for key, _ in _COLUMNS)
        out.append(f"<tr>{status}{cells}<td><code>{html.escape(str(info.get('source', '')))}</code></td></tr>")
    out.append("</table>")
    return "\n".join(out)


def write_qa_page(results: Iterable[FlatResult], folder: str | os.PathLike, *,
                  files: dict[str, list[pathlib.Path]] | None = None,
                  reference: np.ndarray | None = None, page_name: str = "index.html",
                  plot_prefix: str = "flat_") -> pathlib.Path:
    """Write ``folder/index.html`` (and ``flat_KEY.png`` per flat) describing the flats.

    Parameters
    ----------
    results : iterable of FlatResult
    folder : path
        Where the flats are; the page and plots go there.
    files : dict, optional
        Key -> files written for that flat (linked from the page).
    reference : ndarray, optional
        A known flat to overlay on the plots.
    page_name, plot_prefix : str
        File name of the page, and what the plots' names start with (a flat written
        beside other files gets names of its own instead of ``index.html``).

    Returns
    -------
    pathlib.Path
        The page.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>ctxdask flats</title>"
             f"<style>{_CSS}</style></head><body><h1>ctxdask flats</h1>"
             f"<p>Written {stamp} by ctxdask {html.escape(__version__)}. Each flat is the per-CCD-pixel "
             "robust combination of the images' normalised column profiles; the standard error and the number "
             "of images behind each pixel are bands 2 and 3 of the cube.</p>"]
    for result in results:
        key = html.escape(result.key)
        parts.append(f"<h2 id='{key}'>{key}</h2>")
        if result.ok:
            png = plot_flat(result, folder / f"{plot_prefix}{result.key}.png", reference=reference)
            rms_unc = float(np.sqrt(np.nanmean(result.uncertainty**2)))
            parts.append(f"<p>{len(result.accepted)} images used, {len(result.rejected)} rejected; method "
                         f"{html.escape(result.method)}; flat range {np.min(result.flat):.4f} .. "
                         f"{np.max(result.flat):.4f}; RMS standard error {100 * rms_unc:.3f}%; "
                         f"{int((result.count == 0).sum())} pixels interpolated.</p>")
            parts.append(f"<p><img src='{html.escape(png.name)}' alt='flat {key}'></p>")
        else:
            parts.append(f"<p class='bad'>No flat: {html.escape(str(result.problem))}</p>")
        if files and result.key in files:
            links = ", ".join(f"<a href='{html.escape(p.name)}'>{html.escape(p.name)}</a>" for p in files[result.key])
            parts.append(f"<p>Files: {links}</p>")
        if result.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>")
        parts.append(_image_table(result.images))
    parts.append("</body></html>")
    page = folder / page_name
    with atomic_path(page) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return page
