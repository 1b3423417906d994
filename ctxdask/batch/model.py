"""What batch tasks are and what they return: the small, picklable types every batch module shares.

:class:`StepTask` (one step of one image or pair) and :class:`ImageTask` (an
image's whole chain) go to the workers with the run's :class:`BatchContext`;
an :class:`Outcome` (with the :class:`FileInfo` of the files to bring home)
comes back. This module imports nothing else of :mod:`ctxdask.batch`, so every
other batch module can import it: what runs on the workers
(:mod:`~ctxdask.batch.work`, :mod:`~ctxdask.batch.steps`,
:mod:`~ctxdask.batch.staging`), delivery, and the driver's modules.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ctxdask.tools.recipe import Recipe, Ref, StagedInput, StepCall
from ctxdask.tools.tasks import RunOptions, StepResult
from ctxdask.tracking.status import Status

__all__ = ["QUALITY_ROLES", "BatchContext", "FileInfo", "ImageTask", "Kind", "Outcome", "Status", "StepTask",
           "image_chain", "sha256_file"]

Kind = Literal["fetch", "validate", "recipe", "quality", "pair_quality"]
#: output roles delivered to the output folder even when their step is not in ``batch.deliver``
QUALITY_ROLES = frozenset({"quality", "thumbnail", "hillshade", "colour_relief", "ortho_thumbnail", "stac",
                           # a pair's delivered products (ctxdask.batch.dem_products)
                           "dem_cog", "dem_areoid_cog", "ortho_cog", "error_cog", "hillshade_cog",
                           "colour_relief_cog", "qa_metrics", "provenance", "residuals", "mola",
                           "pc_align_errors",
                           # the preview pass's verdict (ctxdask.quality.preview)
                           "preview"})
_HASH_BLOCK = 4 * 1024 * 1024

@dataclasses.dataclass(frozen=True)
class FileInfo:
    """A file a step made, to be delivered: where it is on the worker, where it goes."""

    path: str
    relpath: str
    size: int
    sha256: str

@dataclasses.dataclass(frozen=True)
class BatchContext:
    """What all tasks of a run share; each task carries it (one graph pickles it once).

    Attributes
    ----------
    recipe : Recipe
    source : callable
        The EDR source (see :mod:`ctxdask.batch.sources`).
    options : RunOptions
    image_steps : tuple of str
        The recipe image steps the run selected (to make an image again).
    deliver : frozenset of str
        Steps whose outputs (and logs) are hashed for delivery.
    topic : str, optional
        Worker-event topic on which starts are announced.
    runner : callable, optional
        Replaces :func:`~ctxdask.tools.tasks.run_step` for recipe steps.
    chunk_size, window : int
        Chunk size and chunks in flight of pulls between workers.
    timeouts : mapping
        Step name -> seconds (``batch.timeouts``), winning over the recipe's
        for the image steps an :class:`ImageTask` renders on the worker.
    push_topic : str, optional
        Worker-event topic on which a task asks the driver for files only
        the driver holds (:mod:`ctxdask.batch.push`).
    """

    recipe: Recipe
    source: Callable[[str, str], str]
    options: RunOptions = dataclasses.field(default_factory=RunOptions)
    image_steps: tuple[str, ...] = ()
    deliver: frozenset[str] = frozenset()
    topic: str | None = None
    runner: Callable[..., StepResult] | None = None
    chunk_size: int = 8 * 1024 * 1024
    window: int = 4
    timeouts: Mapping[str, float] = dataclasses.field(default_factory=dict)
    push_topic: str | None = None

    def source_for(self, product_id: str) -> Callable[[str, str], str]:
        """The source narrowed to one product when it can be (what a fetch task carries)."""
        narrow = getattr(self.source, "for_product", None)
        return narrow(product_id) if narrow else self.source

def image_chain(recipe: Recipe, product_id: str, summing: int | None, steps) -> list[StepCall]:
    """The recipe image steps named in ``steps``, reading the EDR of ``fetch-<id>``."""
    fetch = Ref(f"fetch-{product_id}", "edr")
    calls = []
    for call in recipe.image_calls(product_id, "-", summing=summing):
        if call.step in steps:
            inputs = {role: StagedInput(i.name, fetch, i.copy) if i.source == "-" else i
                      for role, i in call.inputs.items()}
            calls.append(dataclasses.replace(call, inputs=inputs))
    return calls

@dataclasses.dataclass(frozen=True)
class StepTask:
    """One step of one image or pair, as sent to a worker (small and picklable).

    Attributes
    ----------
    key : str
        Deterministic task key, also the database key (``validate-<id>``).
    step : str
        Step name (``fetch``, ``validate`` or a recipe step).
    kind : {"fetch", "validate", "recipe", "quality", "pair_quality"}
    scope : {"image", "pair"}
    subject : str
        Product id or pair id.
    timeout : float
        Deadline in seconds (recipe steps: enforced by the runner, which kills
        the program; in-process steps: checked by the driver).
    call : StepCall, optional
        The rendered recipe step.
    source : callable, optional
        The EDR source of a fetch step (narrowed to the product).
    params : mapping
        Kind-specific values: ``summing`` of recipe steps (``((left,
        summing), (right, summing))`` for pair steps), so that a lost result
        can be made again; for
        ``pair_quality`` the ``dem``/``ortho`` upstream ``(key, role)``,
        ``datetime``, ``end_datetime``, ``left``, ``right``.
    needs : tuple of str
        Keys of the upstream steps, in order. An upstream dask task may be a
        whole image (:func:`run_image`, a list of Outcomes): only these are
        taken from it.
    reuse : bool
        The database records the step as done (an earlier run finished it):
        its result is located, not made again (see :func:`execute`).
    held_by : tuple of str
        Live workers whose scratch held the step's finished work dir when
        the run started: a reused step not found here is pulled from one.
    """

    key: str
    step: str
    kind: Kind
    scope: Literal["image", "pair"]
    subject: str
    timeout: float
    call: StepCall | None = None
    source: Callable[[str, str], str] | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    needs: tuple[str, ...] = ()
    reuse: bool = False
    held_by: tuple[str, ...] = ()

@dataclasses.dataclass(frozen=True)
class ImageTask:
    """All image steps of one product, run as one dask task (:func:`run_image`).

    The image chain is strictly sequential, so one task instead of one per
    step saves the scheduler and worker round trips (a few ms each), which
    dominate a batch of thousands of images.

    Attributes
    ----------
    key : str
        Deterministic dask key, ``image-<id>``.
    subject : str
        Product id.
    head : tuple of StepTask
        ``fetch`` and, when selected, ``validate`` and ``quality``; the
        calibration steps (``BatchContext.image_steps``) are rendered on the
        worker once validation has reported the summing mode.
    done : frozenset of str
        Keys of the calibration steps the database records as done: they are
        located (reused), not run again. (Head steps carry their own ``reuse``.)
    held : mapping
        Done key -> live workers holding its work dir (``StepTask.held_by``).
    """

    key: str
    subject: str
    head: tuple[StepTask, ...]
    done: frozenset[str] = frozenset()
    held: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a step ended (what travels back to the driver).

    Attributes
    ----------
    key, step, subject : str
    status : Status
        ``done``, ``failed``, ``timeout``, ``skipped`` or ``interrupted``.
    worker : str
        Address of the worker that ran it ('' when nothing ran).
    host : str
    started, ended : str
        ISO 8601 UTC.
    duration : float
    exit_code : int or None
    log_path : str or None
        The log on the worker.
    error : str or None
        What went wrong (message and log tail), or why the step was skipped.
    blocked_by : str or None
        A skipped step: the key of the upstream step that did not succeed.
    result : StepResult or None
        For succeeded fetch and recipe steps, what downstream steps consume.
    info : dict
        Step-specific facts (validation: summing, lines, start_time, warnings;
        quality: the record of :func:`ctxdask.tools.native.quality_record`;
        pair_quality: DEM ``statistics`` and product ``files`` by role;
        recipe steps: ``summing``). ``reused: True`` marks the Outcome of a
        step an earlier run finished, located rather than run: the driver
        leaves its database row as it is.
    files : tuple of FileInfo
        Files to bring home (outputs of a delivered step, and its log).
    made_here : tuple of str
        Upstream keys whose outputs were copied to, or made again on, this
        worker (its scratch holds them until they are cleaned).
    at_driver : bool
        ``result`` names delivered files in the driver's output folder (a
        tile or step delivered home, by this run or an earlier one), and
        ``files`` their sizes and checksums: no worker can read them where
        they are; they are pushed to the worker that needs them
        (:mod:`ctxdask.batch.push`).
    """

    key: str
    step: str
    subject: str
    status: Status
    worker: str = ""
    host: str = ""
    started: str = ""
    ended: str = ""
    duration: float = 0.0
    exit_code: int | None = None
    log_path: str | None = None
    error: str | None = None
    blocked_by: str | None = None
    result: StepResult | None = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    files: tuple[FileInfo, ...] = ()
    made_here: tuple[str, ...] = ()
    at_driver: bool = False

    @property
    def ok(self) -> bool:
        """Whether the step ended ``done``."""
        return self.status == "done"

    @property
    def reused(self) -> bool:
        """A step an earlier run finished, whose result was located rather than made again."""
        return bool(self.info.get("reused"))

def sha256_file(path: str) -> str:
    """Hex sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()
