"""Manual grades: the one write the live pages make (:func:`ctxdask.tracking.grades.add_grade`)."""

from __future__ import annotations

import urllib.parse

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from ctxdask.tracking import grades
from ctxdask.web import security
from ctxdask.web.routes import detail

__all__ = ["grade"]


async def grade(request: Request) -> Response:
    """Store a grade posted from an image or pair page (CSRF-checked; refused by a read-only server)."""
    state = request.app.state
    scope = "image" if "product_id" in request.path_params else "pair"
    subject = request.path_params.get("product_id") or request.path_params["pair_id"]
    if state.settings.read_only:
        return PlainTextResponse("403 forbidden: this server is read-only (ctxdask serve --read-only)\n",
                                 status_code=403)
    form = await request.form()
    refused = security.check_csrf(form.get("csrf"), state.csrf, request.headers.get("origin"),
                                  request.headers.get("host"))
    if refused:
        return PlainTextResponse(f"403 forbidden: {refused}\n", status_code=403)
    try:
        await run_in_threadpool(grades.add_grade, state.settings.database, scope, subject,
                                str(form.get("value", "")), str(form.get("note", "")),
                                who=str(form.get("who", "")).strip() or state.common["who"])
    except grades.UnknownSubjectError as exc:
        raise HTTPException(404, str(exc)) from None
    except grades.GradeError as exc:
        handler = detail.image if scope == "image" else detail.pair
        return await run_in_threadpool(handler, request, f"grade not saved: {exc}", 400)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"stored": True, "scope": scope, "subject": subject})
    return RedirectResponse(f"/{scope}/{urllib.parse.quote(subject)}#grading", status_code=303)
