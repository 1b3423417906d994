"""Settings under dask's config namespace ``ctxdask``.

Defaults live in ``ctxdask.yaml`` beside this module and are registered with
:func:`dask.config.update_defaults` at import time, the way distributed does it.
Users override them in ``~/.config/dask/*.yaml``, with ``DASK_CTXDASK__...``
environment variables, or with ``dask.config.set``. Code reads settings at call
time (:func:`get`) and passes the values to workers as task arguments, so a
worker's own configuration never changes a result.

Every read goes through :func:`get` (or :func:`current`), which spells each key as
``ctxdask.yaml`` does. dask keeps a key the way it was first written: an environment
variable ``DASK_CTXDASK__TOOLS__ASP__STEREO_MODE`` becomes ``stereo_mode``
(``dask/config.py``: ``collect_env`` lower-cases the name and keeps its underscores), and it
is collected when dask is imported, before this module registers the defaults, so
``update_defaults`` finds ``stereo_mode`` already there (``canonical_name`` treats ``-`` and
``_`` as one key) and the yaml's ``stereo-mode`` never appears. ``dask.config.get`` of the
full dotted key copes; a mapping read whole (``get("tools")``) would carry ``stereo_mode``
where the code looks up ``stereo-mode``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import dask.config
import yaml

_DEFAULTS_FILE = pathlib.Path(__file__).with_name("ctxdask.yaml")


def _load_defaults() -> dict:
    with open(_DEFAULTS_FILE, encoding="utf-8") as f:
        defaults = yaml.safe_load(f)
    dask.config.update_defaults(defaults)
    return defaults


DEFAULTS = _load_defaults()

_MISSING = object()


def _yaml_key(key: Any, schema: Mapping) -> Any:
    """``key`` as ``schema`` spells it, when it spells it the other way (``-`` vs ``_``)."""
    if not isinstance(key, str) or key in schema:
        return key
    other = key.replace("_", "-") if "_" in key else key.replace("-", "_")
    return other if other in schema else key


def _spelt(value: Any, schema: Any) -> Any:
    """A copy of ``value`` with every mapping key spelt as the defaults ``schema`` spells it.

    Keys the yaml does not have (a step name added to ``tools.timeouts``, an environment
    variable in ``tools.env``) are kept as written. Were both spellings present, the yaml's
    wins, as it does for :func:`dask.config.get` (``canonical_name`` prefers an exact match).
    """
    if not isinstance(value, Mapping):
        return value
    schema = schema if isinstance(schema, Mapping) else {}
    spelt: dict = {}
    for key, item in value.items():
        name = _yaml_key(key, schema)
        if name != key and name in value:
            continue
        spelt[name] = _spelt(item, schema.get(name))
    return spelt


def _schema(key: str) -> Any:
    """The defaults below ``ctxdask.<key>`` (``None`` where the yaml has no such key)."""
    schema: Any = DEFAULTS["ctxdask"]
    for part in key.split(".") if key else ():
        if not isinstance(schema, Mapping):
            return None
        schema = schema.get(_yaml_key(part, schema))
    return schema


def get(key: str, default: Any = _MISSING) -> Any:
    """Return the setting ``ctxdask.<key>`` as it is now.

    Parameters
    ----------
    key : str
        Dotted key below the ``ctxdask`` namespace, e.g. ``"validate.checksum"``.
    default : optional
        Returned when the key is not set anywhere.

    Returns
    -------
    Any
        The value; a mapping comes as a copy whose keys are spelt as in ``ctxdask.yaml``
        (``stereo-mode``), however the yaml, an environment variable or
        ``dask.config.set`` spelt them.
    """
    if default is _MISSING:
        value = dask.config.get(f"ctxdask.{key}")
    else:
        value = dask.config.get(f"ctxdask.{key}", default=default)
    return _spelt(value, _schema(key))


def default(key: str) -> Any:
    """The default of setting ``ctxdask.<key>`` as ``ctxdask.yaml`` gives it (a copy: safe to change).

    For code that needs a default where no configuration is read (the settings
    model's fields), so that every default is written once, in the yaml.

    Raises
    ------
    KeyError
        The yaml has no such setting.
    """
    import copy

    value: Any = DEFAULTS["ctxdask"]
    for part in key.split("."):
        value = value[part]
    return copy.deepcopy(value)


def current() -> dict:
    """Every ``ctxdask`` setting as it is now (for provenance records), spelt as the yaml."""
    return _spelt(dask.config.get("ctxdask", default={}), DEFAULTS["ctxdask"])
