"""Connecting to a dask cluster, and keeping it consistent and clean.

:func:`connect` finds the scheduler the way users set it up: an explicit
address, a scheduler file written by ``dask scheduler --scheduler-file``, the
``CTXDASK_SCHEDULER`` environment variable, or else a LocalCluster sized to the
machine. It then checks that every worker runs the same versions of the
packages that matter (a worker with another numpy or ctxdask gives different
numbers or fails on unpickling), and installs :class:`StopProgramsOnShutdown`
so no ISIS/ASP program outlives the worker that started it.
"""

from __future__ import annotations

from ctxdask.extras import require

require("batch", "ctxdask.cluster (connect)")

import logging
import os
from typing import Any

import psutil
from distributed import Client
from distributed.diagnostics.plugin import WorkerPlugin

from ctxdask.exceptions import CTXError

__all__ = ["VersionMismatchError", "StopProgramsOnShutdown", "check_versions", "connect"]

logger = logging.getLogger(__name__)

#: packages whose versions must agree between the client and every worker
CHECKED_PACKAGES = ("python", "ctxdask", "dask", "distributed", "numpy", "xarray", "pvl", "cloudpickle", "msgpack")
ENV_VARIABLE = "CTXDASK_SCHEDULER"


class VersionMismatchError(CTXError, RuntimeError):
    """Client and workers run different versions of packages that must match."""


class StopProgramsOnShutdown(WorkerPlugin):
    """Stop every external program still running when a worker shuts down.

    Programs run by :func:`ctxdask.tools.runner.run` lead their own process
    groups (so their whole tree can be killed at a deadline), which also means
    they would survive their worker. At teardown this plugin stops each of
    them (SIGTERM, then SIGKILL after ``grace`` seconds). A worker killed with
    SIGKILL runs no teardown: deployments use systemd's cgroup kill for that
    (``cluster/systemd``).
    """

    name = "ctxdask-stop-programs"

    def __init__(self, grace: float = 5.0):
        self.grace = grace

    def teardown(self, worker) -> None:  # noqa: D102 (WorkerPlugin API)
        """Stop every program still running on the closing ``worker``, with its process tree."""
        from ctxdask.tools.processes import running_trees

        for tree in running_trees():
            logger.warning("worker %s is closing: stopping program pid %d and its tree", worker.name, tree.pid)
            try:
                tree.stop(self.grace)
            finally:
                tree.unregister()


def connect(
    address: str | None = None,
    *,
    scheduler_file: str | os.PathLike | None = None,
    check: bool = True,
    plugins: bool = True,
    **local_kwargs: Any,
) -> Client:
    """Return a dask Client for ctxdask work.

    Parameters
    ----------
    address : str, optional
        Scheduler address (``tcp://host:8786``, ``tls://...``). TLS settings come
        from dask's config (``cluster/tls/make-certs.sh`` writes one).
    scheduler_file : path, optional
        Contact file written by ``dask scheduler --scheduler-file``.
    check : bool
        Check package versions across the cluster (:func:`check_versions`).
    plugins : bool
        Install :class:`StopProgramsOnShutdown` on the workers.
    **local_kwargs
        For the LocalCluster started when no scheduler is named
        (default: one single-threaded worker process per core, ``stereo=1``).

    Returns
    -------
    distributed.Client
        For a LocalCluster the client owns it: ``client.close()`` also stops it.
    """
    address = address or os.environ.get(ENV_VARIABLE) or None
    if address:
        client = Client(address)
    elif scheduler_file:
        client = Client(scheduler_file=os.fspath(scheduler_file))
    else:
        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
        options = dict(n_workers=cores, threads_per_worker=1, processes=True, resources={"stereo": 1})
        options.update(local_kwargs)
        # a Client given cluster options starts the LocalCluster itself and closes it with itself
        client = Client(**options)
    if check:
        check_versions(client)
    if plugins:
        client.register_plugin(StopProgramsOnShutdown())
    return client


def check_versions(client: Client, packages: tuple[str, ...] = CHECKED_PACKAGES) -> dict[str, dict[str, Any]]:
    """Raise :class:`VersionMismatchError` when workers differ from the client.

    Returns the versions seen, ``{package: {"client": v, "scheduler": v, worker: v}}``.
    """
    versions = client.get_versions()
    workers = versions.get("workers") or {}
    # distributed does not know ctxdask: ask each worker (and ourselves) directly
    ctxdask_versions = client.run(_ctxdask_versions) if workers else {}
    for worker, info in workers.items():
        if info is not None:
            info.setdefault("packages", {})["ctxdask"] = ctxdask_versions.get(worker)
    client_info = versions.get("client") or {}
    client_info.setdefault("packages", {})["ctxdask"] = _ctxdask_versions()
    seen = collect_versions(versions, packages)
    problems = version_problems(seen)
    if problems:
        raise VersionMismatchError(
            None,
            "package versions differ across the cluster (install the same environment everywhere):\n  "
            + "\n  ".join(problems),
        )
    return seen


def collect_versions(versions: dict, packages: tuple[str, ...] = CHECKED_PACKAGES) -> dict[str, dict[str, Any]]:
    """``{package: {who: version}}`` from :meth:`distributed.Client.get_versions` output."""
    members = {"client": versions.get("client"), "scheduler": versions.get("scheduler"),
               **(versions.get("workers") or {})}
    seen: dict[str, dict[str, Any]] = {}
    for who, info in members.items():
        if not info:
            continue
        python = str(info.get("host", {}).get("python", "")).split()[:1]
        pkgs = {**info.get("packages", {}), "python": python[0] if python else None}
        for package in packages:
            seen.setdefault(package, {})[who] = pkgs.get(package)
    return seen


def version_problems(seen: dict[str, dict[str, Any]]) -> list[str]:
    """One line per package whose version differs from the client's."""
    problems = []
    for package, by_who in seen.items():
        reference = by_who.get("client")
        for who, value in by_who.items():
            # the scheduler only runs dask itself: array and ctxdask packages need not be there
            if who == "scheduler" and package in ("ctxdask", "numpy", "xarray", "pvl"):
                continue
            if value != reference:
                problems.append(f"{package}: client {reference}, {who} {value}")
    return problems


def _ctxdask_versions() -> str | None:
    try:
        import ctxdask

        return ctxdask.__version__
    except ImportError:
        return None
