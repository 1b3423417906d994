"""The Starlette application of ``ctxdask serve``: routes from URLs to :mod:`ctxdask.web.data` and templates.

Every page opens its own read-only view of the tracking database, so
pages never hold a lock the driver waits for; grades are the only writes
(:func:`ctxdask.tracking.grades.add_grade`, WAL + busy timeout + retries).
Route handlers are plain functions: Starlette runs them in its thread pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import os
import pathlib
import urllib.parse
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ctxdask.report.templating import environment
from ctxdask.tracking import BatchView, Grade, Status, database_path, grades, selection
from ctxdask.web import data, graphics, security

__all__ = ["ServeSettings", "create_app", "overview_html"]

#: rows of a selection shown in the page (the download has them all)
SELECTION_PREVIEW = 200
PROBLEM_STATUSES = tuple(s for s in Status if s.problem)


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """What one server serves and how.

    Attributes
    ----------
    out : path
        The batch output folder (files are served only from inside it).
    database : path
        The tracking database.
    read_only : bool
        Refuse every write (grading).
    token : str or None
        Required on every request (bound beyond loopback).
    loopback_hosts : set of str or None
        Accepted ``Host`` names without a token.
    interval : float
        Seconds between the overview's refreshes.
    """

    out: pathlib.Path
    database: pathlib.Path
    read_only: bool = False
    token: str | None = None
    loopback_hosts: frozenset[str] | None = frozenset({"127.0.0.1", "localhost", "::1"})
    interval: float = 2.0


def qs(params: dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2``: the current query parameters with ``changes`` (empty values left out)."""
    merged = {**params, **changes}
    return "?" + urllib.parse.urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def overview_html(out: str | os.PathLike, *, db: str | os.PathLike | None = None, height: int = 720) -> str:
    """The live overview as HTML for a notebook cell: an ``<iframe>`` holding one self-contained page.

    The same templates as ``ctxdask serve``'s overview; links point to the
    served pages, so this is a snapshot (re-run the cell, or serve the folder
    for a live view).

    Examples
    --------
    >>> from IPython.display import HTML                       # doctest: +SKIP
    >>> HTML(overview_html("results"))                         # doctest: +SKIP
    """
    import html

    out = pathlib.Path(out).resolve()
    with BatchView(database_path(db, out)) as view:
        ov = data.overview(view)
    env = environment(("ctxdask.web", "templates"))
    page = env.get_template("notebook_overview.html.j2").render(
        heading=f"ctxdask batch: {out.name}", out_dir=str(out), problem_statuses=PROBLEM_STATUSES, **ov)
    return (f'<iframe class="ctxdask-overview" srcdoc="{html.escape(page, quote=True)}" '
            f'style="width: 100%; height: {int(height)}px; border: 1px solid #ddd"></iframe>')


def create_app(settings: ServeSettings) -> Starlette:
    """The web application over one batch (wrapped in :class:`ctxdask.web.security.Guard`)."""
    out = pathlib.Path(settings.out).resolve()
    db_path = pathlib.Path(settings.database)
    env = environment(("ctxdask.web", "templates"))
    env.globals["qs"] = qs
    csrf = security.new_token()
    try:
        default_who = getpass.getuser()
    except (KeyError, OSError):
        default_who = f"uid {os.getuid()}"
    common = {"out_dir": str(out), "database": str(db_path), "read_only": settings.read_only,
              "statuses": tuple(Status), "grade_values": list(Grade), "problem_statuses": PROBLEM_STATUSES,
              "interval_ms": int(settings.interval * 1000), "csrf": csrf, "who": default_who}

    @contextlib.contextmanager
    def db():
        with BatchView(db_path) as view:
            yield view

    def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context = {**common, "title": context.get("heading", ""), **context}
        return HTMLResponse(env.get_template(template).render(**context), status_code=status_code)

    def fragments(ov: dict) -> dict[str, str]:
        context = {**common, **ov}
        return {name: env.get_template(f"_{name}.html.j2").render(**context)
                for name in ("summary", "progress", "running", "failures")}

    # ------------------------------------------------------------------ pages
    def overview(request: Request):
        with db() as view:
            ov = data.overview(view)
        return page("overview.html.j2", page="overview", nav="Overview", heading=f"ctxdask batch: {out.name}", **ov)

    def overview_json(request: Request):
        with db() as view:
            ov = data.overview(view)
        body = {k: ov[k] for k in ("generated", "counts", "rate_per_minute", "remaining", "eta", "failure_total",
                                   "grades", "manual_grades", "products")}
        body["running"] = [{k: r[k] for k in ("key", "step", "subject", "worker", "started", "elapsed")}
                           for r in ov["running"]]
        body["steps"] = [{"step": s["step"], "counts": s["counts"], "total": s["total"]} for s in ov["steps"]]
        body["fragments"] = fragments(ov)
        return JSONResponse(body)

    def _page_number(request: Request) -> int:
        try:
            return max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            return 1

    def table_page(request: Request, table, fields: tuple[str, ...], template: str, nav: str, heading: str):
        # a filter that does not parse shows the unfiltered table with the error (400), never a blank page
        params = {k: request.query_params.get(k, "") for k in fields}
        error = None
        with db() as view:
            try:
                t = table(view, page=_page_number(request), **params)
            except selection.SelectionError as exc:
                error = f"filter not understood: {exc}"
                t = table(view, page=1, **{**params, "where": ""})
                t["where"] = params["where"]
        t["params"] = params
        return page(template, page=nav.lower(), nav=nav, heading=heading, t=t, error=error,
                    status_code=200 if error is None else 400)

    def images(request: Request):
        return table_page(request, data.image_table, ("where", "status", "grade", "manual", "sort", "direction"),
                          "images.html.j2", "Images", f"Images of {out.name}")

    def pairs(request: Request):
        return table_page(request, data.pair_table, ("where", "status", "manual", "sort", "direction"),
                          "pairs.html.j2", "Pairs", f"Stereo pairs of {out.name}")

    def image(request: Request, message: str | None = None, status_code: int = 200):
        pid = request.path_params["product_id"]
        with db() as view:
            d = data.image_detail(view, out, pid)
        if d is None:
            raise HTTPException(404, f"no image {pid!r} in this batch")
        return page("image.html.j2", page="image", nav="Images", heading=f"Image {pid}", d=d,
                    stretches=graphics.STRETCHES, bars=graphics.histogram_bars(d["histogram"]),
                    manual=d["manual"], history=d["history"], steps=d["steps"], message=message,
                    grade_action=f"/image/{urllib.parse.quote(pid)}/grade", status_code=status_code)

    def pair(request: Request, message: str | None = None, status_code: int = 200):
        pid = request.path_params["pair_id"]
        with db() as view:
            d = data.pair_detail(view, out, pid)
        if d is None:
            raise HTTPException(404, f"no pair {pid!r} in this batch")
        return page("pair.html.j2", page="pair", nav="Pairs", heading=f"Pair {pid}", d=d, manual=d["manual"],
                    history=d["history"], steps=d["steps"], message=message,
                    grade_action=f"/pair/{urllib.parse.quote(pid)}/grade", status_code=status_code)

    def thumbnail(request: Request):
        pid, stretch = request.path_params["product_id"], request.path_params["stretch"]
        if stretch not in graphics.STRETCHES:
            raise HTTPException(404, "unknown stretch")
        with db() as view:
            thumbnail = view.thumbnail_of(pid)
            path = data.file_listed(view, out, data.link(out, thumbnail) or "") if thumbnail else None
        if path is None:
            raise HTTPException(404, "no thumbnail")
        return Response(graphics.stretch_png(path, stretch), media_type="image/png")

    def map_page(request: Request):
        colour = request.query_params.get("colour", "status")
        colour = colour if colour in ("status", "grade", "manual") else "status"
        with db() as view:
            m = graphics.map_shapes(view, out, colour)
        return page("map.html.j2", page="map", nav="Map", heading=f"Map of {out.name}", m=m, colour=colour)

    def select_page(request: Request):
        where = request.query_params.get("where", "")
        error, rows = None, []
        with db() as view:
            try:
                rows = view.select_pairs(where)
            except selection.SelectionError as exc:
                error = f"filter not understood: {exc}"
        return page("select.html.j2", page="select", nav="Selection", heading=f"Selection in {out.name}",
                    where=where, error=error, rows=rows[:SELECTION_PREVIEW], total=len(rows),
                    pair_fields=sorted(selection.PAIR_FIELDS), image_fields=sorted(selection.IMAGE_FIELDS),
                    status_code=200 if error is None else 400)

    def select_download(request: Request):
        where = request.query_params.get("where", "")
        with db() as view:
            try:
                rows = view.select_pairs(where)
            except selection.SelectionError as exc:
                return PlainTextResponse(f"filter not understood: {exc}\n", status_code=400)
        text = selection.pair_list_text(rows, where=where, source=str(out))
        return PlainTextResponse(text, headers={"content-disposition": 'attachment; filename="selection.txt"'})

    def files(request: Request):
        rel = request.path_params["path"]
        with db() as view:
            path = data.file_listed(view, out, rel)
        if path is None:
            raise HTTPException(404, "no such file in this batch")
        media = "text/plain; charset=utf-8" if path.suffix.lower() in (".log", ".txt") else None
        return FileResponse(path, media_type=media)

    def stac(request: Request):
        pid = request.path_params["pair_id"]
        with db() as view:
            row = view.stac_of(pid)
            path = data.file_listed(view, out, data.link(out, row[0]) or "") if row else None
            if path is None:
                raise HTTPException(404, "no STAC item for this pair")
            extra = view.stac_properties(pid, row[1], row[2])
        try:
            item = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise HTTPException(404, f"the STAC item cannot be read: {exc}") from None
        item.setdefault("properties", {}).update(extra)
        return JSONResponse(item, media_type="application/geo+json")

    def tiles(request: Request):
        pid = request.path_params["pair_id"]
        import tempfile

        from ctxdask.report.tilemap import tile_map_for_pair

        with db() as view, tempfile.TemporaryDirectory(prefix="ctxdask-tiles-") as tmp:
            drawn = tile_map_for_pair(view, out, pid, pathlib.Path(tmp) / "tiles.png", size=640)
            if drawn is None:
                raise HTTPException(404, "this pair did not run by tile")
            return Response(pathlib.Path(drawn).read_bytes(), media_type="image/png")

    # ----------------------------------------------------------------- writes
    async def grade(request: Request):
        scope = "image" if "product_id" in request.path_params else "pair"
        subject = request.path_params.get("product_id") or request.path_params["pair_id"]
        if settings.read_only:
            return PlainTextResponse("403 forbidden: this server is read-only (ctxdask serve --read-only)\n",
                                     status_code=403)
        form = await request.form()
        refused = security.check_csrf(form.get("csrf"), csrf, request.headers.get("origin"),
                                      request.headers.get("host"))
        if refused:
            return PlainTextResponse(f"403 forbidden: {refused}\n", status_code=403)
        from starlette.concurrency import run_in_threadpool

        try:
            await run_in_threadpool(grades.add_grade, db_path, scope, subject, str(form.get("value", "")),
                                    str(form.get("note", "")), who=str(form.get("who", "")).strip() or default_who)
        except grades.UnknownSubjectError as exc:
            raise HTTPException(404, str(exc)) from None
        except grades.GradeError as exc:
            handler = image if scope == "image" else pair
            return await run_in_threadpool(handler, request, f"grade not saved: {exc}", 400)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"stored": True, "scope": scope, "subject": subject})
        return RedirectResponse(f"/{scope}/{urllib.parse.quote(subject)}#grading", status_code=303)

    async def not_found(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "not found"
        return page("error.html.j2", page="error", nav="", heading=f"{exc.status_code}", message=message,
                    status_code=exc.status_code)

    routes = [
        Route("/", overview),
        Route("/api/overview", overview_json),
        Route("/images", images),
        Route("/pairs", pairs),
        Route("/image/{product_id}", image),
        Route("/image/{product_id}/thumb/{stretch}.png", thumbnail),
        Route("/image/{product_id}/grade", grade, methods=["POST"]),
        Route("/pair/{pair_id}", pair),
        Route("/pair/{pair_id}/grade", grade, methods=["POST"]),
        Route("/pair/{pair_id}/stac.json", stac),
        Route("/pair/{pair_id}/tiles.png", tiles),
        Route("/map", map_page),
        Route("/select", select_page),
        Route("/select/pairs.txt", select_download),
        Route("/files/{path:path}", files),
        Mount("/static", StaticFiles(packages=[("ctxdask.web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    return security.Guard(app, token=settings.token,
                          loopback_hosts=None if settings.token else set(settings.loopback_hosts or ()))
