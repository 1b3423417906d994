"""Settings under dask's config namespace ``ctxdask``.

Defaults live in ``ctxdask.yaml`` beside this module and are registered with
:func:`dask.config.update_defaults` at import time, the way distributed does it.
Users override them in ``~/.config/dask/*.yaml``, with ``DASK_CTXDASK__...``
environment variables, or with ``dask.config.set``. Code reads settings at call
time (:func:`get`) and passes the values to workers as task arguments, so a
worker's own configuration never changes a result.
"""

from __future__ import annotations

import pathlib
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


def get(key: str, default: Any = _MISSING) -> Any:
    """Return the setting ``ctxdask.<key>`` as it is now.

    Parameters
    ----------
    key : str
        Dotted key below the ``ctxdask`` namespace, e.g. ``"validate.checksum"``.
    default : optional
        Returned when the key is not set anywhere.
    """
    if default is _MISSING:
        return dask.config.get(f"ctxdask.{key}")
    return dask.config.get(f"ctxdask.{key}", default=default)
