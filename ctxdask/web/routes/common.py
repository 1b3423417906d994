"""What every page handler shares: the batch's view, the templates, rendering, the error page.

Handlers are module-level functions of a request; what they need of the
server (its :class:`~ctxdask.web.app.ServeSettings`, the templates, the CSRF
token) is on ``request.app.state``, set once by :func:`ctxdask.web.app.create_app`.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ctxdask.tracking import BatchView

__all__ = ["not_found", "out_dir", "page_number", "render", "view"]


def out_dir(request: Request) -> pathlib.Path:
    """The batch output folder (resolved): files are served only from inside it."""
    return request.app.state.out


@contextlib.contextmanager
def view(request: Request) -> Iterator[BatchView]:
    """A read-only view of the tracking database for one request (never holds a lock the driver waits for)."""
    with BatchView(request.app.state.settings.database) as opened:
        yield opened


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``template`` with the server's common context (``title`` defaults to the heading)."""
    state = request.app.state
    context = {**state.common, "title": context.get("heading", ""), **context}
    return HTMLResponse(state.templates.get_template(template).render(**context), status_code=status_code)


def page_number(request: Request) -> int:
    """The ``page`` query parameter (1 when missing or not a number)."""
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


async def not_found(request: Request, exc: HTTPException) -> HTMLResponse:
    """The error page for every HTTP error a handler raises."""
    message = exc.detail if isinstance(exc.detail, str) else "not found"
    return render(request, "error.html.j2", status_code=exc.status_code, page="error", nav="",
                  heading=f"{exc.status_code}", message=message)
