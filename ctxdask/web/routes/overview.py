"""The overview page and its JSON feed (the page refreshes its fragments from it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from ctxdask.web import data
from ctxdask.web.routes.common import out_dir, render, view

__all__ = ["FRAGMENTS", "overview", "overview_json"]

#: the parts of the overview the JSON feed carries rendered (``_<name>.html.j2``)
FRAGMENTS = ("summary", "progress", "running", "failures")


def overview(request: Request) -> HTMLResponse:
    """``GET /``: the overview page (progress, rates, ETA, failures, running work)."""
    with view(request) as v:
        ov = data.overview(v)
    return render(request, "overview.html.j2", page="overview", nav="Overview",
                  heading=f"ctxdask batch: {out_dir(request).name}", **ov)


def overview_json(request: Request) -> JSONResponse:
    """``GET /api/overview``: the overview's figures as JSON."""
    with view(request) as v:
        ov = data.overview(v)
    body = {k: ov[k] for k in ("generated", "counts", "rate_per_minute", "remaining", "eta", "failure_total",
                               "grades", "manual_grades", "products")}
    body["running"] = [{k: r[k] for k in ("key", "step", "subject", "worker", "started", "elapsed")}
                       for r in ov["running"]]
    body["steps"] = [{"step": s["step"], "counts": s["counts"], "total": s["total"]} for s in ov["steps"]]
    state = request.app.state
    context = {**state.common, **ov}
    body["fragments"] = {name: state.templates.get_template(f"_{name}.html.j2").render(**context)
                         for name in FRAGMENTS}
    return JSONResponse(body)
