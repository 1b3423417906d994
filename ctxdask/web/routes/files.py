"""Files of the batch the database lists (products, logs, thumbnails), and nothing else."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse

from ctxdask.web import data
from ctxdask.web.routes.common import out_dir, view

__all__ = ["files"]


def files(request: Request) -> FileResponse:
    """``GET /files/{path}``: a file of the batch folder that the database lists (404 otherwise)."""
    with view(request) as v:
        path = data.file_listed(v, out_dir(request), request.path_params["path"])
    if path is None:
        raise HTTPException(404, "no such file in this batch")
    media = "text/plain; charset=utf-8" if path.suffix.lower() in (".log", ".txt") else None
    return FileResponse(path, media_type=media)
