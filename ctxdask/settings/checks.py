"""Checking settings: each value converted to its field's kind and kept inside its range.

A value that cannot be used fails with one line naming its key and what it may be
(:class:`SettingsError`); these functions are what :mod:`ctxdask.settings.model`
builds its sections with.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from ctxdask.exceptions import CTXError

__all__ = ["SettingsError"]


class SettingsError(CTXError, ValueError):
    """A setting that is unknown, missing or of the wrong kind or value."""

    def __init__(self, key: str, reason: str):
        super().__init__(None, f"ctxdask.{key}: {reason}")
        self.key = key


def _at_least(minimum: float) -> dict:
    return {"min": minimum}


def _between(low: float, high: float, *, high_included: bool = True) -> dict:
    return {"min": low, "max": high} if high_included else {"min": low, "below": high}


def _above(bound: float) -> dict:
    return {"above": bound}


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _describe(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(kind))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(kind))
    if kind is type(None):
        return "null"
    if origin in (tuple,):
        args = typing.get_args(kind)
        return "a list" + (f" of {len(args)} numbers" if args and args[-1] is not Ellipsis else "")
    if origin in (Mapping, dict) or dataclasses.is_dataclass(kind):
        return "a mapping"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(kind, str(kind))


def _convert(value: Any, kind: Any, key: str) -> Any:
    """``value`` as ``kind`` (a type hint), or :class:`SettingsError` naming ``key``."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if dataclasses.is_dataclass(kind):
        return value if isinstance(value, kind) else _section(value, kind, key)
    if origin is Literal:
        if value in typing.get_args(kind):
            return value
        if isinstance(value, str) and value.replace("_", "-") in typing.get_args(kind):  # an environment's spelling
            return value.replace("_", "-")
        raise SettingsError(key, f"{value!r} is not {_describe(kind)}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        for option in typing.get_args(kind):
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except SettingsError:
                continue
        raise SettingsError(key, f"{value!r} is not {_describe(kind)}")
    if origin is tuple:
        args = typing.get_args(kind)
        if isinstance(value, str) and args == (str, Ellipsis):  # an environment's "fetch,validate"
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise SettingsError(key, f"{value!r} is not {_describe(kind)}")
        items = args[:-1] * len(value) if args[-1] is Ellipsis else args
        return tuple(_convert(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, items)))
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise SettingsError(key, f"{value!r} is not a mapping")
        key_kind, value_kind = typing.get_args(kind)
        return {_convert(k, key_kind, f"{key}.{k}"): _convert(v, value_kind, f"{key}.{k}") for k, v in value.items()}
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):  # environment variables
            return value.lower() in ("true", "yes")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    raise SettingsError(key, f"{value!r} is not {_describe(kind)}")


@functools.cache
def _hints(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _section(value: Any, cls: type, key: str) -> Any:
    """A dataclass section from a mapping with kebab- or snake-case keys; unknown keys refused."""
    if not isinstance(value, Mapping):
        raise SettingsError(key, f"{value!r} is not a mapping of settings")
    hints, fields = _hints(cls)
    given: dict[str, Any] = {}
    for name, item in value.items():
        field = str(name).replace("-", "_")
        if field not in fields:
            known = ", ".join(_kebab(f) for f in fields)
            raise SettingsError(f"{key}.{name}" if key else str(name), f"unknown setting; known here: {known}")
        if field in given and name != _kebab(field):
            continue  # both spellings: the yaml's wins, as it does for dask.config.get
        given[field] = item
    out = {}
    for name, field in fields.items():
        where = f"{key}.{_kebab(name)}" if key else _kebab(name)
        if name not in given:
            raise SettingsError(where, "missing (ctxdask.yaml gives every setting a default: was it removed?)")
        out[name] = _checked(given[name], hints[name], field, where)
    return cls(**out)


def _checked(value: Any, kind: Any, field: dataclasses.Field, where: str) -> Any:
    """``value`` converted to ``kind`` and inside the field's range, or :class:`SettingsError`."""
    value = _convert(value, kind, where)
    if value is None:
        return value
    bounds = field.metadata
    if "min" in bounds and value < bounds["min"]:
        raise SettingsError(where, f"{value!r} is below the least allowed, {bounds['min']:g}")
    if "max" in bounds and value > bounds["max"]:
        raise SettingsError(where, f"{value!r} is above the most allowed, {bounds['max']:g}")
    if "above" in bounds and value <= bounds["above"]:
        raise SettingsError(where, f"{value!r} must be more than {bounds['above']:g}")
    if "below" in bounds and value >= bounds["below"]:
        raise SettingsError(where, f"{value!r} must be less than {bounds['below']:g}")
    return value
