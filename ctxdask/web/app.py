"""The Starlette application of ``ctxdask serve``: one batch, its routes, templates and guards.

:func:`create_app` puts what the handlers need on ``app.state`` (the
settings, the templates and their common context, the CSRF token) and wraps
the routes of :mod:`ctxdask.web.routes` in the middleware of
:mod:`ctxdask.web.security`. Every page opens its own read-only view of the
tracking database, so pages never hold a lock the driver waits for; grades
are the only writes (:func:`ctxdask.tracking.grades.add_grade`, WAL + busy
timeout + retries).
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import pathlib
import urllib.parse
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from ctxdask.report.templating import environment
from ctxdask.tracking import BatchView, Grade, Status, database_path
from ctxdask.web import data, security
from ctxdask.web.routes import ROUTES
from ctxdask.web.routes.common import not_found

__all__ = ["ServeSettings", "create_app", "overview_html"]

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
    """The web application over one batch, behind its token, Host and header middleware."""
    out = pathlib.Path(settings.out).resolve()
    templates = environment(("ctxdask.web", "templates"))
    templates.globals["qs"] = qs
    csrf = security.new_token()
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = f"uid {os.getuid()}"
    middleware = [Middleware(security.SecurityHeaders)]
    if settings.token:
        middleware.append(Middleware(security.RequireToken, token=settings.token))
    elif settings.loopback_hosts:
        middleware.append(Middleware(security.LoopbackHostOnly, hosts=frozenset(settings.loopback_hosts)))
    app = Starlette(routes=ROUTES, middleware=middleware, exception_handlers={HTTPException: not_found})
    app.state.settings = settings
    app.state.out = out
    app.state.templates = templates
    app.state.csrf = csrf
    app.state.common = {"out_dir": str(out), "database": str(settings.database), "read_only": settings.read_only,
                        "statuses": tuple(Status), "grade_values": list(Grade), "problem_statuses": PROBLEM_STATUSES,
                        "interval_ms": int(settings.interval * 1000), "csrf": csrf, "who": who}
    return app
