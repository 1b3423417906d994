"""The settings of ctxdask as one typed model, validated once from ``dask.config.get("ctxdask")``.

Defaults live once, in ``ctxdask.yaml`` (registered by :mod:`ctxdask.config`);
this package says what each value must be. :func:`current` reads the dask
configuration as it is now (files, ``DASK_CTXDASK__...`` environment variables,
``dask.config.set``) and checks every key at once, so a misspelt key or a
wrong value fails with one line naming it and what it may be::

    ctxdask.tools.asp.stereo-mode: 'tiles' is not one of 'monolithic', 'tiled', 'auto'

Keys are the yaml's kebab-case (``stereo-mode``); the same key written with
underscores (as a ``DASK_CTXDASK__TOOLS__ASP__STEREO_MODE`` environment variable
makes it) is the same key. Mappings whose keys are names (step timeouts,
worker resources, grade thresholds, environment variables) keep them as written.

- :mod:`~ctxdask.settings.checks`: converting and range-checking values (:class:`SettingsError`);
- :mod:`~ctxdask.settings.model`: the sections, :class:`Settings`, :func:`current` and :func:`validate`;
- :mod:`~ctxdask.settings.sources`: where each value came from (:func:`origins`), :func:`as_dict`.
"""

from __future__ import annotations

from ctxdask.settings.checks import SettingsError
from ctxdask.settings.model import (
    AspSettings,
    BatchSection,
    CatalogDownload,
    CatalogSettings,
    DemAlignment,
    DemHoles,
    FlatBuildSettings,
    FlatSettings,
    IsisSettings,
    PairSearchSettings,
    PreviewThresholds,
    QualitySettings,
    Section,
    Settings,
    TileSize,
    ToolsSettings,
    ValidateSettings,
    ZarrSettings,
    current,
    validate,
)
from ctxdask.settings.sources import as_dict, leaves, origins

__all__ = [
    "AspSettings",
    "BatchSection",
    "CatalogDownload",
    "CatalogSettings",
    "DemAlignment",
    "PreviewThresholds",
    "DemHoles",
    "FlatBuildSettings",
    "FlatSettings",
    "IsisSettings",
    "PairSearchSettings",
    "QualitySettings",
    "Section",
    "Settings",
    "SettingsError",
    "TileSize",
    "ToolsSettings",
    "ValidateSettings",
    "ZarrSettings",
    "as_dict",
    "current",
    "leaves",
    "origins",
    "validate",
]
