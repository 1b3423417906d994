"""ctxdask: mass processing of Mars Reconnaissance Orbiter CTX images with Dask.

The public API is imported lazily (PEP 562) so that ``import ctxdask`` stays
cheap on workers, in the command-line tool and in every program a step starts.
The settings (:mod:`ctxdask.config`, which imports dask) register their
defaults when a module that reads them is imported.
"""

from __future__ import annotations

import importlib

from ctxdask.exceptions import CTXError, CTXWarning

__version__ = "0.1.0"

# public name -> "module:attribute"
_LAZY = {
    "open_edr": "ctxdask.backend:open_edr",
    "read_label": "ctxdask.pds3:read_label",
    "validate": "ctxdask.validation:validate",
    "ValidationReport": "ctxdask.validation:ValidationReport",
    "decompand": "ctxdask.radiometry.calibrate:decompand",
    "calibrate": "ctxdask.radiometry.calibrate:calibrate",
    "write": "ctxdask.io:write",
    "connect": "ctxdask.cluster:connect",
    "open_dem": "ctxdask.quality.reader:open_dem",
}

__all__ = ["CTXError", "CTXWarning", "__version__", *_LAZY]


def __getattr__(name: str):
    try:
        target = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ctxdask' has no attribute {name!r}") from None
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
