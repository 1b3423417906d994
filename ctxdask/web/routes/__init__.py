"""The routes of ``ctxdask serve``, one module per kind of page."""

from __future__ import annotations

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ctxdask.web.routes import detail, explore, files, grading, overview, tables

__all__ = ["ROUTES"]

ROUTES = [
    Route("/", overview.overview),
    Route("/api/overview", overview.overview_json),
    Route("/images", tables.images),
    Route("/pairs", tables.pairs),
    Route("/image/{product_id}", detail.image),
    Route("/image/{product_id}/thumb/{stretch}.png", detail.thumbnail),
    Route("/image/{product_id}/grade", grading.grade, methods=["POST"]),
    Route("/pair/{pair_id}", detail.pair),
    Route("/pair/{pair_id}/grade", grading.grade, methods=["POST"]),
    Route("/pair/{pair_id}/stac.json", detail.stac),
    Route("/pair/{pair_id}/tiles.png", detail.tiles),
    Route("/pair/{pair_id}/map-hillshade.png", explore.map_hillshade),
    Route("/map", explore.map_page),
    Route("/select", explore.select_page),
    Route("/select/pairs.txt", explore.select_download),
    Route("/files/{path:path}", files.files),
    Route("/static/map.js", explore.map_script),  # before the mount: it is the report's template
    Mount("/static", StaticFiles(packages=[("ctxdask.web", "static")]), name="static"),
]
