"""One image or pair: its page, its thumbnail stretches, STAC item and tile map."""

from __future__ import annotations

import json
import pathlib
import tempfile
import urllib.parse

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ctxdask.web import data, graphics
from ctxdask.web.routes.common import out_dir, render, view

__all__ = ["image", "pair", "stac", "thumbnail", "tiles"]


def image(request: Request, message: str | None = None, status_code: int = 200) -> HTMLResponse:
    """The image page (``message``: why a grade was not saved, shown above the form)."""
    pid = request.path_params["product_id"]
    with view(request) as v:
        d = data.image_detail(v, out_dir(request), pid)
    if d is None:
        raise HTTPException(404, f"no image {pid!r} in this batch")
    return render(request, "image.html.j2", status_code=status_code, page="image", nav="Images",
                  heading=f"Image {pid}", d=d, stretches=graphics.STRETCHES,
                  bars=graphics.histogram_bars(d["histogram"]), manual=d["manual"], history=d["history"],
                  steps=d["steps"], message=message, grade_action=f"/image/{urllib.parse.quote(pid)}/grade")


def pair(request: Request, message: str | None = None, status_code: int = 200) -> HTMLResponse:
    """The pair page (``message`` as for :func:`image`)."""
    pid = request.path_params["pair_id"]
    with view(request) as v:
        d = data.pair_detail(v, out_dir(request), pid)
    if d is None:
        raise HTTPException(404, f"no pair {pid!r} in this batch")
    return render(request, "pair.html.j2", status_code=status_code, page="pair", nav="Pairs", heading=f"Pair {pid}",
                  d=d, manual=d["manual"], history=d["history"], steps=d["steps"], message=message,
                  grade_action=f"/pair/{urllib.parse.quote(pid)}/grade")


def thumbnail(request: Request) -> Response:
    """``GET /image/{product_id}/thumb/{stretch}.png``: an image's thumbnail in one of the stretches."""
    pid, stretch = request.path_params["product_id"], request.path_params["stretch"]
    if stretch not in graphics.STRETCHES:
        raise HTTPException(404, "unknown stretch")
    out = out_dir(request)
    with view(request) as v:
        listed = v.thumbnail_of(pid)
        path = data.file_listed(v, out, data.link(out, listed) or "") if listed else None
    if path is None:
        raise HTTPException(404, "no thumbnail")
    return Response(graphics.stretch_png(path, stretch), media_type="image/png")


def stac(request: Request) -> JSONResponse:
    """The pair's STAC item as delivered, with the current automatic and manual grades added."""
    pid = request.path_params["pair_id"]
    out = out_dir(request)
    with view(request) as v:
        row = v.stac_of(pid)
        path = data.file_listed(v, out, data.link(out, row[0]) or "") if row else None
        if path is None:
            raise HTTPException(404, "no STAC item for this pair")
        extra = v.stac_properties(pid, row[1], row[2])
    try:
        item = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HTTPException(404, f"the STAC item cannot be read: {exc}") from None
    item.setdefault("properties", {}).update(extra)
    return JSONResponse(item, media_type="application/geo+json")


def tiles(request: Request) -> Response:
    """The tile map of a pair whose stereo ran by tile, drawn on request."""
    from ctxdask.report.tilemap import tile_map_for_pair

    pid = request.path_params["pair_id"]
    with view(request) as v, tempfile.TemporaryDirectory(prefix="ctxdask-tiles-") as tmp:
        drawn = tile_map_for_pair(v, out_dir(request), pid, pathlib.Path(tmp) / "tiles.png", size=640)
        if drawn is None:
            raise HTTPException(404, "this pair did not run by tile")
        return Response(pathlib.Path(drawn).read_bytes(), media_type="image/png")
