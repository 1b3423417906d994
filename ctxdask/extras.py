"""The optional parts of ctxdask: which extra brings which imports, and the error when one is missing.

``pip install ctxdask`` opens, validates, calibrates and writes EDRs; the
extras of ``pyproject.toml`` bring the rest (``products``, ``batch``, ``web``,
``all``). A package that needs an extra calls :func:`require` before its own
imports, so that a missing extra is one line naming it and the command that
installs it, not an ``ImportError`` from deep inside a third-party import.
"""

from __future__ import annotations

import importlib.util

from ctxdask.exceptions import CTXError

__all__ = ["EXTRAS", "MissingExtraError", "extra_providing", "missing", "require"]

#: extra -> the top-level modules ctxdask imports from the distributions it adds (pyproject.toml)
EXTRAS: dict[str, tuple[str, ...]] = {
    "products": ("rio_cogeo", "scipy", "pystac", "jsonschema", "PIL", "pyproj", "matplotlib"),
    "batch": ("distributed", "psutil", "tqdm", "requests", "shapely", "jinja2"),
    "web": ("starlette", "uvicorn", "multipart"),
}

#: extras that bring others along (pyproject.toml: a batch delivers products, the web view reads a batch)
_INCLUDES: dict[str, tuple[str, ...]] = {"batch": ("products",), "web": ("batch",)}


class MissingExtraError(CTXError, ImportError):
    """A part of ctxdask was used whose optional dependencies are not installed."""


def _modules(extra: str) -> list[str]:
    found = list(EXTRAS[extra])
    for included in _INCLUDES.get(extra, ()):
        found += [m for m in _modules(included) if m not in found]
    return found


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` (and of the extras it brings) that cannot be imported here.

    Parameters
    ----------
    extra : str
        ``"products"``, ``"batch"`` or ``"web"``.

    Returns
    -------
    list of str
        Top-level module names; empty when the extra is installed.
    """
    return [name for name in _modules(extra) if importlib.util.find_spec(name) is None]


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` unless ``extra`` is installed.

    Parameters
    ----------
    extra : str
        The extra ``what`` needs.
    what : str
        What needs it, for the message (``"ctxdask serve"``, ``"ctxdask.batch"``).

    Raises
    ------
    MissingExtraError
        ``<what> needs the '<extra>' extra: pip install 'ctxdask[<extra>]'``.
    """
    absent = missing(extra)
    if absent:
        raise MissingExtraError(None, f"{what} needs the '{extra}' extra: pip install 'ctxdask[{extra}]' "
                                      f"(not installed: {', '.join(absent)})")


def extra_providing(module: str) -> str | None:
    """The smallest extra that brings ``module`` (a dotted name is taken by its top level), or None."""
    top = module.split(".")[0]
    for extra in ("products", "batch", "web"):
        if top in EXTRAS[extra]:
            return extra
    return None
