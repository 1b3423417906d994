"""The map of footprints, DEM hillshades and tiles, and rule-based selection of pairs (shown, or as a pair list)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from ctxdask.report.mapdata import COLOURINGS
from ctxdask.tracking import Grade, Status, selection
from ctxdask.web import graphics
from ctxdask.web.routes.common import out_dir, render, view

__all__ = ["SELECTION_PREVIEW", "map_hillshade", "map_page", "map_script", "select_download", "select_page"]

#: rows of a selection shown in the page (the download has them all)
SELECTION_PREVIEW = 200


def map_page(request: Request) -> HTMLResponse:
    """``GET /map``: the footprint map, coloured by status, grade or manual grade."""
    colour = request.query_params.get("colour", "status")
    colour = colour if colour in COLOURINGS else "status"
    with view(request) as v:
        m = graphics.map_shapes(v, out_dir(request), colour)
    values = [str(s) for s in Status] if colour == "status" else [*(str(g) for g in Grade), "none"]
    return render(request, "map.html.j2", page="map", nav="Map", heading=f"Map of {out_dir(request).name}", m=m,
                  colour=colour, colour_values=values)


def map_hillshade(request: Request) -> FileResponse:
    """A pair's DEM hillshade in longitude/latitude for the map (drawn on the first request, then cached)."""
    with view(request) as v:
        png = graphics.hillshade_png(v, out_dir(request), request.path_params["pair_id"])
    if png is None:
        raise HTTPException(404, "no delivered DEM for this pair")
    return FileResponse(png, media_type="image/png")


def map_script(request: Request) -> Response:
    """The map's script: the report's ``_map.js.j2`` (the report inlines it; these pages allow no inline script)."""
    source = request.app.state.templates.get_template("_map.js.j2").render()
    return Response(source, media_type="text/javascript; charset=utf-8")


def select_page(request: Request) -> HTMLResponse:
    """``GET /select``: the pairs a selection rule (``where``) chooses."""
    where = request.query_params.get("where", "")
    error, rows = None, []
    with view(request) as v:
        try:
            rows = v.select_pairs(where)
        except selection.SelectionError as exc:
            error = f"filter not understood: {exc}"
    return render(request, "select.html.j2", status_code=200 if error is None else 400, page="select",
                  nav="Selection", heading=f"Selection in {out_dir(request).name}", where=where, error=error,
                  rows=rows[:SELECTION_PREVIEW], total=len(rows), pair_fields=sorted(selection.PAIR_FIELDS),
                  image_fields=sorted(selection.IMAGE_FIELDS))


def select_download(request: Request) -> PlainTextResponse:
    """``GET /select/pairs.txt``: the selected pairs as a pair list ``ctxdask batch`` reads."""
    where = request.query_params.get("where", "")
    with view(request) as v:
        try:
            rows = v.select_pairs(where)
        except selection.SelectionError as exc:
            return PlainTextResponse(f"filter not understood: {exc}\n", status_code=400)
    text = selection.pair_list_text(rows, where=where, source=str(out_dir(request)))
    return PlainTextResponse(text, headers={"content-disposition": 'attachment; filename="selection.txt"'})
