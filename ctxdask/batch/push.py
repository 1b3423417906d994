"""Files only the driver holds, pushed to the worker that needs them over the dask connection.

A tile delivered home (its work dir removed since), or delivered by an earlier
run whose workers are gone, exists only in the driver's output folder, which
no worker can read (it may be another machine). The driver is a dask client,
not a worker, so a worker cannot pull from it; instead it asks:

1. the task that needs the files (:func:`receive`, on the worker, seceded from
   its thread pool) announces a request on the run's push topic (a worker
   event): the driver paths, their size and sha256 as delivery recorded them,
   and a temporary name in its own scratch for each;
2. the driver (:class:`Pusher`, a thread pool beside the driver's loop) checks
   that each path is a delivered file of its output folder, reads it in chunks
   and sends each chunk to that worker (``Client.scatter`` to that worker
   only, then a :func:`write_range` task pinned to it), at most ``window``
   chunks in flight, so the memory both ends hold is ``chunk x window``; it
   reports progress and the end in a :class:`distributed.Variable` named after
   the request;
3. the worker checks the sha256 of what arrived, renames it into place under
   ``<work root>/staged/<key>/`` and stamps it (:mod:`~ctxdask.batch.staging`),
   so a worker receives a given file once however many steps read it.

A worker never opens a driver path: it only learns the relative layout.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import pathlib
import time
import uuid
from typing import Any

from ctxdask.batch.model import BatchContext, Outcome, sha256_file
from ctxdask.exceptions import CTXError
from ctxdask.tools.tasks import StepResult

__all__ = ["PushError", "Pusher", "receive", "write_range"]

logger = logging.getLogger(__name__)

#: seconds a waiting worker allows the driver besides the transfer itself
STALL = 300.0


class PushError(CTXError, RuntimeError):
    """The driver could not send a file it holds to a worker."""


def write_range(path: str, offset: int, data: bytes) -> int:
    """Write ``data`` at ``offset`` of ``path`` on this worker (one pushed chunk); return its length."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
    return len(data)


def receive(outcome: Outcome, ctx: BatchContext, folder: str, fresh, stamp, lock) -> StepResult:
    """Copies in ``folder`` of the outputs of a step whose files only the driver holds (runs on a worker).

    ``fresh(target, fingerprint)`` says whether a copy is already there;
    ``stamp(target, fingerprint, size, sha256)`` marks one as complete;
    ``lock`` (a context manager) keeps other threads of this worker off
    ``folder`` meanwhile. The task secedes from the worker's thread pool
    before it waits for anything: the driver's write tasks need a thread here.

    Raises
    ------
    PushError
        The run has no push topic, a file is not described, the driver
        refused or did not answer, or the bytes that arrived are not the file.
    """
    from distributed import worker_client

    result = outcome.result
    if not ctx.push_topic:
        raise PushError(None, f"{outcome.key}: its files are only in the driver's output folder and this run "
                              "has no driver to send them")
    infos = {f.path: f for f in outcome.files}
    outputs, wanted = {}, []
    for role, path in result.outputs.items():
        info = infos.get(path)
        if info is None:
            raise PushError(path, f"{outcome.key}: no size and checksum recorded for its {role} output")
        target = os.path.join(folder, os.path.normpath(info.relpath))
        if not os.path.abspath(target).startswith(os.path.abspath(folder) + os.sep):
            raise PushError(path, f"{outcome.key}: {info.relpath!r} leaves the staging folder")
        outputs[role] = target
        wanted.append((info, target))
    with worker_client() as client, lock:
        todo = [(info, target) for info, target in wanted if not fresh(target, result.fingerprint)]
        if todo:
            tag = uuid.uuid4().hex[:12]
            todo = [(info, target, f"{target}.push-{tag}") for info, target in todo]
            try:
                _request(client, todo, ctx, outcome.key)
                for info, target, tmp in todo:
                    got = sha256_file(tmp) if os.path.exists(tmp) else None
                    if got != info.sha256:
                        raise PushError(target, f"{outcome.key}: the pushed copy of {info.relpath} has sha256 "
                                                f"{got}, the driver's file {info.sha256}")
                    os.replace(tmp, target)
                    stamp(target, result.fingerprint, info.size, info.sha256)
            finally:
                for _, _, tmp in todo:
                    with contextlib.suppress(OSError):
                        os.remove(tmp)
    return dataclasses.replace(result, workdir=folder, outputs=outputs, log_path="")


def _request(client, todo: list, ctx: BatchContext, key: str) -> None:
    """Ask the driver for ``todo`` [(FileInfo, target, tmp)]; wait until it has written the tmps."""
    from distributed import Event, Variable, get_worker

    rid = f"ctxdask-push-{uuid.uuid4().hex}"
    for _, target, _ in todo:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    worker = get_worker()
    files = [(info.path, tmp, info.size) for info, _, tmp in todo]
    # the driver may be busy with other requests: allow STALL seconds plus 1 s per MB
    deadline = time.monotonic() + STALL + sum(info.size for info, _, _ in todo) / 1e6
    finished = Event(rid, client=client)
    worker.log_event(ctx.push_topic, {"request": rid, "worker": worker.address, "key": key, "files": files})
    while not finished.wait(timeout=10.0):
        if time.monotonic() > deadline:
            raise PushError(None, f"{key}: the driver did not send its files in time")
    variable = Variable(rid, client=client)
    state = variable.get(timeout=60)
    with contextlib.suppress(Exception):
        variable.delete()
    with contextlib.suppress(Exception):
        finished.clear()
    if state.get("state") != "done":
        raise PushError(None, f"{key}: the driver could not send its files: {state.get('error')}")


class Pusher:
    """The driver's side: serves the workers' requests for delivered files (see the module docstring).

    Parameters
    ----------
    client : distributed.Client
    out : path
        The output folder; only files under its delivered folders are sent.
    chunk_size, window : int
        Bytes per chunk and chunks in flight per file.
    threads : int
        Requests served at once.
    """

    def __init__(self, client, out: str | os.PathLike, *, chunk_size: int = 8 * 1024 * 1024, window: int = 4,
                 threads: int = 2):
        from ctxdask.batch.delivery import DELIVERED_FOLDERS

        self.client = client
        self.roots = [pathlib.Path(out).resolve() / f for f in DELIVERED_FOLDERS]
        self.chunk_size = int(chunk_size)
        self.window = max(1, int(window))
        self.topic = f"ctxdask-push-{uuid.uuid4().hex[:12]}"
        self._pool = concurrent.futures.ThreadPoolExecutor(max(1, threads), thread_name_prefix="ctxdask-push")
        #: bytes sent, for the benchmark and the tests
        self.sent = 0

    def start(self) -> None:
        """Start answering the workers' push requests (subscribe to the topic)."""
        self.client.subscribe_topic(self.topic, self._on_request)

    def stop(self) -> None:
        """Stop answering push requests and cancel the pushes not yet started."""
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self.topic)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _on_request(self, event) -> None:
        # called on the client's event loop: never block it
        msg = event[1] if isinstance(event, tuple) else event
        self._pool.submit(self._serve, msg)

    def _serve(self, msg: dict[str, Any]) -> None:
        from distributed import Event, Variable

        variable = Variable(msg["request"], client=self.client)
        try:
            for path, dest, size in msg["files"]:
                self._push(self._delivered(path, size), dest, msg["worker"])
            variable.set({"state": "done"})
        except Exception as exc:  # noqa: BLE001 - told to the waiting worker, which fails its step
            logger.warning("could not send %s to %s: %s", msg.get("key"), msg.get("worker"), exc)
            with contextlib.suppress(Exception):
                variable.set({"state": "error", "error": f"{type(exc).__name__}: {exc}"})
        with contextlib.suppress(Exception):
            Event(msg["request"], client=self.client).set()

    def _delivered(self, path: str, size: int) -> pathlib.Path:
        """``path`` when it is a delivered file of the output folder of the size recorded, else PushError."""
        real = pathlib.Path(path).resolve()
        if not any(real.is_relative_to(root) for root in self.roots):
            raise PushError(path, "not a delivered file of this batch's output folder")
        if not real.is_file() or real.stat().st_size != size:
            raise PushError(path, f"missing or not of the {size} bytes delivery recorded")
        return real

    def _push(self, path: pathlib.Path, dest: str, worker: str) -> int:
        """Send one file in chunks to ``dest`` on ``worker`` (a temporary name the worker renames)."""
        pin = dict(workers=[worker], allow_other_workers=False, pure=False, priority=100)
        inflight: collections.deque = collections.deque()
        sent = 0

        def settle(limit: int) -> None:
            nonlocal sent
            while len(inflight) > limit:
                data, future = inflight.popleft()
                sent += future.result(timeout=STALL)
                data.release()
                future.release()

        with open(path, "rb") as f:
            offset = 0
            while chunk := f.read(self.chunk_size):
                (data,) = self.client.scatter([chunk], workers=[worker], hash=False, timeout=STALL)
                inflight.append((data, self.client.submit(write_range, dest, offset, data, **pin)))
                offset += len(chunk)
                del chunk
                settle(self.window - 1)
            if offset == 0:  # an empty file still needs its temporary
                (data,) = self.client.scatter([b""], workers=[worker], hash=False, timeout=STALL)
                inflight.append((data, self.client.submit(write_range, dest, 0, data, **pin)))
            settle(0)
        self.sent += sent
        return sent


def driver_outcome(key: str, step: str, subject: str, workdir: pathlib.Path, outputs: dict[str, str],
                   sha256: dict[str, str], fingerprint: str) -> Outcome:
    """The Outcome of a step whose outputs are the delivered files ``outputs`` (role -> driver path).

    ``sha256`` maps each driver path to its recorded checksum. Marked
    ``at_driver``: :func:`ctxdask.batch.staging.localize` has them pushed.
    """
    from ctxdask.batch.model import FileInfo

    files = tuple(FileInfo(path, os.path.relpath(path, workdir), os.path.getsize(path), sha256[path])
                  for path in sorted(set(outputs.values())))
    result = StepResult(key=key, step=step, program=step, workdir=str(workdir), outputs=dict(outputs), log_path="",
                        returncode=0, duration=0.0, started="", host="", cached=True, fingerprint=fingerprint)
    return Outcome(key=key, step=step, subject=subject, status="done", result=result, files=files, at_driver=True)
