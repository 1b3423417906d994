"""The ``pair_quality`` step: a pair's delivered products made from its upstream step results.

The driver names, in the task's params, which upstream output is which
product (``inputs``: role -> ``(step key, output role)``) and the argv of
every step of the pair and its images (``steps``: key -> step, program,
argv). This module finds them among the localized upstream results and calls
:func:`ctxdask.quality.pair.pair_products` in the step's work dir, so that
delivery lays the files out as they are here: ``pairs/<pair>/<files>``, the
STAC item's relative hrefs resolving beside it.

Provenance: runs whose manifests this worker can read (the upstream results)
carry times, exit codes, hosts and logs; the others carry their argv, and the
driver completes them from its tracking database once the pair is through
(:func:`ctxdask.quality.provenance.complete_provenance`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

from ctxdask.tools.recipe import StepCall
from ctxdask.tools.recipe.bundle import RESIDUAL_FILES
from ctxdask.tools.recipe.bundle import STEP as BUNDLE_ADJUST
from ctxdask.tools.recipe.preview import PREVIEW_STEPS
from ctxdask.tools.tasks import StepResult

__all__ = ["CATALOG_KEY", "OUTPUT_ROLES", "finish_pair", "make_pair_products", "pair_product_inputs",
           "write_batch_catalog"]

logger = logging.getLogger(__name__)

#: pair_products file -> output role of the pair_quality step (the PNG roles keep their old names)
OUTPUT_ROLES = {
    "thumbnail": "hillshade", "relief_thumbnail": "colour_relief", "ortho_thumbnail": "ortho_thumbnail",
    "stac": "stac", "dem": "dem_cog", "dem_areoid": "dem_areoid_cog", "ortho": "ortho_cog", "error": "error_cog",
    "hillshade": "hillshade_cog", "colour_relief": "colour_relief_cog", "qa_metrics": "qa_metrics",
    "provenance": "provenance", "residuals": "residuals", "mola": "mola", "pc_align_errors": "pc_align_errors",
}
#: product -> pair_products keyword
_KEYWORDS = {"dem": "dem", "ortho": "ortho", "error": "error", "dem_areoid": "dem_areoid",
             "dem_before": "dem_before", "mola": "mola", "pc_align_errors": "pc_align_errors"}
#: products named ba_<role>: bundle_adjust's residual files (ctxdask.quality.bundle)
_BA = "ba_"


def _inputs(params: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    inputs = dict(params.get("inputs") or {})
    for role in ("dem", "ortho"):  # the older params layout
        if params.get(role) and role not in inputs:
            inputs[role] = params[role]
    return {k: tuple(v) for k, v in inputs.items() if v}


def _delivered_as(params: Mapping[str, Any], by_key: Mapping[str, StepResult]) -> dict[str, str]:
    """Worker path -> path relative to the pair folder, of the upstream files the batch delivers.

    A step named in ``batch.deliver`` (``params["deliver"]``) has its outputs
    and log delivered to ``<out>/pairs/<pair>/`` (an image step's to
    ``<out>/images/<id>/``) under their paths in its work dir
    (:func:`ctxdask.batch.work._files`).
    """
    deliver = set(params.get("deliver") or ())
    images = {params.get("left"), params.get("right")} - {None}
    out: dict[str, str] = {}
    for key, result in by_key.items():
        if result.step not in deliver:
            continue
        image = next((pid for pid in images if key == f"{result.step}-{pid}"), None)
        folder = f"../../images/{image}/" if image else ""
        for path in [*result.outputs.values(), result.log_path]:
            if path:
                rel = os.path.relpath(path, result.workdir)
                if not rel.startswith(".."):
                    out[os.path.abspath(path)] = pathlib.PurePath(folder + rel).as_posix()
    return out


def _step_records(params: Mapping[str, Any], by_key: Mapping[str, StepResult]) -> list[dict[str, Any]]:
    """The runs of the pair's steps; logs named relative to the pair folder when delivered, else None.

    A log in a worker's scratch means nothing where the products are read;
    the tracking database keeps where it was (``steps.log_path``).
    """
    from ctxdask.quality.provenance import step_records

    local = {key: r.workdir for key, r in by_key.items() if os.path.isdir(r.workdir)}
    delivered = _delivered_as(params, by_key)
    records = [dict(r, log=delivered.get(os.path.abspath(r["log"])) if r.get("log") else None)
               for r in step_records(local)]
    seen = {r["key"] for r in records}
    for key, step in (params.get("steps") or {}).items():
        if key not in seen:
            records.append({"key": key, "step": step.get("step"), "program": step.get("program"),
                            "argv": list(step.get("argv") or []), "started": None, "ended": None,
                            "exit_code": None, "log": None, "host": None})
    return records


def make_pair_products(workdir: str, pair_id: str, params: Mapping[str, Any],
                       by_key: Mapping[str, StepResult]) -> tuple[dict[str, str], dict[str, Any]]:
    """Make the pair's products in ``workdir``; return ``(outputs by role, info for the driver)``."""
    from ctxdask.quality.bundle import bundle_adjust_summary
    from ctxdask.quality.pair import pair_products
    from ctxdask.quality.provenance import build_provenance

    paths: dict[str, str] = {}
    for product, (key, role) in _inputs(params).items():
        result = by_key.get(key)
        if result is not None and role in result.outputs:
            paths[product] = result.outputs[role]
    if "dem" not in paths:
        raise ValueError(f"pair_quality-{pair_id}: no DEM among the upstream results")
    runs: list[dict[str, Any]] = []
    if "runs" in paths:
        with open(paths["runs"], encoding="utf-8") as f:
            runs = json.load(f)
        folder = os.path.dirname(os.path.dirname(paths["runs"]))  # the pc_align step's work dir
        runs = [dict(r, log=os.path.join(folder, r["log"])) for r in runs
                if os.path.isfile(os.path.join(folder, r["log"]))]
    provenance = build_provenance(_step_records(params, by_key), pair_id=pair_id, mola=paths.get("mola"),
                                  edrs=params.get("edrs") or {})
    residuals = {p.removeprefix(_BA): path for p, path in paths.items() if p.startswith(_BA)}
    adjustment = bundle_adjust_summary(residuals) if residuals else None
    # this worker thread is the step: its own two threads compute, never the cluster; passed to each
    # compute, since a process-wide dask.config.set would change the scheduler of other tasks on this worker
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=f"pair_quality-{pair_id}") as pool:
        products = pair_products(
            workdir, datetime=params["datetime"], end_datetime=params.get("end_datetime"), pair_id=pair_id,
            left_id=params.get("left"), right_id=params.get("right"), pc_align_runs=runs, provenance=provenance,
            bundle_adjust=adjustment, scheduler=pool, **{kw: paths[p] for p, kw in _KEYWORDS.items() if p in paths},
        )
    outputs = {OUTPUT_ROLES[name]: str(path) for name, path in products["files"].items() if name in OUTPUT_ROLES}
    # the colour relief's stretch rides with the statistics: the pages draw its colour bar from it
    statistics = {**products["statistics"].to_dict(), "relief_limits": products.get("relief_limits")}
    info = {"statistics": statistics, "qa": products["qa"].to_dict(),
            "files": {role: os.path.relpath(path, workdir) for role, path in outputs.items()}}
    return outputs, info


def pair_product_inputs(calls: Iterable[StepCall]) -> dict[str, tuple[str, str]]:
    """Which step output is which product, from a pair's rendered calls (the driver's side).

    The final DEM is the last ``point2dem``-made DEM (aligned when pc_align
    ran; in tiled stereo the ``dem_mosaic`` of the tiles), its orthoimage and
    error come with it (tiled: their own mosaics); ``dem_geoid`` gives the
    areoid DEM; with pc_align, the first point2dem's DEM is the one before
    alignment, and pc_align's runs, end errors and MOLA copy are kept; with
    bundle adjustment, its residual files (``ba_<role>``).
    """
    calls = [c for c in calls if c.step not in PREVIEW_STEPS]  # the preview's DEM is no product of the pair
    # tiled stereo (ctxdask.tools.tiling): dem_mosaic makes the DEM, orthoimage and error, one each
    # point2dem_aligned is native (ctxdask.tools.align:grid_aligned runs point2dem on the DEM's grid)
    dems = [c for c in calls if (c.program in ("point2dem", "dem_mosaic") or c.step == "point2dem_aligned")
            and "dem" in c.outputs]
    if not dems:
        return {}
    final = dems[-1]
    inputs = {"dem": (final.key, "dem")}
    for role in ("ortho", "error"):
        maker = final if role in final.outputs else next(
            (c for c in calls if c.program == "dem_mosaic" and role in c.outputs), None)
        if maker is not None:
            inputs[role] = (maker.key, role)
    geoid = next((c for c in calls if c.step == "dem_geoid"), None)
    if geoid is not None:
        inputs["dem_areoid"] = (geoid.key, "dem")
    align = next((c for c in calls if c.step == "pc_align"), None)
    if align is not None:
        if len(dems) > 1:
            inputs["dem_before"] = (dems[0].key, "dem")
        for product, role in (("runs", "runs"), ("pc_align_errors", "end_errors"), ("mola", "points")):
            if role in align.outputs:
                inputs[product] = (align.key, role)
    adjust = next((c for c in calls if c.step == BUNDLE_ADJUST), None)
    for role in RESIDUAL_FILES if adjust is not None else ():
        inputs[f"{_BA}{role}"] = (adjust.key, role)
    return inputs


def _rerecord(db, path: pathlib.Path, key: str, subject: str) -> None:
    """Record a delivered file again after the driver changed it (size, sha256)."""
    from ctxdask.quality.provenance import file_sha256

    db.record_product(str(path), key, subject, path.stat().st_size, file_sha256(path))


def finish_pair(db, out_dir: pathlib.Path, pair_id: str, images: Iterable[str], keys: Iterable[str],
                source: Any = None) -> None:
    """On the driver, once a pair is through: complete its ``provenance.json`` from the database.

    Runs the pair_quality worker could not see get their times, exit codes,
    hosts and logs from the ``steps`` rows; EDR records are added when the
    driver can read the EDR folder (a local ``--edr-dir`` of plain files).
    """
    from ctxdask.batch.sources import LocalEDRSource
    from ctxdask.quality.provenance import complete_provenance

    path = out_dir / "provenance.json"
    if not path.is_file():
        return
    rows = db.step_rows(keys)
    edrs = {}
    if isinstance(source, LocalEDRSource):
        for pid in images:
            with contextlib.suppress(Exception):
                found = source.find(pid)
                if found.lower().endswith(".img"):
                    edrs[pid] = found
    try:
        # tiled stereo: which parameter set made each tile (tools.asp.tile-fallbacks), and the holes
        if complete_provenance(path, rows, edrs, root=out_dir.parent.parent, tiles=db.tiles(pair_id)):
            _rerecord(db, path, f"pair_quality-{pair_id}", pair_id)
    except (OSError, ValueError) as exc:  # the products stand without it
        logger.warning("%s: could not complete provenance.json: %s", pair_id, exc)


#: the key under which the batch's catalog files are recorded in the ``products`` table
CATALOG_KEY = "catalog"


def write_batch_catalog(db, out: pathlib.Path) -> None:
    """The batch's STAC catalog over every pair item in ``out`` (``ctxdask stac`` does the same).

    Its files are recorded like every delivered file (key :data:`CATALOG_KEY`),
    so that the database lists everything in the output folder.
    """
    from ctxdask.quality.stac import rebuild_catalog

    if not any(out.glob("pairs/*/*.stac.json")):
        return
    try:
        rebuild_catalog(out)
    except Exception as exc:  # noqa: BLE001 - the products stand without a catalog; `ctxdask stac` redoes it
        logger.warning("could not write the STAC catalog of %s: %s", out, exc)
        return
    with db.transaction():  # the items now link to their collection: new sizes and checksums
        for item in out.glob("pairs/*/*.stac.json"):
            _rerecord(db, item, f"pair_quality-{item.parent.name}", item.parent.name)
        for name in ("catalog.json", "collection.json"):
            if (out / name).is_file():
                _rerecord(db, out / name, CATALOG_KEY, "")
