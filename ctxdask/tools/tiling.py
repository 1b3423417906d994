"""ASP's distributed stereo contract: tile lists, per-tile calls, mosaics, failure kinds.

ASP 3.7 (2026) runs every stereo stage on one tile with ``stereo_tile
--tile-index i``; ``stereo_dist`` drives the tiles over SSH with GNU Parallel.
ctxdask runs the same programs as dask tasks (the prep steps are in
:func:`ctxdask.tools.recipe.tiled.tiled_stage`). What this module relies on, as
read in NeoGeographyToolkit/StereoPipeline:

Tile list (``src/asp/Core/StereoTiling.cc``, ``produceDistTileList``; read by
``readDistTileList`` in ``src/asp/Python/asp_stereo_utils.py``)
    ``<prefix>-distTileList.txt``, written by ``stereo_parse
    --stereo-dist-tile-params SIZE PAD``: one line per tile, five integers
    ``x y width height padding`` in left map-projected image pixels, row by
    row; the tile index is the 0-based line number (blank lines skipped). A
    line with another number of fields is an error.
Tile folder and outputs (``src/asp/Tools/stereo_tile``)
    ``<prefix>-<x>_<y>_<w>_<h>/`` (``BBox.name_str`` in
    ``asp_alg_utils.py``), output prefix ``<that folder>/<basename of
    prefix>``; point2dem writes ``-DEM.tif`` there, ``-DRG.tif`` with
    ``--orthoimage`` (stereo_tile inserts the tile's ``-L.tif`` after it) and
    ``-IntersectionErr.tif`` with ``--errorimage``. The statistics
    ``<prefix>*stats.tif`` made by ``stereo_pprc --stop-after-stats`` are
    symlinked into the tile folder; ASP recomputes them when they are older
    than the image (``first_is_newer`` in ``src/asp/Core/ImageUtils.cc``), so
    they must be staged after the images.
Entry and stop points (``Step`` in ``asp_stereo_utils.py``)
    0 pprc, 1 corr, 2 blend (skipped), 3 rfne, 4 fltr, 5 tri, 6 cleanup,
    7 dem, 8 mosaic; ``--stop-point`` stops before the step named. A tile runs
    0 to 8.
``--point2dem-options``
    Must contain ``--tr`` so all tiles share a grid (``stereo_tile`` and
    ``stereo_dist`` refuse otherwise, docs/tools/stereo_dist.rst); ctxdask
    also passes ``--t_srs`` (the left map projection) so every tile DEM is in
    one projection, as dem_mosaic expects.
Exit codes
    ``stereo_tile`` exits 0 on success; a usage error or a bad tile index is
    ``Error: ...`` with status 2 or 255 (``raise_error``'s default -1,
    ``asp_system_utils.py``); a failed stereo step raises "Stereo step X
    failed" (exit 1) after the C++ program printed ``ERROR: ...``
    (``ASP_STANDARD_CATCHES``, ``src/asp/Core/Macros.h``) — or printed
    nothing when it was killed by a signal (``subprocess.call`` hides the
    signal). point2dem runs with ``subprocess.call`` and its status is
    ignored: stereo_tile can exit 0 without a DEM, so outputs are checked.

:func:`failure_kind` turns that into what the retry policy needs: a timeout
or a death by signal (of stereo_tile or, seen as a failure without an error
message, of one of its programs) may pass on a rerun; an error ASP explains in
the log will not with the same options, so the tile runs again with the next
:class:`ParamSet` (``tools.asp.tile-fallbacks``, laid over the configured
stereo options by :func:`with_stereo_options`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ctxdask.exceptions import CTXError
from ctxdask.settings import Settings
from ctxdask.settings.stereo import fallback_label
from ctxdask.tools.recipe import Recipe, Ref, StagedInput, StepCall, check_product_id
from ctxdask.tools.recipe.step import resolve_sources

__all__ = ["OUTPUT_PREFIX", "TILE_LIST_SUFFIX", "FailureKind", "ParamSet", "Tile", "TileListError", "asp_errors",
           "failure_kind", "mosaic_calls", "param_sets", "point2dem_options", "read_tile_list", "tile_call",
           "tile_key", "with_stereo_options"]

#: the output prefix of every stereo step of a pair (relative to the step's work dir)
OUTPUT_PREFIX = "results/out"
TILE_LIST_SUFFIX = "-distTileList.txt"
#: stereo_tile runs preprocessing (0) through point2dem (7); stop before the mosaic (8)
ENTRY_POINT, STOP_POINT = 0, 8

FailureKind = Literal["timeout", "signal", "crash", "error", "cancelled", "missing"]
#: failure kinds that may pass when the tile runs again (on another worker)
TRANSIENT: frozenset[str] = frozenset({"timeout", "signal", "crash"})

# "ERROR: ..." from a C++ program (Macros.h), "Error: ..." from ASP's Python tools (raise_error)
_ASP_ERROR = re.compile(r"^\s*(ERROR|Error):\s*\S")


class TileListError(CTXError, ValueError):
    """A tile list that is not ASP's ``x y width height padding`` format."""


@dataclasses.dataclass(frozen=True, order=True)
class Tile:
    """One tile of a pair, as ``stereo_parse`` listed it (left map-image pixels).

    Attributes
    ----------
    index : int
        0-based line number in the tile list (``stereo_tile --tile-index``).
    x, y, width, height : int
        The tile without padding.
    padding : int
        Collar correlated around it (``--sgm-collar-size``).
    """

    index: int
    x: int
    y: int
    width: int
    height: int
    padding: int

    @property
    def name(self) -> str:
        """``x_y_w_h``, ASP's ``BBox.name_str``: the tile folder's suffix."""
        return f"{self.x}_{self.y}_{self.width}_{self.height}"

    def prefix(self, output_prefix: str = OUTPUT_PREFIX) -> str:
        """The tile's output prefix, ``<prefix>-<name>/<basename of prefix>``."""
        return f"{output_prefix}-{self.name}/{os.path.basename(output_prefix)}"

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """``(x, y, width, height)`` of the tile in map-projected pixels."""
        return (self.x, self.y, self.width, self.height)


def read_tile_list(path: str | os.PathLike) -> tuple[Tile, ...]:
    """Read ``<prefix>-distTileList.txt`` as ``readDistTileList`` does.

    Raises
    ------
    TileListError
        A line that is not five integers, a non-positive size, or no tiles.
    """
    path = os.fspath(path)
    tiles: list[Tile] = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                x, y, width, height, padding = (int(p) for p in parts)
            except ValueError:
                raise TileListError(path, f"line {number}: expected 'x y width height padding' (five "
                                          f"integers), found {line.strip()!r}") from None
            if width <= 0 or height <= 0 or padding < 0:
                raise TileListError(path, f"line {number}: tile {line.strip()!r} has no area or a negative padding")
            tiles.append(Tile(len(tiles), x, y, width, height, padding))
    if not tiles:
        raise TileListError(path, "no tiles: stereo_parse found no overlap between the images")
    return tuple(tiles)


def asp_errors(log_text: str) -> list[str]:
    """The ``ERROR:``/``Error:`` lines ASP's programs wrote to a log."""
    return [line.strip() for line in log_text.splitlines() if _ASP_ERROR.match(line)]


def failure_kind(*, timed_out: bool = False, cancelled: bool = False, returncode: int | None = None,
                 log_text: str = "", missing_program: bool = False) -> FailureKind:
    """Classify a failed ``stereo_tile`` run (see the module docstring).

    ``returncode`` ``None`` with no timeout means it exited 0 but left an
    incomplete output.
    """
    if missing_program:
        return "missing"
    if cancelled:
        return "cancelled"
    if timed_out:
        return "timeout"
    if returncode is not None and returncode < 0:
        return "signal"
    # an error message ASP wrote itself will be written again; silence means a program died
    return "error" if asp_errors(log_text) else "crash"


def tile_key(left: str, right: str, index: int) -> str:
    """Deterministic key (and work-dir name) of a pair's tile: ``stereo_tile-<L>-<R>-007``."""
    return f"stereo_tile-{check_product_id(left)}-{check_product_id(right)}-{int(index):03d}"


def point2dem_options(recipe: Recipe, *, t_srs: str | None, spacing: float) -> str:
    """The ``--point2dem-options`` string every tile gets (always with ``--tr``)."""
    s = recipe.settings.tools.asp
    args = ["-r", str(s.datum), "--tr", f"{float(spacing):g}"]
    if t_srs:
        args += ["--t_srs", t_srs]
    if s.orthoimage:
        args.append("--orthoimage")  # stereo_tile appends the tile's L.tif after it
    if s.errorimage:
        args.append("--errorimage")
    return shlex.join(args)


def _names(left: str, right: str) -> dict[str, str]:
    return {"left": check_product_id(left), "right": check_product_id(right), "pair": f"{left}-{right}"}


def _sources(recipe: Recipe, left: str, right: str, left_cube: str | Ref, right_cube: str | Ref,
             lowres_dem: str) -> dict[str, str | Ref]:
    external = {"left": left_cube, "right": right_cube, "lowres_dem": lowres_dem}
    return resolve_sources(recipe.tile_step, recipe.pair_keys(_names(left, right)), external)


def tile_call(recipe: Recipe, tile: Tile, *, left: str, right: str, left_cube: str | Ref, right_cube: str | Ref,
              lowres_dem: str, t_srs: str | None, spacing: float) -> StepCall:
    """Render ``stereo_tile`` for one tile of a pair.

    ``left_cube``/``right_cube`` are the level-1 cubes (cameras) as paths or
    refs to the image chains' last steps; the map images, tile list and
    statistics are refs to the pair's prep steps.
    """
    if recipe.tile_step is None:
        raise ValueError("the recipe is not in tiled stereo mode (tools.asp.stereo-mode)")
    names = {**_names(left, right), "tile_index": str(tile.index), "tile_prefix": tile.prefix(),
             "point2dem_options": point2dem_options(recipe, t_srs=t_srs, spacing=spacing)}
    call = recipe.tile_step.render(names, _sources(recipe, left, right, left_cube, right_cube, lowres_dem),
                                   env=recipe.settings.tools.env)
    return dataclasses.replace(call, key=tile_key(left, right, tile.index))


@dataclasses.dataclass(frozen=True)
class ParamSet:
    """One set of stereo options a tile may run with (``tools.asp.tile-fallbacks``).

    Attributes
    ----------
    index : int
        0: the configured options; n: the n-th fallback.
    label : str
        Short name for tables, maps and provenance (``asp_sgm, corr-kernel 7 7``).
    options : mapping
        Stereo option -> value (a list for several), laid over the configured ones.
    """

    index: int
    label: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def param_sets(settings: Settings) -> tuple[ParamSet, ...]:
    """The configured stereo options, then each fallback of ``tools.asp.tile-fallbacks``."""
    asp = settings.tools.asp
    return (ParamSet(0, fallback_label({}, asp.stereo_algorithm)),
            *(ParamSet(i, fallback_label(o, asp.stereo_algorithm), dict(o))
              for i, o in enumerate(asp.tile_fallbacks, 1)))


def with_stereo_options(call: StepCall, options: Mapping[str, Any]) -> StepCall:
    """``call`` with stereo ``options`` replacing the values it has and joining it otherwise.

    Replaced in place, not appended: boost refuses an option given twice on one
    command line. New ones go after ``--stereo-algorithm``'s value (before the
    positional files); on the command line they win over ``stereo.default``
    (src/asp/Tools/stereo.cc:800-807).
    """
    if not options:
        return call
    argv = list(call.argv)
    anchor = argv.index("--stereo-algorithm") + 2 if "--stereo-algorithm" in argv else 1
    for name, value in options.items():
        values = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        flag = f"--{name}"
        if flag in argv:
            at = argv.index(flag) + 1
            argv[at:at + len(values)] = values
        else:
            argv[anchor:anchor] = [flag, *values]
            anchor += 1 + len(values)
    return dataclasses.replace(call, argv=tuple(argv))


def mosaic_calls(recipe: Recipe, *, left: str, right: str, tiles: Iterable[tuple[Tile, str]]) -> list[StepCall]:
    """``dem_mosaic`` of the done tiles' DEMs (and orthoimages, error images).

    Parameters
    ----------
    tiles : iterable of (Tile, key)
        The tiles that succeeded and the key of the step (or delivery) that
        holds their outputs; their ``dem``/``ortho``/``error`` roles are
        staged under the tile's own relative path.
    """
    names = _names(left, right)
    tiles = sorted(tiles)
    calls = []
    for step in recipe.mosaic_steps:
        role = next(iter(step.outputs))
        suffix = step.outputs[role].removeprefix(f"{OUTPUT_PREFIX}-").removesuffix(".tif")
        inputs = {f"tile{tile.index:03d}": StagedInput(f"{tile.prefix()}-{suffix}.tif", Ref(key, role))
                  for tile, key in tiles}
        listing = "".join(f"{i.name}\n" for i in inputs.values())
        call = step.render(names, {}, env=recipe.settings.tools.env)
        list_name = call.argv[call.argv.index("--dem-list") + 1]
        calls.append(dataclasses.replace(call, inputs=inputs, files={**call.files, list_name: listing}))
    return calls
