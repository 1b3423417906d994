"""``ctxdask serve``: a live web view of a batch, with manual grading, notes and rule-based selection.

- :mod:`~ctxdask.web.app`: the Starlette application (:func:`create_app`);
- :mod:`~ctxdask.web.routes`: the page handlers, one module per kind of page;
- :mod:`~ctxdask.web.data`: what the pages show, read from the tracking database;
- :mod:`~ctxdask.tracking.selection`: the filter language, compiled to parameterised SQL;
- :mod:`~ctxdask.web.graphics`: thumbnail stretches, histogram and map shapes;
- :mod:`~ctxdask.web.security`: token, Host check, CSRF and security headers.

Templates live in ``templates/`` and extend the static report's shared ones
(:mod:`ctxdask.report.templating`), so a view is written once.
"""

from __future__ import annotations

from ctxdask.extras import require

require("web", "ctxdask.web")

from ctxdask.web.app import ServeSettings, create_app, overview_html

__all__ = ["ServeSettings", "create_app", "overview_html"]
