"""The tile map of a tiled-stereo pair: where its DEM has holes, and why.

:func:`draw_tile_map` draws a pair's tile grid over its orthoimage (the
``dem_mosaic`` of the tiles' DRGs), each tile filled by its outcome:

- done on the first attempt (green),
- done after a retry (blue),
- done with a fallback parameter set (``tools.asp.tile-fallbacks``): a colour
  per set (purple, teal, ...), named in the legend and in the tile's label,
- timed out: its last attempt reached ``tools.timeouts.stereo_tile`` (orange),
- failed: an error ASP explained, or crashes on every attempt (red, hatched),
- not run yet, or interrupted (grey).

The picture is plain Pillow (no GUI backend), so the static report and the
live web view can both call it; :func:`tile_outcome` is the colour rule and
:func:`tile_map_for_pair` reads everything from a tracking database.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from ctxdask.tracking import BatchView

__all__ = ["FALLBACK_COLOURS", "OUTCOMES", "draw_tile_map", "tile_map_for_pair", "tile_outcome"]

#: outcome -> (label, RGB)
OUTCOMES: dict[str, tuple[str, tuple[int, int, int]]] = {
    "first": ("done first try", (46, 160, 67)),
    "retried": ("done after retry", (31, 111, 235)),
    "timeout": ("timed out", (240, 140, 0)),
    "failed": ("failed", (215, 38, 45)),
    "pending": ("not run", (140, 140, 140)),
}


#: colour of the tiles done with the n-th fallback parameter set (n = 1, 2, ...; cycled)
FALLBACK_COLOURS: tuple[tuple[int, int, int], ...] = ((142, 68, 173), (0, 150, 136), (199, 21, 133))


def tile_outcome(status: str, attempts: int, param_set: int = 0) -> str:
    """The outcome class of a tile from its status, number of attempts and the parameter set that made it.

    A tile done with the n-th fallback set is ``fallback<n>``.
    """
    if status == "done":
        if param_set:
            return f"fallback{int(param_set)}"
        return "first" if attempts <= 1 else "retried"
    if status in ("timeout", "failed"):
        return status
    return "pending"


def _style(outcome: str, labels: Mapping[int, str]) -> tuple[str, tuple[int, int, int]]:
    """(legend label, colour) of an outcome class; a fallback set's colour by its index."""
    if outcome.startswith("fallback"):
        n = int(outcome.removeprefix("fallback"))
        return f"done with {labels.get(n) or f'fallback {n}'}", FALLBACK_COLOURS[(n - 1) % len(FALLBACK_COLOURS)]
    return OUTCOMES[outcome]


def _ortho_image(path: str | os.PathLike, size: int):
    """The orthoimage read decimated, stretched to 8 bits; (Image, bounds) or None."""
    import numpy as np
    import rasterio
    from PIL import Image

    with rasterio.open(path) as src:
        scale = max(src.width, src.height) / float(size)
        shape = (max(1, round(src.height / max(scale, 1e-9))), max(1, round(src.width / max(scale, 1e-9))))
        data = src.read(1, out_shape=shape, masked=True).astype("float64")
        bounds = tuple(src.bounds)
    valid = data.compressed()
    grey = np.zeros(data.shape, dtype="uint8")
    alpha = np.zeros(data.shape, dtype="uint8")
    if valid.size:
        low, high = np.percentile(valid, [0.5, 99.5])
        span = high - low if high > low else 1.0
        grey = np.clip((data.filled(low) - low) / span * 255, 0, 255).astype("uint8")
        alpha = np.where(np.ma.getmaskarray(data), 0, 255).astype("uint8")
    return Image.fromarray(np.dstack([grey, grey, grey, alpha]), "RGBA"), bounds


def draw_tile_map(tiles: Sequence[Mapping[str, Any]], out: str | os.PathLike, *,
                  ortho: str | os.PathLike | None = None, size: int = 800, title: str = "") -> pathlib.Path:
    """Draw the tile grid, coloured by outcome, over the orthoimage; write a PNG.

    Parameters
    ----------
    tiles : sequence of mapping
        One per tile: ``index``, ``footprint`` (``(xmin, ymin, xmax, ymax)``
        in the map projection) or, without one, pixel ``x``, ``y``,
        ``width``, ``height``; and ``outcome`` (a key of :data:`OUTCOMES`) or
        ``status``, ``attempts`` and ``param_set`` (with ``param_label``, the
        name of the set, for the legend).
    out : path
        The PNG to write.
    ortho : path, optional
        A georeferenced orthoimage in the same projection as the footprints
        (the mosaic of the tiles' DRGs); its holes show as the background.
    size : int
        Longest side of the map in pixels.
    """
    from PIL import Image, ImageDraw, ImageFont

    def box(t):
        if t.get("footprint"):
            return tuple(float(v) for v in t["footprint"])
        # pixel rows grow downwards: flip them so the picture stays the right way up
        return (t["x"], -(t["y"] + t["height"]), t["x"] + t["width"], -t["y"])

    def outcome_of(t):
        return t.get("outcome") or tile_outcome(t.get("status", "pending"), int(t.get("attempts") or 0),
                                                int(t.get("param_set") or 0))

    labels = {int(t["param_set"]): t.get("param_label") for t in tiles if t.get("param_set")}
    styles = {**OUTCOMES, **{f"fallback{n}": _style(f"fallback{n}", labels) for n in sorted(labels)
                             if any(outcome_of(t) == f"fallback{n}" for t in tiles)}}
    boxes = {int(t["index"]): box(t) for t in tiles}
    background = _ortho_image(ortho, size) if ortho and os.path.isfile(ortho) else None
    every = list(boxes.values()) + ([background[1]] if background else [])
    if not every:
        raise ValueError("no tiles to draw")
    xmin, ymin = min(b[0] for b in every), min(b[1] for b in every)
    xmax, ymax = max(b[2] for b in every), max(b[3] for b in every)
    scale = size / max(xmax - xmin, ymax - ymin, 1e-9)
    width, height = max(1, round((xmax - xmin) * scale)), max(1, round((ymax - ymin) * scale))
    columns = max(1, min(len(styles), (width + 20) // 160))
    legend_h = 28 + 18 * (-(-len(styles) // columns)) + (18 if title else 0)
    canvas = Image.new("RGBA", (width + 20, height + 20 + legend_h), (255, 255, 255, 255))

    def px(x, y):
        return 10 + (x - xmin) * scale, 10 + (ymax - y) * scale

    if background:
        image, (bl, bb, br, bt) = background
        (x0, y0), (x1, y1) = px(bl, bt), px(br, bb)
        canvas.alpha_composite(image.resize((max(1, round(x1 - x0)), max(1, round(y1 - y0)))),
                               (round(x0), round(y0)))
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default()
    for t in tiles:
        outcome = outcome_of(t)
        colour = styles[outcome][1] if outcome in styles else _style(outcome, labels)[1]
        (x0, y0), (x1, y1) = px(boxes[int(t["index"])][0], boxes[int(t["index"])][3]), \
            px(boxes[int(t["index"])][2], boxes[int(t["index"])][1])
        fill = 150 if outcome in ("failed", "timeout") else 70
        draw.rectangle([x0, y0, x1, y1], fill=(*colour, fill), outline=(*colour, 255), width=2)
        if outcome == "failed":  # hatched, so a hole reads as one without colour too
            step = 8
            for k in range(int(x0) - int(y1 - y0), int(x1), step):
                draw.line([(max(x0, k), y0 + max(0, x0 - k)), (min(x1, k + (y1 - y0)), min(y1, y0 + (x1 - k)))],
                          fill=(255, 255, 255, 160), width=1)
        label = str(t["index"])
        if int(t.get("attempts") or 0) > 1:
            label += f" x{int(t['attempts'])}"
        if outcome.startswith("fallback") and t.get("param_label"):
            label += f" {str(t['param_label']).split(',')[0]}"  # the set's algorithm
        lx0, ly0, lx1, ly1 = draw.textbbox((x0 + 4, y0 + 3), label, font=font)
        draw.rectangle([lx0 - 2, ly0 - 2, lx1 + 2, ly1 + 2], fill=(255, 255, 255, 220))
        draw.text((x0 + 4, y0 + 3), label, fill=(0, 0, 0, 255), font=font)
    canvas.alpha_composite(overlay)
    draw = ImageDraw.Draw(canvas)
    y = height + 24
    if title:
        draw.text((10, y), title, fill=(0, 0, 0, 255), font=font)
        y += 18
    counts: dict[str, int] = {}
    for t in tiles:
        key = outcome_of(t)
        counts[key] = counts.get(key, 0) + 1
    for i, (key, (label, colour)) in enumerate(styles.items()):
        lx, ly = 10 + (i % columns) * 160, y + (i // columns) * 18
        draw.rectangle([lx, ly + 2, lx + 12, ly + 14], fill=(*colour, 255))
        draw.text((lx + 18, ly + 2), f"{label}: {counts.get(key, 0)}", fill=(0, 0, 0, 255), font=font)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.convert("RGB").save(out, "PNG")
    return out


def tile_map_for_pair(view: BatchView, out_dir: str | os.PathLike, pair_id: str,
                      out: str | os.PathLike, *, size: int = 800) -> pathlib.Path | None:
    """Draw the tile map of ``pair_id`` from a tracking database's view; None when it has no tiles.

    The orthoimage is the pair's delivered orthoimage mosaic or its COG
    (from the ``products`` table), when there is one.
    """
    rows = view.tiles(pair_id)
    if not rows:
        return None
    tiles = [{"index": r["tile_index"], "x": r["x"], "y": r["y"], "width": r["width"], "height": r["height"],
             "footprint": r["footprint"], "status": r["status"], "attempts": r["attempts"],
              "param_set": r.get("param_set") or 0, "param_label": r.get("param_label")} for r in rows]
    ortho_path = view.orthoimage_of(pair_id)
    ortho = pathlib.Path(out_dir) / ortho_path if ortho_path else None
    done = sum(t["status"] == "done" for t in tiles)
    return draw_tile_map(tiles, out, ortho=ortho, size=size,
                         title=f"{pair_id}: {done}/{len(tiles)} tiles done")
