"""Provenance of a pair's products: ``provenance.json``, and its summary for the STAC item.

What the USGS CTX DTM archive ships as "processing commands used to generate
data and MOLA points used to control to ground" (planetary-ard,
``content/data/mars/ctxdtms.md``), made complete enough to rerun: every
program that ran, with its full argv, version (``--version`` for ASP, the ISIS
version for ISIS, ctxdask's for native steps), start and end time, exit code,
log and host, read from the manifests the steps leave in their work
directories (:data:`ctxdask.tools.tasks.MANIFEST`) and, for the native pc_align
step, from its record of each pc_align run; the input EDRs with their sha256
and label times; the MOLA file's sha256; ctxdask's version and settings.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import platform
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from ctxdask import __version__
from ctxdask.io.atomic import atomic_path
from ctxdask.settings import as_dict

__all__ = ["build_provenance", "complete_provenance", "edr_record", "file_sha256", "processing_properties",
           "step_records", "write_provenance"]


def file_sha256(path: str | os.PathLike, block: int = 4 * 1024 * 1024) -> str:
    """sha256 hex digest of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def edr_record(path: str | os.PathLike, *, sha256: str | None = None) -> dict[str, Any]:
    """An input EDR: product id, sha256, size, START_TIME / STOP_TIME from its label."""
    from ctxdask.pds3 import plain_value, read_label

    path = os.fspath(path)
    record: dict[str, Any] = {"path": path, "sha256": sha256 or file_sha256(path), "size": os.path.getsize(path)}
    try:
        label = read_label(path)
        for key in ("PRODUCT_ID", "START_TIME", "STOP_TIME", "SPACECRAFT_CLOCK_START_COUNT"):
            value = label.get(key)
            if value is not None:
                value = plain_value(value)
                record[key.lower()] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    except Exception as exc:  # noqa: BLE001 - provenance records what it can; the EDR was validated earlier
        record["label_error"] = str(exc)
    return record


def _versions(programs: Iterable[str], env: Mapping[str, str | None] | None) -> dict[str, str | None]:
    from ctxdask.tools.discovery import find_program, isis_environment

    isis = isis_environment(dict(env or {}) or None)
    out: dict[str, str | None] = {}
    for name in sorted(set(programs)):
        if name in ("python", "ctxdask") or name.startswith("ctxdask."):
            out[name] = f"ctxdask {__version__}"
            continue
        info = find_program(name, dict(env or {}) or None, isis_version=isis.version)
        out[name] = info.version or (f"unknown ({info.problem})" if info.problem else None)
    return out


def step_records(workdirs: Mapping[str, str | os.PathLike]) -> list[dict[str, Any]]:
    """One record per program run, from the step manifests in ``workdirs`` (step key -> dir).

    A native step whose work dir holds ``*-runs.json`` (the pc_align step)
    contributes its nested runs too, with the native step as ``parent``.
    """
    from ctxdask.tools.tasks import MANIFEST

    records: list[dict[str, Any]] = []
    for key, workdir in workdirs.items():
        manifest = pathlib.Path(workdir) / MANIFEST
        if not manifest.is_file():
            continue
        m = json.loads(manifest.read_text(encoding="utf-8"))
        started = m.get("started")
        ended = None
        if started and m.get("duration") is not None:
            ended = (datetime.datetime.fromisoformat(started)
                     + datetime.timedelta(seconds=float(m["duration"]))).isoformat()
        program = m.get("program") or (m.get("argv") or ["?"])[0]
        records.append({"key": m.get("key", key), "step": m.get("step"), "program": program,
                        "argv": m.get("argv"), "started": started, "ended": ended,
                        "exit_code": m.get("returncode"), "log": str(pathlib.Path(workdir) / m.get("log", "")),
                        "host": m.get("host"), "fingerprint": m.get("fingerprint")})
        for runs in sorted(pathlib.Path(workdir).rglob("*-runs.json")):
            for run in json.loads(runs.read_text(encoding="utf-8")):
                records.append({"key": f"{m.get('key', key)}/{run['log']}", "step": m.get("step"),
                                "program": run["program"], "argv": run["argv"], "started": run["started"],
                                "ended": run["ended"], "exit_code": run["exit_code"],
                                "log": str(pathlib.Path(workdir) / run["log"]), "host": m.get("host"),
                                "parent": m.get("key", key),
                                "max_displacement": run.get("max_displacement"),
                                "displacement_warning": run.get("displacement_warning")})
    records.sort(key=lambda r: (r.get("started") or "", r["key"]))
    return records


def build_provenance(
    steps: list[dict[str, Any]],
    *,
    pair_id: str,
    edrs: Mapping[str, dict[str, Any]] | None = None,
    mola: str | os.PathLike | None = None,
    settings: Mapping[str, Any] | None = None,
    env: Mapping[str, str | None] | None = None,
    versions: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The provenance record of one pair.

    Parameters
    ----------
    steps : list of dict
        From :func:`step_records` (or built by hand: program, argv, started,
        ended, exit_code, log, host).
    edrs : mapping, optional
        Product id -> :func:`edr_record`.
    mola : path, optional
        The MOLA shots used for alignment.
    settings : mapping, optional
        ctxdask settings in force (default: :func:`ctxdask.settings.as_dict` of the current ones).
    env : mapping, optional
        Environment of the programs (to find their versions).
    versions : mapping, optional
        Program -> version already known (skips asking).
    """
    programs = {s["program"] for s in steps if s.get("program")}
    known = dict(versions or {})
    found = _versions(programs - set(known), env)
    all_versions = {**found, **known}
    for step in steps:
        step["version"] = all_versions.get(step.get("program"))
    record: dict[str, Any] = {
        "pair_id": pair_id,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "ctxdask": {"version": __version__, "python": platform.python_version(),
                    "settings": json.loads(json.dumps(settings if settings is not None
                                                      else as_dict(), default=str))},
        "steps": steps,
        "programs": all_versions,
        "hosts": sorted({s["host"] for s in steps if s.get("host")} | {socket.gethostname()}),
        "inputs": {"edrs": dict(edrs or {})},
    }
    if mola is not None:
        record["inputs"]["mola"] = {"path": os.fspath(mola), "sha256": file_sha256(mola)}
    return record


def processing_properties(record: Mapping[str, Any]) -> dict[str, Any]:
    """STAC processing-extension fields (processing/v1.2.0) summarising a provenance record."""
    software = {name: version or "unknown" for name, version in record.get("programs", {}).items()}
    software["ctxdask"] = record.get("ctxdask", {}).get("version", __version__)
    lineage = " -> ".join(dict.fromkeys(s["program"] for s in record.get("steps", []) if s.get("program")))
    return {
        "processing:level": "L4",
        "processing:facility": ", ".join(record.get("hosts", [])) or None,
        "processing:lineage": (f"CTX EDRs {', '.join(record.get('inputs', {}).get('edrs', {}))} processed by "
                               f"{lineage or 'ctxdask'}; full argv, versions and times in provenance.json"),
        "processing:software": software,
        "processing:datetime": record.get("created"),
    }


def write_provenance(record: Mapping[str, Any], path: str | os.PathLike) -> pathlib.Path:
    """Write ``provenance.json`` atomically."""
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def complete_provenance(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]],
                        edrs: Mapping[str, str | os.PathLike] | None = None, *,
                        root: str | os.PathLike | None = None,
                        tiles: Iterable[Mapping[str, Any]] | None = None) -> bool:
    """Fill the runs a pair's ``provenance.json`` could not time from the tracking database.

    ``rows`` are step rows (key, started, ended, exit_code, host, log_path); a
    run without times takes them from its row. ``edrs`` (product id -> local
    EDR path) adds missing EDR records. ``tiles`` (tiled stereo: rows of the
    ``tiles`` table) become ``tiles``: each tile's status, attempts and the
    parameter set that made it (``param_set``, ``param_label``; a fallback of
    ``tools.asp.tile-fallbacks`` when not 0). Returns whether the file changed.

    With ``root`` (the batch's output folder), the record stays one that
    travels with its folder: a log is named relative to the file's folder
    when it was delivered under ``root``, else not at all (a path on a
    worker or elsewhere means nothing where the products are read), and an
    EDR by its file name (``file``, instead of its ``path``).
    """
    path = pathlib.Path(path)

    def log_of(row: Mapping[str, Any]) -> str | None:
        log = row.get("log_path")
        if root is None or not log:
            return log
        top, log = os.path.abspath(root), os.path.abspath(log)
        if os.path.commonpath([top, log]) != top:
            return None
        return pathlib.PurePath(os.path.relpath(log, path.parent.absolute())).as_posix()

    if not path.is_file():
        return False
    record = json.loads(path.read_text(encoding="utf-8"))
    by_key = {r["key"]: r for r in rows}
    changed = False
    for step in record.get("steps", []):
        row = by_key.get(step.get("key"))
        if row is None or step.get("started"):
            continue
        step.update(started=row.get("started"), ended=row.get("ended"), exit_code=row.get("exit_code"),
                    host=row.get("host"), log=log_of(row))
        changed = True
    known = record.setdefault("inputs", {}).setdefault("edrs", {})
    for pid, edr in (edrs or {}).items():
        if pid not in known and edr and os.path.isfile(edr):
            known[pid] = edr_record(edr)
            if root is not None:  # an input, not a delivered file: its name, not where the driver read it
                known[pid]["file"] = os.path.basename(known[pid].pop("path"))
            changed = True
    if tiles is not None:
        listed = [{"index": t["tile_index"], "bbox": [t["x"], t["y"], t["width"], t["height"]],
                   "status": t["status"], "attempts": t.get("attempts"), "param_set": t.get("param_set") or 0,
                   "param_label": t.get("param_label"), **({"error": t["error"]} if t.get("error") else {})}
                  for t in tiles]
        if listed and record.get("tiles") != listed:
            record["tiles"] = listed
            changed = True
    if changed:
        record["hosts"] = sorted(set(record.get("hosts", [])) | {s["host"] for s in record["steps"] if s.get("host")})
        write_provenance(record, path)
    return changed
