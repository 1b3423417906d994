"""Scratch space of a batch: work dirs of finished steps, and what dead runs left behind.

On the workers, :func:`remove_workdirs` deletes the work dirs of released
steps and :func:`clean_dead_scratch` the half-made ones of processes that
died. On the driver, :func:`claim_local_scratch` names (and marks as this
driver's) the scratch folder of a LocalCluster batch, and
:func:`clean_after_dead_runs` removes, at the start of a run, what killed runs
left: partial deliveries, half-made work dirs, and local scratch folders of
dead drivers whose output folder is gone. Folders are told apart by owner
markers (:mod:`ctxdask.tools.owner`: host, pid, process start time), so
nothing of a live run, on a machine several batches share, is ever removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pathlib
import shutil
import tempfile

from ctxdask.batch.delivery import remove_partials
from ctxdask.tools.owner import MARKER, owner_alive, read_owner, write_owner
from ctxdask.tools.tasks import work_root

__all__ = ["claim_local_scratch", "clean_after_dead_runs", "clean_dead_scratch", "failed_attempts", "find_copies",
           "find_failed_attempts", "find_holders", "held_copies", "held_results", "release_local_scratch",
           "remove_dead_local_scratch", "remove_failed_attempts", "remove_strays", "remove_workdirs"]

logger = logging.getLogger(__name__)

#: work-dir name prefixes of the in-process steps (no manifest)
_IN_PROCESS = ("fetch-", "quality-", "pair_quality-")

#: work-dir names of tile attempts (``stereo_tile-<pair>-<index>``, tools.tiling)
_TILE_PREFIX = "stereo_tile-"


def clean_dead_scratch(work_dir: str | None = None) -> list[str]:
    """Remove the step work dirs that processes now dead left half-made in this worker's work root.

    A step runs in ``<key>.tmp-<random>`` (and replaces an old result through
    ``<key>.old-<random>``); a worker or driver killed with SIGKILL leaves them
    behind. Each carries its owner's marker (:mod:`ctxdask.tools.owner`):
    only folders whose owner is a dead process on this host are removed, so
    another live batch sharing the scratch folder keeps everything it is
    making. Finished work dirs (manifests) are kept: a resuming batch reuses
    them. Returns the removed paths.
    """
    root = work_root(work_dir)
    removed = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if not (".tmp-" in name or ".old-" in name) or not os.path.isdir(path) or os.path.islink(path):
            continue
        owner = read_owner(path)
        if owner is not None and owner_alive(owner) is False:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed

def remove_workdirs(paths: list[str], work_dir: str | None = None) -> int:
    """Delete step work dirs (and their ``.failed`` twins) on this worker; return how many.

    Relative paths are taken from this worker's work root (``work_dir``, the
    ``tools.work-dir`` setting, else its local directory). Only folders
    holding a step manifest, a ``.failed`` suffix, a fetch stamp, named after
    an in-process step or holding pulled copies are touched, so a wrong path
    can never remove anything else.
    """
    removed = 0
    root = None
    for path in paths:
        if not os.path.isabs(path):
            root = root or work_root(work_dir)
            path = os.path.join(root, path)
        for candidate in (path, f"{path}.failed"):
            if not os.path.isdir(candidate) or os.path.islink(candidate):
                continue
            names = set(os.listdir(candidate))
            name = os.path.basename(candidate)
            if (candidate.endswith(".failed") or "ctxdask-step.json" in names
                    or any(n.endswith(".source.json") for n in names) or name.startswith(_IN_PROCESS)
                    or os.path.basename(os.path.dirname(candidate)) == "staged"):
                shutil.rmtree(candidate, ignore_errors=True)
                removed += 1
                if os.path.basename(os.path.dirname(candidate)) == "staged":
                    with contextlib.suppress(OSError):  # the last copy gone: the folder too
                        os.rmdir(os.path.dirname(candidate))
    return removed


def held_results(work_dir: str | None = None, keys=None) -> list[str]:
    """Keys of the finished step work dirs in this worker's work root (manifests, in-process steps).

    ``keys``: only those are looked for (not the whole work root).
    """
    from ctxdask.tools.tasks import MANIFEST

    root = work_root(work_dir)
    return sorted(name for name in (os.listdir(root) if keys is None else keys)
                  if os.path.isfile(os.path.join(root, name, MANIFEST))
                  or (name.startswith(_IN_PROCESS) and "." not in name and os.path.isdir(os.path.join(root, name))))


def held_copies(work_dir: str | None = None) -> list[str]:
    """Keys whose outputs this worker holds as pulled copies (``staged/<key>``), e.g. left by a pair
    an earlier run did not finish."""
    folder = os.path.join(work_root(work_dir), "staged")
    return sorted(name for name in os.listdir(folder)
                  if os.path.isdir(os.path.join(folder, name))) if os.path.isdir(folder) else []


def find_copies(client, work_dir: str | None, keys) -> dict[str, set[str]]:
    """Key -> the live workers holding pulled copies of its outputs, for ``keys`` (removed with the key)."""
    keys = set(keys)
    try:
        held = client.run(held_copies, work_dir)
    except Exception as exc:  # noqa: BLE001 - without the answer, such copies stay until a later run
        logger.warning("could not ask the workers which copies they hold: %s", exc)
        return {}
    found: dict[str, set[str]] = {}
    for worker, names in held.items():
        for name in names:
            if name in keys:
                found.setdefault(name, set()).add(worker)
    return found


def failed_attempts(work_dir: str | None = None) -> list[str]:
    """Keys whose failed attempt's work dir (``<key>.failed``, its log) is in this worker's work root,
    and of the finished tile work dirs there (a driver killed between a tile's delivery and its
    clean-up leaves one; once the tile is done its outputs are home)."""
    root = work_root(work_dir)
    names = [name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name))]
    return sorted({name[:-len(".failed")] for name in names if name.endswith(".failed")}
                  | {name for name in names if name.startswith(_TILE_PREFIX) and "." not in name})


def find_failed_attempts(client, work_dir: str | None) -> dict[str, set[str]]:
    """Key -> the live workers keeping a failed attempt of it (an earlier run's: killed, timed out...)."""
    try:
        held = client.run(failed_attempts, work_dir)
    except Exception as exc:  # noqa: BLE001 - such logs then stay until a later run finds them
        logger.warning("could not ask the workers which failed attempts they keep: %s", exc)
        return {}
    found: dict[str, set[str]] = {}
    for worker, keys in held.items():
        for key in keys:
            found.setdefault(key, set()).add(worker)
    return found


def remove_failed_attempts(client, found: dict[str, set[str]], done, work_dir: str | None) -> list:
    """Remove the failed attempts ``found`` kept of keys that are ``done`` now; return the clean-up futures.

    A failed attempt's log stays on its worker while its step is not done (to
    read why); once a later attempt succeeded it only takes space.
    """
    by_worker: dict[str, list[str]] = {}
    for key in set(found) & set(done):
        for worker in found[key]:
            # a done tile's work dir goes too (remove_workdirs takes its .failed twin with it); a done
            # step's stays, for reuse
            by_worker.setdefault(worker, []).append(key if key.startswith(_TILE_PREFIX) else f"{key}.failed")
    return [client.submit(remove_workdirs, sorted(paths), work_dir, workers=[worker], allow_other_workers=False,
                          pure=False, priority=-10) for worker, paths in by_worker.items()]


def find_holders(client, work_dir: str | None, keys) -> dict[str, tuple[str, ...]]:
    """Key -> the live workers whose scratch holds its finished work dir, for ``keys`` (asked once)."""
    keys = set(keys)
    found: dict[str, list[str]] = {}
    try:
        held = client.run(held_results, work_dir)
    except Exception as exc:  # noqa: BLE001 - without the answer, steps are found where they land
        logger.warning("could not ask the workers which finished steps they hold: %s", exc)
        return {}
    for worker, names in held.items():
        for name in names:
            if name in keys:
                found.setdefault(name, []).append(worker)
    return {key: tuple(workers) for key, workers in found.items()}


def remove_strays(client, work_dir: str | None, keys) -> list:
    """Remove what live workers still hold of ``keys``, whose scratch the run cleaned; return the futures.

    When a worker dies, dask makes the results it held again for the
    futures the driver still holds; the driver has its Outcome already and
    never hears of the new one, nor of the work dir or copies it left on
    another worker. Asked once at the end of a run, after its own clean-ups.
    """
    by_worker: dict[str, list[str]] = {}
    for key, workers in find_copies(client, work_dir, keys).items():
        for worker in workers:
            by_worker.setdefault(worker, []).append(os.path.join("staged", key))
    for key, workers in find_holders(client, work_dir, keys).items():
        for worker in workers:
            by_worker.setdefault(worker, []).append(key)
    return [client.submit(remove_workdirs, sorted(paths), work_dir, workers=[worker], allow_other_workers=False,
                          pure=False, priority=-10) for worker, paths in by_worker.items()]


_LOCAL_SCRATCH = "ctxdask-scratch-"


def claim_local_scratch(out: pathlib.Path) -> str:
    """The scratch folder of a LocalCluster batch writing to ``out``, marked as this driver's.

    Named after the output folder, so a batch resumed after its driver died
    finds the finished work dirs of the dead run (and reuses them). The owner
    marker tells later runs whether its driver is alive
    (:func:`remove_dead_local_scratch`).
    """
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"{_LOCAL_SCRATCH}{digest}")
    os.makedirs(path, exist_ok=True)
    write_owner(path, out=str(out))
    return path


def release_local_scratch(path: str) -> None:
    """Remove a claimed local scratch folder when nothing but its marker is left in it."""
    with contextlib.suppress(OSError):  # only when empty: everything was delivered and cleaned
        if os.listdir(path) == [MARKER]:
            os.remove(os.path.join(path, MARKER))
        os.rmdir(path)


def remove_dead_local_scratch() -> list[str]:
    """Remove the local scratch folders of dead drivers whose output folder is gone; return them.

    A dead driver's scratch is kept while its output folder exists: a rerun on
    that folder adopts it and reuses the finished work in it. Folders of live
    drivers (another batch on this machine), of other hosts and without a
    marker are never touched.
    """
    removed = []
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if not name.startswith(_LOCAL_SCRATCH) or os.path.islink(path) or not os.path.isdir(path):
            continue
        owner = read_owner(path)
        if owner is None or owner_alive(owner) is not False or os.path.isdir(owner.get("out") or ""):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def clean_after_dead_runs(client, out: pathlib.Path, work_dir: str | None) -> None:
    """What killed runs left: partial deliveries in ``out``, half-made work dirs on every worker.

    Call while holding the database lock (no other driver writes ``out``).
    """
    for path in remove_partials(out):
        logger.info("removed %s, left by a delivery that was cut short", path)
    for path in remove_dead_local_scratch():
        logger.info("removed %s, the scratch of a dead batch whose output folder is gone", path)
    try:
        for worker, paths in client.run(clean_dead_scratch, work_dir).items():
            for path in paths:
                logger.info("removed %s on %s, left by a process that died", path, worker)
    except Exception as exc:  # noqa: BLE001 - clean-up only: the batch goes on
        logger.warning("could not clean the workers' scratch of dead runs: %s", exc)
