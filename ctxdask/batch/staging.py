"""Inputs made on another worker: pulled over the dask connection, or made again here.

A step's upstream results name files on the worker that made them. On the same
host (one machine, or a shared scratch folder) those paths are read where they
are. Otherwise :func:`localize` copies them into this worker's scratch
(``<work root>/staged/<key>/``) with the pinned byte-range reads of
:mod:`~ctxdask.batch.delivery`: tasks restricted to the producing worker, a few
chunks in flight, sha256 checked against the producer's, temporary name and
rename. A stamp beside each copy records the producing step's fingerprint, so
each worker pulls a given output once however many steps read it.

Files only the driver holds (``Outcome.at_driver``: tiles delivered home,
by this run or an earlier one) are never read where the driver keeps them:
the driver pushes them into the same staging folder (:mod:`~ctxdask.batch.push`).

When the producer has gone (killed, restarted by its nanny: its scratch went
with it), the upstream step is made again on this worker instead, from the
recipe and the batch's shared :class:`BatchContext`
(:func:`~ctxdask.batch.steps.rebuild`). Each step of its chain is taken from a
finished work dir here, else from a live worker that holds it
(:class:`LiveHolders`: asked by key, checked by fingerprint, copied as above),
and made here only when no live worker has it, one worker at a time
(a cluster-wide lock per pair step, and one per image for all its calibration
steps), so nothing a live worker holds is made again. A step run in the
normal course of its task takes the same lock (:func:`made_alone`; an image
task takes its image's once for its whole chain): the scheduler may rerun a
lost image task on one worker while a pair step on another rebuilds that
image's steps, and the one that comes second waits, then copies what the
first made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

from ctxdask.batch.delivery import pull, read_range
from ctxdask.batch.model import BatchContext, Outcome, sha256_file
from ctxdask.batch.push import receive
from ctxdask.batch.scratch import held_results
from ctxdask.batch.steps import rebuild
from ctxdask.daskcompat import live_workers, result_within
from ctxdask.exceptions import CTXError
from ctxdask.tools.tasks import StepResult, cached_result, work_root

__all__ = ["LiveHolders", "ProducerGone", "file_digest", "host_of", "localize", "made_alone", "stage", "vanished"]

_STAMP = ".staged.json"
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_held_locks = threading.local()  # names of the cluster-wide locks the thread holds


class ProducerGone(CTXError, RuntimeError):
    """The worker holding an input has left, or the input has left its scratch."""


def host_of(address: str) -> str:
    """``tcp://10.0.0.5:4321`` -> ``10.0.0.5``."""
    return address.split("://")[-1].rsplit(":", 1)[0]


def file_digest(path: str) -> tuple[int, str]:
    """Size and sha256 of a file on this worker (asked of a producer before a pull)."""
    return os.path.getsize(path), sha256_file(path)


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """One thread per target file in this process; other processes are kept safe by rename."""
    with _locks_guard:
        lock = _locks.setdefault(path, threading.Lock())
    with lock:
        yield


def _fresh(target: str, fingerprint: str) -> bool:
    try:
        with open(target + _STAMP) as f:
            stamp = json.load(f)
        return stamp["fingerprint"] == fingerprint and os.path.getsize(target) == stamp["size"]
    except (OSError, ValueError, KeyError):
        return False


def _stamp(target: str, fingerprint: str, size: int, sha256: str) -> None:
    """Mark a complete copy with the producing step's fingerprint (see :func:`_fresh`)."""
    with open(target + _STAMP, "w") as f:
        json.dump({"fingerprint": fingerprint, "size": size, "sha256": sha256}, f)


def _result(client, future, producer: str) -> Any:
    """A pinned task's result, or :class:`ProducerGone` once its worker has left."""
    while True:
        try:
            return result_within(future, 2.0)
        except TimeoutError:
            if producer not in live_workers(client):
                future.cancel()
                raise ProducerGone(None, f"worker {producer} left") from None
        except FileNotFoundError as exc:
            raise ProducerGone(exc.filename, "no longer in the producing worker's scratch") from None


def stage(result: StepResult, producer: str, ctx: BatchContext) -> StepResult:
    """Copies of ``result``'s outputs in this worker's scratch (pulled once, then reused).

    Raises
    ------
    ProducerGone
        ``producer`` has left or no longer has the files.
    """
    from distributed import worker_client

    folder = os.path.join(work_root(ctx.options.work_dir), "staged", result.key)
    outputs: dict[str, str] = {}
    # secede from the worker's thread pool while waiting, so the pinned reads can run
    with worker_client() as client:
        for role, path in result.outputs.items():
            rel = os.path.relpath(path, result.workdir)
            target = os.path.join(folder, rel if not rel.startswith("..") else os.path.basename(path))
            with _locked(target):
                if not _fresh(target, result.fingerprint):
                    if producer not in live_workers(client):
                        raise ProducerGone(path, f"worker {producer} left")
                    pin = dict(workers=[producer], allow_other_workers=False, pure=False, priority=100)
                    size, sha = _result(client, client.submit(file_digest, path, **pin), producer)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    # pull() reads every range before returning, so the loop's path and pin are current
                    pull(lambda off, n: client.submit(read_range, path, off, n, **pin),  # noqa: B023
                         lambda future: _result(client, future, producer), size=size, sha256=sha,
                         dest=target, chunk_size=ctx.chunk_size, window=ctx.window, where=path)
                    _stamp(target, result.fingerprint, size, sha)
            outputs[role] = target
    return dataclasses.replace(result, workdir=folder, outputs=outputs, log_path="")


@dataclasses.dataclass
class LiveHolders:
    """The live workers' finished steps, for :func:`~ctxdask.batch.steps.rebuild` on worker ``me``.

    With ``keys`` the workers are asked about those steps only, once: an image
    task asks for its chain's steps while it holds their lock (:func:`made_alone`),
    so no worker makes one of them in the meantime. Without, every
    :meth:`find` asks about everything each worker holds.
    """

    ctx: BatchContext
    me: str
    keys: tuple[str, ...] | None = None
    _held: dict | None = dataclasses.field(default=None, init=False, repr=False)

    def find(self, call, upstream: list[StepResult]) -> tuple[StepResult, str] | None:
        """A live worker's finished work dir of ``call`` made from these inputs (by fingerprint), else None."""
        from distributed import worker_client

        with worker_client() as client:
            held = self._held
            if held is None:
                try:
                    held = client.run(held_results, self.ctx.options.work_dir, self.keys)
                except Exception:  # noqa: BLE001 - no answer: the step is made here
                    return None
                if self.keys is not None:
                    self._held = held
            for holder in sorted(w for w, keys in held.items() if call.key in keys and w != self.me):
                try:  # the holder compares its manifest with the fingerprint of these inputs
                    found = _result(client, client.submit(cached_result, call, *upstream, options=self.ctx.options,
                                                          workers=[holder], allow_other_workers=False, pure=False,
                                                          priority=100), holder)
                except ProducerGone:
                    continue
                if found is not None:
                    return found, holder
        return None

    def stage(self, result: StepResult, holder: str) -> StepResult:
        """Stage ``result``'s outputs from worker ``holder`` to this worker (:func:`stage`)."""
        return stage(result, holder, self.ctx)

    @contextlib.contextmanager
    def guard(self, call) -> Iterator[None]:
        """A cluster-wide lock on making ``call`` in this run (released if this worker dies: a lease)."""
        from distributed import worker_client

        with worker_client(), _cluster_lock(_lock_name(self.ctx, call)):
            yield


def _lock_name(ctx: BatchContext, call) -> str:
    """One lock per image for all its calibration steps (its task makes them in one go), one per pair step."""
    image = call.names.get("id")
    return f"ctxdask-make-{ctx.topic}-" + (f"image-{image}" if image else call.key)


@contextlib.contextmanager
def _cluster_lock(name: str) -> Iterator[None]:
    """A ``distributed.Lock``, not taken again by the thread holding it (a rebuild within its image's chain)."""
    held = _held_locks.__dict__.setdefault("names", set())
    if name in held:
        yield
        return
    from ctxdask.daskcompat import cluster_lock

    with cluster_lock(name):
        held.add(name)
        try:
            yield
        finally:
            held.discard(name)


@contextlib.contextmanager
def made_alone(ctx: BatchContext, call, me: str) -> Iterator[None]:
    """Held while worker ``me`` looks for ``call``'s step on the live workers and, not finding it, makes it.

    The lock of :meth:`LiveHolders.guard` (an image's for its calibration
    steps), taken without seceding: the task keeps its slot while it waits (it
    waits for the very steps it would run). Outside a cluster (``me`` empty)
    nothing is taken.
    """
    if not me:
        yield
        return
    with _cluster_lock(_lock_name(ctx, call)):
        yield


def localize(outcome: Outcome, ctx: BatchContext, me: str, made: list[str], *, borrow: bool = True) -> StepResult:
    """``outcome.result`` with paths this worker can read: as is, staged, or made again here.

    ``made`` collects the keys copied or rebuilt on this worker (for clean-up).
    With ``borrow`` another worker's files on this host are read where they
    are; without, they are copied (or made again) like those of another host.
    """
    result = outcome.result
    producer = outcome.worker
    if outcome.at_driver:  # only the driver holds them: never read its paths here, have them pushed
        folder = os.path.join(work_root(ctx.options.work_dir), "staged", result.key)
        staged = receive(outcome, ctx, folder, _fresh, _stamp, _locked(folder))
        if result.key not in made:
            made.append(result.key)
        return staged
    if not producer or producer == me:
        return result
    if borrow and host_of(producer) == host_of(me) and all(os.path.exists(p) for p in result.outputs.values()):
        return result
    try:
        staged = stage(result, producer, ctx)
    except ProducerGone:
        staged = rebuild(outcome, ctx, me, made, LiveHolders(ctx, me))  # records what it made
    if result.key not in made:
        made.append(result.key)
    return staged


def vanished(upstream: list[Outcome], me: str) -> bool:
    """Whether files another worker made, read here where they were, have gone meanwhile.

    A worker restarted by its nanny loses its scratch while steps elsewhere on
    the host may still be reading it; such a step is run again on copies.
    """
    # only inputs read where they were: another host's were copied, and their paths are not this host's
    return any(u.result is not None and u.worker and u.worker != me and not u.at_driver
               and host_of(u.worker) == host_of(me)
               and not all(os.path.exists(p) for p in u.result.outputs.values()) for u in upstream)
