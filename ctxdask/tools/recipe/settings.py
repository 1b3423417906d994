"""The settings a recipe is built from: the model's sections it reads, keyword changes, what is installed.

A recipe reads the typed model (:class:`ctxdask.settings.Settings`) itself:
``tools.*``, ``quality.dem-alignment.*`` and ``flat.dir`` (:data:`RECIPE_SETTINGS`).
This module adds what the model leaves to the recipe:

- :func:`with_changes`: the convenience keywords of
  :func:`~ctxdask.tools.recipe.build_recipe` (``calibration="isis"``,
  ``timeouts={"parallel_stereo": 600}``), each the field name of one setting
  the recipe reads, applied with :meth:`Settings.override <ctxdask.settings.Settings.override>`;
- :func:`resolved`: ``stereo-mode: auto``, ``bundle-adjust: auto`` and ``preview: auto`` decided by what is
  installed (and configured) here, and
  ``max-displacement: auto`` as ``None``; done when a recipe is built, not when the
  settings are checked (the same configuration means different things on different machines);
- :func:`step_timeout` and :func:`step_resources`: a step's deadline and dask resources, and
  :func:`pair_step`, a pair step made with them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from ctxdask.exceptions import RecipeError
from ctxdask.settings import Settings
from ctxdask.tools.recipe.step import Step

__all__ = ["RECIPE_SETTINGS", "keywords", "pair_step", "resolved", "step_resources", "step_timeout", "with_changes"]

#: the settings (dotted field paths of the model; a section stands for all of its settings) a recipe reads
RECIPE_SETTINGS = ("tools", "quality.dem_alignment", "quality.preview", "flat.dir")


def _at(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


@functools.cache
def keywords(sections: tuple[str, ...] = RECIPE_SETTINGS) -> dict[str, tuple[str, ...]]:
    """Field name -> dotted paths of the settings under ``sections`` with that name (several: ambiguous).

    Read from the model's dataclasses, so a setting added to the model is a keyword at once.
    """
    found: dict[str, list[str]] = {}

    def walk(value: Any, path: str) -> None:
        if dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                walk(getattr(value, field.name), f"{path}.{field.name}")
        else:
            found.setdefault(path.rpartition(".")[2], []).append(path)

    defaults = Settings()  # the shape only: every section has the yaml's defaults
    for section in sections:
        walk(_at(defaults, section), section)
    return {name: tuple(paths) for name, paths in found.items()}


def with_changes(settings: Settings, changes: Mapping[str, Any]) -> Settings:
    """``settings`` with ``changes`` (field names of the settings a recipe reads), checked.

    A mapping is merged into the configured one (``timeouts={"parallel_stereo": 600}``
    changes one step's deadline); to replace a mapping whole, give settings made
    with :meth:`Settings.override <ctxdask.settings.Settings.override>`.

    Raises
    ------
    TypeError
        A name that is no setting the recipe reads, or the name of several.
    SettingsError
        A value the setting may not have, named by its key.
    """
    if not changes:
        return settings
    known, dotted = keywords(), {}
    for name, value in changes.items():
        paths = known.get(name, ())
        if len(paths) != 1:
            what = "ambiguous: " + " or ".join(paths) if paths else "unknown"
            raise TypeError(f"recipe setting {name!r} is {what} (a keyword names one of the settings under "
                            f"{', '.join(RECIPE_SETTINGS)}; give others with Settings.override)")
        configured = _at(settings, paths[0])
        if isinstance(configured, Mapping) and isinstance(value, Mapping):
            value = {**configured, **value}
        dotted[paths[0]] = value
    return settings.override(dotted)


def resolved(settings: Settings) -> Settings:
    """``settings`` with ``tools.asp.stereo-mode`` and ``bundle-adjust`` ``auto`` decided here, ``max-displacement``
    ``auto`` as ``None``.

    ASP 3.7 (2026) brought ``stereo_tile``; older ASP has only
    ``parallel_stereo``. Tiles need images mapprojected onto a low-resolution
    DEM: without one configured, monolithic. Bundle adjustment is on when
    ``bundle_adjust`` is installed. The alignment step takes ``None``
    for a displacement measured from the data.
    """
    import shutil

    asp, fixed = settings.tools.asp, {}
    path = (settings.tools.env or {}).get("PATH")
    if asp.max_displacement == "auto":
        fixed["max_displacement"] = None
    if asp.stereo_mode == "auto":
        tiled = shutil.which("stereo_tile", path=path) and asp.lowres_dem
        fixed["stereo_mode"] = "tiled" if tiled else "monolithic"
    if asp.bundle_adjust == "auto":
        fixed["bundle_adjust"] = shutil.which("bundle_adjust", path=path) is not None
    if asp.preview == "auto":  # the preview mapprojects onto the low-resolution DEM
        fixed["preview"] = bool(asp.lowres_dem)
    if not fixed:
        return settings
    tools = dataclasses.replace(settings.tools, asp=dataclasses.replace(asp, **fixed))
    return dataclasses.replace(settings, tools=tools)


def step_timeout(settings: Settings, name: str, family: str | None = None) -> float:
    """The deadline of step ``name``: setting ``tools.timeouts.<name>`` (else ``<family>``: one for both sides).

    Raises
    ------
    RecipeError
        No deadline is configured (every step of the recipe has one in ``ctxdask.yaml``).
    """
    timeouts = settings.tools.timeouts
    for key in (name, family):
        if key is not None and key in timeouts:
            return float(timeouts[key])
    raise RecipeError(None, f"no deadline for recipe step {name!r}: set tools.timeouts.{family or name}")


def step_resources(settings: Settings, name: str) -> dict[str, float]:
    """The dask worker resources of step ``name`` (setting ``tools.resources.<name>``; empty if unset)."""
    return dict(settings.tools.resources.get(name, {}))


def pair_step(s: Settings, name: str, *, family: str | None = None, **fields) -> Step:
    """A pair-scope step with its configured deadline and resources (``family``'s where it has none of its own).

    A native step also gets its deadline among its options: the callable runs
    the ASP program itself and gives it that deadline.
    """
    timeout = step_timeout(s, name, family)
    if fields.get("kind") == "native":
        fields["options"] = {**fields.get("options", {}), "timeout": timeout}
    resources = step_resources(s, name) or (step_resources(s, family) if family else {})
    return Step(name=name, timeout=timeout, resources=resources, scope="pair", **fields)
