"""The Jinja2 environment shared by the static report and the live pages (``ctxdask serve``).

One set of templates (``report.html.j2`` and the shared ``_style.css.j2``,
``_macros.html.j2``, ``_summary.html.j2`` here; the live pages in
``ctxdask/web/templates`` extend them), one escaping rule: every value printed
with ``{{ }}`` goes through :func:`html.escape` (Jinja2 ``finalize``), with
autoescaping behind it; nothing from the database is ever marked safe.
"""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["environment", "fmt_metric", "seconds"]


def seconds(value: float | None) -> str:
    """``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; ``–`` for unknown."""
    if value is None or not math.isfinite(value):
        return "–"
    if value < 60:
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_metric(value: Any, fmt: str) -> str:
    """``value`` formatted with ``fmt``; ``–`` for missing, ``str`` when it does not fit."""
    if value is None:
        return "–"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def environment(*extra_packages: tuple[str, str]):
    """A Jinja2 environment over the report's templates and ``extra_packages`` (``(package, folder)``).

    Templates of ``extra_packages`` come first, so a live page may include or
    extend the shared ones by name.
    """
    import jinja2
    import markupsafe

    def escape(value: Any) -> Any:
        # html.escape every plain value; macro output (already Markup) passes through
        if value is None or isinstance(value, markupsafe.Markup):
            return value
        return markupsafe.Markup(html.escape(str(value)))

    loaders = [jinja2.PackageLoader(pkg, folder) for pkg, folder in extra_packages]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([*loaders, jinja2.PackageLoader("ctxdask.report", ".")]),
        # finalize escapes every {{ }} output with html.escape; autoescape stays on as a backstop
        # for anything finalize does not see (filters' string results are finalized too)
        finalize=escape,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = seconds
    env.filters["megabytes"] = lambda n: f"{(n or 0) / 1e6:.1f} MB"
    env.filters["number"] = lambda v, fmt="{:.2f}": fmt_metric(v, fmt)
    return env
