"""Tiled stereo in a batch: the per-tile task, the retry policy, and the pair's verdict.

A pair in tiled mode (``tools.asp.stereo-mode``, :mod:`ctxdask.tools.tiling`)
runs as prep steps, then one dask task per tile, then mosaics. This module
holds the pieces that do not depend on how they are scheduled:

:class:`TilePlanTask`, :func:`plan_tiles` (worker)
    Reads the tile list ``stereo_parse`` wrote and the left map image's
    projection and pixel size (what every tile's ``--point2dem-options`` needs).
:class:`TileTask`, :func:`run_tile` (worker)
    One attempt at one tile: announces itself, stages the pair's map images,
    statistics and tile list through the batch's staging
    (:func:`ctxdask.batch.work.execute`: pulled once per worker over the dask
    connection, checksummed), runs ``stereo_tile`` under the runner's deadline
    and returns an :class:`~ctxdask.batch.work.Outcome` whose ``info`` says
    the tile, the attempt and, on failure, the failure kind, and whose
    ``files`` (DEM, orthoimage, error image, log, with sha256) are ready for
    delivery.
:class:`PairTiles` (driver)
    The tiles of one pair: which still need running (done tiles of earlier
    runs are skipped; failed ones only with ``retry_failed``), what to do with
    each outcome (:class:`TilePolicy`: a timeout, a death by signal or a silent
    crash is retried up to ``retries`` more times, on another worker when there
    is one; an error ASP explains moves the tile to the next parameter set of
    ``tools.asp.tile-fallbacks``, and is final after the last).
:func:`decide` (driver)
    The verdict (:class:`TileDecision`), a function of how the tiles ended:
    the pair gets a DEM from its good tiles when they are at least
    ``min_fraction`` of its tiles, with the holes recorded; otherwise it fails
    listing the failed tiles and why.

The driver sends the tasks and keeps the books in
:mod:`~ctxdask.batch.submission` and :mod:`~ctxdask.batch.tilework`.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ctxdask.batch.model import BatchContext, FileInfo, Outcome, StepTask, sha256_file
from ctxdask.batch.work import execute
from ctxdask.settings import BatchSection, Settings, SettingsError
from ctxdask.settings import current as current_settings
from ctxdask.tools.runner import read_tail
from ctxdask.tools.tiling import TRANSIENT, Tile, failure_kind, param_sets, read_tile_list

__all__ = ["PairTiles", "TileDecision", "TilePlan", "TilePlanTask", "TilePolicy", "TileTask", "decide", "plan_tiles",
           "run_tile"]

#: multiple of the map-projected pixel size used as DEM spacing when tools.asp.dem-spacing is unset
#: (ASP's guidance: a DEM about 3x coarser than the images, docs/tools/point2dem.rst post spacing)
DEFAULT_SPACING_FACTOR = 3.0


#: the batch settings as ctxdask.yaml ships them (the defaults of :class:`TilePolicy`)
_SHIPPED = BatchSection()


@dataclasses.dataclass(frozen=True)
class TilePolicy:
    """How tiles are retried and when a pair with failed tiles still yields a DEM.

    Attributes
    ----------
    retries : int
        More attempts after a transient failure (timeout, signal, silent crash);
        setting ``batch.tile-retries``.
    min_fraction : float
        Fraction of a pair's tiles that must succeed for the pair to get a DEM;
        setting ``batch.min-tile-fraction``.
    sets : tuple of str
        Labels of the parameter sets a tile may run with, in order: the
        configured stereo options, then ``tools.asp.tile-fallbacks``
        (:func:`~ctxdask.tools.tiling.param_sets`). An ASP error moves a tile
        to the next set; one set: no fallback.
    """

    retries: int = _SHIPPED.tile_retries
    min_fraction: float = _SHIPPED.min_tile_fraction
    sets: tuple[str, ...] = ("configured",)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_fraction <= 1.0:
            raise SettingsError("batch.min-tile-fraction", f"must be between 0 and 1, not {self.min_fraction}")
        if not self.sets:
            raise ValueError("a tile needs at least one parameter set")

    @classmethod
    def from_settings(cls, settings: Settings, /, *, retries: int | None = None,
                      min_fraction: float | None = None) -> TilePolicy:
        """The policy of ``settings`` (``batch``, ``tools.asp.tile-fallbacks``); overrides (``None`` ignored)
        checked like the yaml."""
        b = BatchSection.from_settings(settings, tile_retries=retries, min_tile_fraction=min_fraction)
        return cls(retries=b.tile_retries, min_fraction=b.min_tile_fraction,
                   sets=tuple(p.label for p in param_sets(settings)))

    @classmethod
    def from_config(cls, **overrides: Any) -> TilePolicy:
        """Read ``batch.tile-retries`` and ``batch.min-tile-fraction`` now."""
        return cls.from_settings(current_settings(), **overrides)


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """A pair's tiles and the grid their DEMs share (made by :func:`plan_tiles` on a worker).

    ``blocked_by`` names the prep step that did not succeed (with its
    ``blocked_status``): then there are no tiles, and the pair no mosaic.
    """

    tiles: tuple[Tile, ...]
    t_srs: str | None
    spacing: float
    #: tile index -> (xmin, ymin, xmax, ymax) in the map projection (for the tile map)
    footprints: Mapping[int, tuple[float, float, float, float]] = dataclasses.field(default_factory=dict)
    #: the worker that planned, and the keys of the inputs it copied there (removed with the pair)
    worker: str = ""
    made_here: tuple[str, ...] = ()
    blocked_by: str | None = None
    blocked_status: str | None = None


@dataclasses.dataclass(frozen=True)
class TilePlanTask:
    """Planning the tiles of one pair, as sent to a worker (:func:`plan_tiles`).

    ``key`` is the dask key (``tile_plan-<pair>-<run token>``); ``t_srs`` and
    ``spacing`` (settings ``tools.asp.t-srs`` and ``dem-spacing``) win over
    what the left map image says.
    """

    key: str
    pair_id: str
    t_srs: str | None = None
    spacing: float | None = None


def plan_tiles(task: TilePlanTask, ctx: BatchContext, parse: Outcome, left_map: Outcome) -> TilePlan:
    """Read the tile list of ``stereo_parse`` and the left map image's grid (runs on a worker).

    A prep step that did not succeed gives an empty plan naming it (``blocked_by``).
    """
    import rasterio

    from ctxdask.batch.staging import localize

    if not (parse.ok and left_map.ok):
        bad = parse if not parse.ok else left_map
        return TilePlan((), None, 0.0, blocked_by=bad.key, blocked_status=bad.status)
    me, made = _worker_address(), []
    tiles = read_tile_list(localize(parse, ctx, me, made).outputs["tiles"])
    with rasterio.open(localize(left_map, ctx, me, made).outputs["map"]) as src:
        crs = src.crs.to_wkt() if src.crs else None
        pixel = abs(src.res[0])
        feet = {}
        for t in tiles:
            (x0, x1), (y0, y1) = zip(src.transform * (t.x, t.y), src.transform * (t.x + t.width, t.y + t.height))
            feet[t.index] = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    return TilePlan(tiles, task.t_srs or crs, float(task.spacing or pixel * DEFAULT_SPACING_FACTOR), feet,
                    worker=me, made_here=tuple(made))


@dataclasses.dataclass(frozen=True)
class TileTask:
    """One attempt at one tile, as sent to a worker.

    ``step.key`` is the tile's deterministic key (also its work dir,
    ``stereo_tile-<L>-<R>-<index>``); ``dask_key`` adds the run and the
    attempt (``...-007-<run token>-try2``).
    """

    pair_id: str
    tile: Tile
    attempt: int
    step: StepTask
    run_tag: str = ""
    #: index of the parameter set ``step.call`` was rendered with (0: the configured stereo options)
    param_set: int = 0

    @property
    def dask_key(self) -> str:
        """The attempt's dask key: the step key, the run tag and the attempt number."""
        return f"{self.step.key}{'-' + self.run_tag if self.run_tag else ''}-try{self.attempt}"


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


def _announce(task: TileTask, topic: str | None, worker: str, started: str) -> None:
    if not (topic and worker):
        return
    try:
        from distributed import get_worker

        get_worker().log_event(topic, {"tile": True, "pair": task.pair_id, "index": task.tile.index,
                                       "attempt": task.attempt, "dask_key": task.dask_key, "worker": worker,
                                       "host": socket.gethostname(), "started": started,
                                       "timeout": task.step.timeout})
    except Exception:  # noqa: BLE001 - the running status is informative only
        pass


def _tile_files(outcome: Outcome) -> tuple[FileInfo, ...]:
    """Every output and the log of a tile, hashed for delivery (relative to its work dir)."""
    result = outcome.result
    paths = list(result.outputs.values())
    if result.log_path and os.path.isfile(result.log_path):
        paths.append(result.log_path)
    return tuple(sorted((FileInfo(p, os.path.relpath(p, result.workdir), os.path.getsize(p), sha256_file(p))
                         for p in paths), key=lambda f: f.relpath))


def run_tile(task: TileTask, ctx: BatchContext, *upstream: Outcome) -> Outcome:
    """Run one attempt at one tile on this worker (see the module docstring).

    Returns
    -------
    Outcome
        ``info`` holds ``pair``, ``index``, ``attempt``, ``bbox``, ``param_set`` and, unless
        done, ``failure_kind`` (:func:`ctxdask.tools.tiling.failure_kind`) and
        ``transient``.
    """
    worker = _worker_address()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
    _announce(task, ctx.topic, worker, started)
    # execute() announces steps for the step table; a tile is tracked in its own table
    outcome = execute(task.step, dataclasses.replace(ctx, topic=None), *upstream, alone=False)
    info = {**outcome.info, "pair": task.pair_id, "index": task.tile.index, "attempt": task.attempt,
            "bbox": task.tile.bbox, "param_set": task.param_set}
    if outcome.ok:
        return dataclasses.replace(outcome, info=info, files=_tile_files(outcome))
    log = read_tail(outcome.log_path, 200) if outcome.log_path else ""
    kind = failure_kind(timed_out=outcome.status == "timeout", cancelled=outcome.status == "interrupted",
                        returncode=outcome.exit_code, log_text=log or outcome.error or "",
                        missing_program=outcome.status == "skipped")
    return dataclasses.replace(outcome, info={**info, "failure_kind": kind, "transient": kind in TRANSIENT})


TileState = Literal["pending", "running", "done", "failed", "timeout"]


@dataclasses.dataclass(frozen=True)
class TileDecision:
    """The verdict on a pair's tiles.

    Attributes
    ----------
    ok : bool
        Enough tiles succeeded for a DEM (``done / total >= min_fraction``).
    total : int
    done : tuple of int
        Indexes of the good tiles.
    holes : dict
        Index -> why that tile has no DEM.
    message : str
        One line for the pair's record (lists the failed tiles when not ok).
    """

    ok: bool
    total: int
    done: tuple[int, ...]
    holes: Mapping[int, str]
    message: str

    @property
    def fraction(self) -> float:
        """The fraction of the pair's tiles that are done (0 without tiles)."""
        return len(self.done) / self.total if self.total else 0.0


class PairTiles:
    """The tiles of one pair on the driver: what to run, what each outcome means, the verdict.

    Parameters
    ----------
    pair_id : str
    tiles : sequence of Tile
    policy : TilePolicy
    previous : mapping, optional
        Index -> row of the ``tiles`` table from earlier runs. Done tiles are
        not run again; ``failed``/``timeout`` ones only with ``retry_failed``.
    retry_failed : bool
    """

    def __init__(self, pair_id: str, tiles: Iterable[Tile], policy: TilePolicy, *,
                 previous: Mapping[int, Mapping[str, Any]] | None = None, retry_failed: bool = False):
        self.pair_id = pair_id
        self.tiles = {t.index: t for t in tiles}
        self.policy = policy
        self.state: dict[int, TileState] = {}
        self.reason: dict[int, str] = {}
        self.tries: dict[int, int] = {i: 0 for i in self.tiles}
        #: the parameter set each tile runs with now, and its transient retries with that set
        self.param: dict[int, int] = {i: 0 for i in self.tiles}
        self.retried: dict[int, int] = {i: 0 for i in self.tiles}
        self.workers: dict[int, list[str]] = {i: [] for i in self.tiles}
        self.outcomes: dict[int, Outcome] = {}
        previous = previous or {}
        for index in self.tiles:
            row = previous.get(index) or {}
            status = row.get("status", "pending")
            if status == "done":
                self.state[index] = "done"
            elif status in ("failed", "timeout") and not retry_failed:
                self.state[index] = status
                self.reason[index] = row.get("error") or status
            else:
                self.state[index] = "pending"

    def to_run(self) -> list[Tile]:
        """Tiles that need an attempt now (pending), in index order."""
        return [self.tiles[i] for i in sorted(self.tiles) if self.state[i] == "pending"]

    def start(self, index: int) -> int:
        """Mark a tile submitted; return its attempt number (1-based, this run)."""
        self.state[index] = "running"
        self.tries[index] += 1
        return self.tries[index]

    def hedge(self, index: int) -> int:
        """A duplicate of the running attempt at ``index`` is sent; return its attempt number."""
        self.tries[index] += 1
        return self.tries[index]

    def avoid(self, index: int) -> list[str]:
        """Workers a retry of ``index`` should avoid (those its earlier attempts ran on)."""
        return list(self.workers[index])

    def record(self, outcome: Outcome) -> Literal["done", "retry", "final"]:
        """Take a tile attempt's outcome; say whether it is done, to be retried, or finally failed.

        A transient failure is retried with the same parameter set up to
        ``policy.retries`` times; an ASP error moves the tile to the next set
        (:attr:`param`), and is final only after the last one.
        """
        index = int(outcome.info["index"])
        if outcome.worker:
            self.workers[index].append(outcome.worker)
        if outcome.ok:
            self.state[index] = "done"
            self.outcomes[index] = outcome
            self.reason.pop(index, None)
            return "done"
        kind = outcome.info.get("failure_kind", "error")
        first = (outcome.error or outcome.status).strip().splitlines()[:1]
        # the runner's message goes on with the log path and tail: the first clause says it
        self.reason[index] = f"{kind}: {first[0].split('; log ')[0] if first else outcome.status}"
        if kind in TRANSIENT and self.retried[index] < self.policy.retries:
            self.retried[index] += 1
            self.state[index] = "pending"
            return "retry"
        if kind == "error" and self.param[index] + 1 < len(self.policy.sets):
            # ASP would say the same again with these options: the next set may correlate it
            self.param[index] += 1
            self.retried[index] = 0
            self.state[index] = "pending"
            return "retry"
        if kind == "error" and len(self.policy.sets) > 1:
            self.reason[index] += f" (every parameter set failed: {'; '.join(self.policy.sets)})"
        self.state[index] = "timeout" if kind == "timeout" else "failed"
        return "final"

    def lost(self, index: int, why: str) -> None:
        """An attempt vanished without an outcome (cancelled, the driver gave up): it ran no more."""
        self.state[index] = "failed"
        self.reason[index] = why

    @property
    def finished(self) -> bool:
        """Whether every tile has ended (done, failed or timed out)."""
        return all(s in ("done", "failed", "timeout") for s in self.state.values())

    def decision(self) -> TileDecision:
        """The verdict (call when :attr:`finished`)."""
        return decide(self.tiles, {i: (s, self.reason.get(i, s)) for i, s in self.state.items()}, self.policy)


def decide(tiles: Mapping[int, Tile], ends: Mapping[int, tuple[str, str]], policy: TilePolicy) -> TileDecision:
    """The verdict on a pair from how its tiles ended.

    Parameters
    ----------
    tiles : mapping
        Index -> Tile, every tile of the pair.
    ends : mapping
        Index -> (state, why): ``done``, ``failed`` or ``timeout`` and, for the
        latter two, the reason recorded (a tile missing here counts as failed).
    policy : TilePolicy
        ``min_fraction``: the share of good tiles a DEM needs.
    """
    state = {i: ends.get(i, ("failed", "no outcome"))[0] for i in tiles}
    done = tuple(sorted(i for i, s in state.items() if s == "done"))
    holes = {i: ends.get(i, (None, "no outcome"))[1] or state[i] for i in sorted(tiles) if state[i] != "done"}
    total = len(tiles)
    ok = total > 0 and len(done) / total >= policy.min_fraction
    if not holes:
        message = f"all {total} tiles done"
    elif ok:
        message = f"{len(done)}/{total} tiles done; DEM with holes at tiles " + ", ".join(str(i) for i in holes)
    else:
        listed = "; ".join(f"tile {i} ({tiles[i].name}): {why}" for i, why in holes.items())
        message = (f"{len(holes)} of {total} tiles failed, fewer than batch.min-tile-fraction "
                   f"{policy.min_fraction:g} succeeded: {listed}")
    return TileDecision(ok, total, done, holes, message)
