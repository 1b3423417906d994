"""Where each setting's value came from, and the settings as plain data for records."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ctxdask import config
from ctxdask.settings.checks import _kebab
from ctxdask.settings.model import Settings, current

__all__ = ["as_dict", "leaves", "origins"]


def leaves(settings: Settings) -> dict[str, Any]:
    """Every setting as ``{"tools.asp.stereo-mode": value}`` (mappings of names opened one level down)."""
    out: dict[str, Any] = {}

    def walk(value: Any, key: str) -> None:
        if dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                walk(getattr(value, field.name), f"{key}.{_kebab(field.name)}" if key else _kebab(field.name))
        elif isinstance(value, Mapping) and value:
            for name, item in value.items():
                out[f"{key}.{name}"] = item
        else:
            out[key] = list(value) if isinstance(value, tuple) else value

    walk(settings, "")
    return out


def as_dict(settings: Settings | None = None) -> dict[str, Any]:
    """The settings (default :func:`current`) as ``ctxdask.yaml`` spells them: nested, kebab-case, lists.

    For records that must say what was in force (provenance, the run's row).
    """

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {_kebab(f.name): plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return plain(settings or current())


def _lookup(tree: Any, key: str) -> tuple[bool, Any]:
    """``(found, value)`` of dotted ``key`` in a nested mapping, ``-`` and ``_`` alike."""
    for part in key.split("."):
        if not isinstance(tree, Mapping):
            return False, None
        match = next((k for k in tree if str(k).replace("_", "-") == part.replace("_", "-")), None)
        if match is None:
            return False, None
        tree = tree[match]
    return True, tree


def origins(settings: Settings | None = None) -> dict[str, tuple[Any, str]]:
    """Every setting's value and where it came from, in dask's order of precedence.

    ``"default"`` (``ctxdask.yaml``), ``"file <path>"`` (a dask config file),
    ``"environment DASK_CTXDASK__..."`` or ``"code"`` (``dask.config.set``, or
    an argument of a program that set it).
    """
    import dask.config

    settings = settings or current()
    files = []
    for path in dask.config.paths:
        for loaded in dask.config.collect_yaml([path]):
            files.append((path, loaded))
    env = dask.config.collect_env()
    out = {}
    for key, value in leaves(settings).items():
        dotted = f"ctxdask.{key}"
        source = "code"
        found, default = _lookup(config.DEFAULTS, dotted)
        if found and _same(default, value):
            source = "default"
        for path, loaded in files:
            found, given = _lookup(loaded, dotted)
            if found and _same(given, value):
                source = f"file {path}"
        found, given = _lookup(env, dotted)
        if found and _same(given, value):
            source = "environment DASK_" + "__".join(p.upper().replace("-", "_") for p in dotted.split("."))
        out[key] = (value, source)
    return out


def _same(given: Any, value: Any) -> bool:
    if isinstance(given, (list, tuple)) and isinstance(value, (list, tuple)):
        return list(given) == list(value)
    if isinstance(given, Mapping) and isinstance(value, Mapping):
        return {str(k): v for k, v in given.items()} == {str(k): v for k, v in value.items()}
    return given == value
