"""What a batch is asked to do, checked before anything is made: settings, steps, source, pair list.

:func:`~ctxdask.batch.run_batch` and :func:`~ctxdask.batch.dry_run` read a
request the same way, so a dry run refuses what the run would refuse, with the
same one-line errors, and plans with the same holds (:func:`holds`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

from ctxdask import tracking
from ctxdask.batch.pairlist import PairList, read_pairs
from ctxdask.batch.planning import Chain, Hold, manual_hold, preview_hold, select_steps
from ctxdask.batch.sources import EDRSource, make_source
from ctxdask.settings import Settings
from ctxdask.settings import current as current_settings
from ctxdask.tools.recipe import Recipe, build_recipe

__all__ = ["Request", "check_request", "holds"]


@dataclasses.dataclass(frozen=True)
class Request:
    """A checked request: the settings, the recipe and the steps it selects, the EDR source, the pair list,
    the output folder (resolved, not made) and the tracking database's path."""

    settings: Settings
    recipe: Recipe
    chain: Chain
    source: EDRSource
    pairs: PairList
    out: pathlib.Path
    database: pathlib.Path


def check_request(pairs: str | os.PathLike | PairList | Iterable[tuple[str, str]], out: str | os.PathLike, *,
                  settings: Settings | Mapping[str, Any] | None = None,
                  source: EDRSource | str | os.PathLike | None = None, recipe: Recipe | None = None) -> Request:
    """Check a request: the settings, the steps they select and the source before the data, then the pair list.

    Raises
    ------
    SettingsError, StepSelectionError, ValueError, EmptyPairListError
        What :func:`~ctxdask.batch.run_batch` documents, before anything is made.
    """
    if not isinstance(settings, Settings):
        settings = current_settings().override(settings or {})
    batch = settings.batch
    recipe = recipe or build_recipe(settings)
    image_steps, pair_steps = select_steps(recipe, batch.steps, quality=batch.quality)
    src = make_source(source)
    pairlist = read_pairs(pairs).require_pairs()  # nothing usable: an error with the reasons
    out = pathlib.Path(out).resolve()
    return Request(settings, recipe, Chain(recipe, tuple(image_steps), tuple(pair_steps)), src, pairlist, out,
                   tracking.database_path(batch.database, out))


def holds(db: tracking.TrackingDB, settings: Settings, hold: Hold | None = None) -> Hold | None:
    """The pairs a run leaves alone: ``hold``'s, those held after their preview, those failed by hand.

    With ``batch.include-rejected`` only ``hold``'s: a person asked for the others.
    """
    if settings.batch.include_rejected:
        return hold
    return manual_hold(db.manually_rejected(), preview_hold(db.held_previews(), hold))
