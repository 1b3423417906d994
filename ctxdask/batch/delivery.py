"""Bringing results home: from worker scratch to the driver's output folder.

Two ways, chosen by the ``batch.delivery`` setting:

``transfer`` (default; needs nothing but the dask connection)
    The driver reads each file in chunks through small tasks pinned to the
    worker that made it (``workers=[address], allow_other_workers=False``),
    a few chunks in flight at a time, hashes the bytes as they arrive, writes
    them to a temporary file beside the destination and renames it into place
    only when the sha256 matches the one the worker computed. No shared
    filesystem, SSH keys or rsync.
``shared``
    The output folder is mounted on the workers too: a task on the producing
    worker copies the files into it (temporary name, sha256 check, rename).

If the producing worker has gone (killed, restarted by its nanny), another
worker on the same host reads the files instead; the work dirs live on disk,
not in the worker process. When no worker is left on that host, or the files
went with the worker's scratch, the step is made again on a live worker (the
``remake`` hook, :func:`ctxdask.batch.work.remake`) and delivered from there;
only when that fails too does :class:`DeliveryLost` tell the driver to count
the step as interrupted, so the next run makes it again. Nothing is ever
recorded as delivered unless it is complete under its final name.

A step's files land together: each is brought into a temporary beside its
destination and checked, and only when all of them are do they take their
final names. A delivery that fails or is abandoned half-way leaves nothing
in the output folder, so whatever is there belongs to a delivery that
completed, which the driver records. :meth:`Deliverer.stop` (Ctrl-C,
SIGTERM) abandons transfers in flight at their next chunk and waits until
every delivery has ended, so that the driver records the completed ones
before it exits.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import pathlib
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ctxdask.batch.model import FileInfo, Outcome
from ctxdask.daskcompat import live_workers, result_within
from ctxdask.exceptions import CTXError
from ctxdask.io.atomic import atomic_path

__all__ = ["DELIVERED_FOLDERS", "Delivered", "Deliverer", "DeliveryError", "DeliveryLost", "DeliveryStopped",
           "copy_into", "pull", "read_range", "remove_partials"]

#: the folders of the output folder that only the batch driver writes (under the database lock)
DELIVERED_FOLDERS = ("images", "pairs")


class DeliveryError(CTXError, RuntimeError):
    """A product could not be brought home intact (checksum or size mismatch)."""


class DeliveryLost(DeliveryError):
    """The files are gone with their worker's host; the step has to run again."""


class DeliveryStopped(DeliveryLost):
    """The run is stopping: the delivery was abandoned before any of its files landed."""


@dataclasses.dataclass(frozen=True)
class Delivered:
    """One file in the output folder: its path, size and sha256."""

    path: str
    size: int
    sha256: str


def remove_partials(out: str | os.PathLike) -> list[str]:
    """Remove what killed deliveries left in the output folder; return the removed paths.

    Files are written under ``.<name>.<random>.partial`` and renamed into place
    (:func:`ctxdask.io.atomic.atomic_path`); a driver killed mid-delivery
    leaves the temporary behind, and a replaced folder may leave its
    ``.<name>.<random>.old``. Only the delivered folders (:data:`DELIVERED_FOLDERS`)
    are searched, which no one but the driver holding the database lock
    writes, so no other process's temporary is touched.
    """
    removed = []
    for folder in DELIVERED_FOLDERS:
        root = pathlib.Path(out) / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob(".*"), reverse=True):  # deepest first
            if not (path.name.endswith(".partial") or path.name.endswith(".old")) or not path.name.startswith("."):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(str(path))
    return removed


def read_range(path: str, offset: int, length: int) -> bytes:
    """Bytes ``offset:offset+length`` of a file on this worker (a delivery chunk)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _copy_verified(info: FileInfo, tmp: pathlib.Path, dest: pathlib.Path) -> Delivered:
    h = hashlib.sha256()
    with open(info.path, "rb") as src, open(tmp, "wb") as dst:
        while block := src.read(8 * 1024 * 1024):
            h.update(block)
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    if h.hexdigest() != info.sha256:
        raise DeliveryError(info.path, f"sha256 changed while copying to {dest} "
                            "(the file was modified after its step finished)")
    return Delivered(str(dest), info.size, info.sha256)


def copy_into(files: Sequence[FileInfo], dest_dir: str) -> list[Delivered]:
    """Copy ``files`` into ``dest_dir`` (shared-folder delivery; runs on the worker); all land or none."""
    with contextlib.ExitStack() as landing:
        return [_copy_verified(info, landing.enter_context(atomic_path(dest)), dest)
                for info, dest in ((info, pathlib.Path(dest_dir) / info.relpath) for info in files)]


class Deliverer:
    """Brings the files of finished steps home, in background threads of the driver.

    Parameters
    ----------
    client : distributed.Client
    mode : {"transfer", "shared"}
    chunk_size : int
        Bytes per chunk task.
    window : int
        Chunks in flight per file (bounds the driver's memory to
        ``threads x window x chunk_size``).
    threads : int
        Files delivered at the same time.
    stall_timeout : float
        Seconds without a chunk arriving before the delivery gives up.
    """

    def __init__(self, client, *, mode: str = "transfer", chunk_size: int = 8 * 1024 * 1024,
                 window: int = 4, threads: int = 2, stall_timeout: float = 300.0,
                 remake: Callable[[Outcome], Outcome] | None = None):
        if mode not in ("transfer", "shared"):
            raise ValueError(f"batch.delivery must be 'transfer' or 'shared', not {mode!r}")
        self.client = client
        self.mode = mode
        self.chunk_size = int(chunk_size)
        self.window = max(1, int(window))
        self.stall_timeout = float(stall_timeout)
        self.remake = remake
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(max(1, threads), thread_name_prefix="ctxdask-deliver")

    def submit(self, outcome: Outcome, dest_dir: str | os.PathLike) -> concurrent.futures.Future:
        """Start delivering ``outcome.files`` into ``dest_dir``; the future gives [Delivered]."""
        return self._pool.submit(self.deliver, outcome, pathlib.Path(dest_dir))

    def stop(self) -> None:
        """Abandon what is in flight and return once no delivery can land anything any more.

        Deliveries not started are cancelled (their futures say so); transfers
        stop at their next chunk and leave nothing behind (:class:`DeliveryStopped`);
        a delivery whose files are all checked lands them and completes; a
        shared-folder copy already running on its worker cannot be recalled
        and is waited for. Afterwards every future is done: what completed is
        in the output folder and must be recorded before the driver exits.
        """
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the delivery threads: wait for deliveries in flight, or cancel the queued ones (``cancel``)."""
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)

    def _check_stop(self, outcome: Outcome) -> None:
        if self._stop.is_set():
            raise DeliveryStopped(None, f"{outcome.key}: the run stopped before its files were home; "
                                        "the step runs again next time")

    # ------------------------------------------------------------- internals
    def _workers_for(self, outcome: Outcome) -> list[str]:
        """The producing worker if alive, else the live workers on its host."""
        workers = live_workers(self.client)
        if outcome.worker in workers:
            return [outcome.worker]
        host = outcome.worker.rsplit(":", 1)[0].split("://")[-1]
        same_host = [a for a, w in workers.items() if w.get("host") == host]
        if not same_host:
            raise DeliveryLost(None, f"{outcome.key}: worker {outcome.worker} left and no worker is left on "
                                     f"{host}; its results are lost and the step runs again next time")
        return same_host

    def deliver(self, outcome: Outcome, dest_dir: pathlib.Path) -> list[Delivered]:
        """Deliver every file of ``outcome`` (blocking; see :meth:`submit`), remaking lost ones once."""
        self._check_stop(outcome)
        try:
            return self._deliver(outcome, dest_dir)
        except DeliveryLost as lost:
            if self.remake is None or self._stop.is_set():
                raise
            try:
                again = self.remake(outcome)
            except Exception as exc:  # noqa: BLE001 - not remakeable: the original loss stands
                raise DeliveryLost(None, f"{lost.reason}; making it again failed: {exc}") from None
            return self._deliver(again, dest_dir)

    def _deliver(self, outcome: Outcome, dest_dir: pathlib.Path) -> list[Delivered]:
        dest_dir.mkdir(parents=True, exist_ok=True)
        if self.mode == "shared":
            workers = self._workers_for(outcome)
            future = self.client.submit(copy_into, list(outcome.files), str(dest_dir),
                                        workers=workers, allow_other_workers=False, pure=False, priority=100)
            return self._wait(future, outcome, workers)
        with contextlib.ExitStack() as landing:
            # every file into a temporary and checked first; they take their names together as the stack closes
            return [self._pull(outcome, info, landing.enter_context(atomic_path(dest)), dest)
                    for info, dest in ((info, dest_dir / info.relpath) for info in outcome.files)]

    def _wait(self, future, outcome: Outcome, pinned: Sequence[str] = (), *, abandon: bool = False):
        """Result of a task pinned to ``pinned``, giving up if they or their host's workers are all gone.

        With ``abandon``, also once the deliverer is stopped (a read that lands nothing by itself).
        """
        last = time.monotonic()
        while True:
            try:
                # with a timeout also once done: the worker holding the result may die before it is
                # gathered, and a read pinned to it then waits for a worker that never comes
                return result_within(future, 2.0)
            except TimeoutError:
                pass
            if abandon:
                self._check_stop(outcome)
            live = self._workers_for(outcome)  # raises DeliveryLost when nobody can serve it
            if pinned and not set(pinned) & set(live):
                # the task can never run: its workers left while it waited (their scratch too)
                future.cancel()
                raise DeliveryLost(None, f"{outcome.key}: the workers holding its files left during delivery")
            if time.monotonic() - last > self.stall_timeout:
                future.cancel()
                raise DeliveryError(None, f"{outcome.key}: no data for {self.stall_timeout:g} s")

    def _pull(self, outcome: Outcome, info: FileInfo, tmp: pathlib.Path, dest: pathlib.Path) -> Delivered:
        workers = self._workers_for(outcome)

        def wait(future):
            self._check_stop(outcome)
            try:
                return self._wait(future, outcome, workers, abandon=True)
            except FileNotFoundError:
                raise DeliveryLost(info.path, f"{outcome.key}: the file has gone from the worker's "
                                              "scratch; the step runs again next time") from None

        receive(lambda off, n: self.client.submit(read_range, info.path, off, n, workers=workers,
                                                  allow_other_workers=False, pure=False, priority=100),
                wait, size=info.size, sha256=info.sha256, into=tmp, chunk_size=self.chunk_size,
                window=self.window, where=info.path)
        return Delivered(str(dest), info.size, info.sha256)


def pull(read: Callable[[int, int], Any], wait: Callable[[Any], bytes], *, size: int, sha256: str,
         dest: str | os.PathLike, chunk_size: int, window: int, where: str) -> Delivered:
    """Copy a file from a worker in chunks into ``dest``: temporary name, sha256 check, rename.

    Parameters
    ----------
    read : callable
        ``read(offset, length)`` submits a pinned :func:`read_range` task and
        returns its future.
    wait : callable
        ``wait(future)`` returns the chunk (or raises).
    size, sha256 :
        What the producer says the file is.
    dest : path
    chunk_size, window : int
        Bytes per chunk, chunks in flight.
    where : str
        The source path, for messages.

    Raises
    ------
    DeliveryError
        A chunk of the wrong size or a checksum mismatch (``dest`` is left untouched).
    """
    with atomic_path(dest) as tmp:
        receive(read, wait, size=size, sha256=sha256, into=tmp, chunk_size=chunk_size, window=window, where=where)
    return Delivered(str(dest), size, sha256)


def receive(read: Callable[[int, int], Any], wait: Callable[[Any], bytes], *, size: int, sha256: str,
            into: str | os.PathLike, chunk_size: int, window: int, where: str) -> None:
    """Write a file from a worker, read in chunks, to ``into`` and check its sha256 (see :func:`pull`)."""
    h = hashlib.sha256()
    offsets = collections.deque(range(0, size, chunk_size))
    inflight: collections.deque = collections.deque()

    def refill():
        while offsets and len(inflight) < window:
            off = offsets.popleft()
            inflight.append((off, read(off, min(chunk_size, size - off))))

    with open(into, "wb") as out:
        refill()
        while inflight:
            off, future = inflight.popleft()
            data = wait(future)
            expected = min(chunk_size, size - off)
            if len(data) != expected:
                raise DeliveryError(where, f"chunk at byte {off} has {len(data)} bytes, "
                                           f"expected {expected}: the file changed on the worker")
            h.update(data)
            out.write(data)
            del data, future
            refill()
        out.flush()
        os.fsync(out.fileno())
    if h.hexdigest() != sha256:
        raise DeliveryError(where, f"sha256 mismatch after transfer: got {h.hexdigest()}, the worker had {sha256}")
