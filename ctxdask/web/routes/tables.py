"""The image and pair tables: filtered, sorted, paged."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse

from ctxdask.tracking import selection
from ctxdask.web import data
from ctxdask.web.routes.common import out_dir, page_number, render, view

__all__ = ["images", "pairs"]


def _table(request: Request, table: Callable, fields: tuple[str, ...], template: str, nav: str,
           heading: str) -> HTMLResponse:
    # a filter that does not parse shows the unfiltered table with the error (400), never a blank page
    params = {k: request.query_params.get(k, "") for k in fields}
    error = None
    with view(request) as v:
        try:
            t = table(v, page=page_number(request), **params)
        except selection.SelectionError as exc:
            error = f"filter not understood: {exc}"
            t = table(v, page=1, **{**params, "where": ""})
            t["where"] = params["where"]
    t["params"] = params
    return render(request, template, page=nav.lower(), nav=nav, heading=heading, t=t, error=error,
                  status_code=200 if error is None else 400)


def images(request: Request) -> HTMLResponse:
    """``GET /images``: the sortable, filterable image table."""
    return _table(request, data.image_table, ("where", "status", "grade", "manual", "sort", "direction"),
                  "images.html.j2", "Images", f"Images of {out_dir(request).name}")


def pairs(request: Request) -> HTMLResponse:
    """``GET /pairs``: the sortable, filterable pair table."""
    return _table(request, data.pair_table, ("where", "status", "manual", "sort", "direction"),
                  "pairs.html.j2", "Pairs", f"Stereo pairs of {out_dir(request).name}")
