"""Track and stop the whole process tree of an external program.

A program started by :func:`ctxdask.tools.runner.run` leads its own session and
process group, so one ``killpg`` reaches everything that stays in the group. A
descendant can leave the group (``setsid``, a daemonizing helper), and once its
parent exits it is re-parented away from us (to init, or the nearest
``PR_SET_CHILD_SUBREAPER`` ancestor), so :class:`ProcessTree` records every
descendant it sees while the program runs and signals those too.

Recording by polling has a hole no poll interval closes: a descendant that
leaves the session and whose parent exits between two polls (a daemonizing
double fork takes microseconds; a runner busy importing, or starved on a loaded
machine, polls late) is never seen as a descendant. So every program also
carries a *mark*: an environment variable of its own (:func:`new_mark`), which
every descendant inherits through ``fork`` and ``exec`` whatever its parent or
session. :meth:`ProcessTree.collect_marked` finds them in ``/proc/<pid>/environ``
(the environment the process was started with), with no help from the
process that started them. Only a descendant started with a scrubbed
environment (``env -i``) and detached before any poll escapes both.

Zombies count as dead: a re-parented process that has exited may linger as a
zombie until its new parent (often PID 1 in a container) reaps it, but it holds
no resources beyond its process-table entry and can no longer be signalled.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time

import psutil

__all__ = ["MARK_PREFIX", "ProcessTree", "is_alive", "new_mark", "running_trees"]

#: prefix of the environment variable that marks every process of one program run
MARK_PREFIX = "CTXDASK_RUN_"
#: seconds of clock slack when comparing start times (psutil rounds them to clock ticks)
_SLACK = 1.0


def new_mark() -> str:
    """A fresh mark: the name of an environment variable no other run uses.

    The name, not the value, is the mark, so the marks of nested runs (a program
    that itself calls :func:`ctxdask.tools.runner.run`) add up instead of
    replacing one another.
    """
    return f"{MARK_PREFIX}{secrets.token_hex(8).upper()}"

# trees of programs running in this process right now (see running_trees)
_RUNNING: set = set()
_RUNNING_LOCK = threading.Lock()


def running_trees() -> list["ProcessTree"]:
    """The process trees of external programs this process is running right now.

    :func:`ctxdask.tools.runner.run` registers each program for its lifetime, so
    a worker that shuts down can stop whatever is still running
    (:class:`ctxdask.cluster.StopProgramsOnShutdown`).
    """
    with _RUNNING_LOCK:
        return list(_RUNNING)


def is_alive(pid: int) -> bool:
    """Return whether process ``pid`` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        # AccessDenied only happens for processes we did not start
        return False


def _proc_alive(proc: psutil.Process) -> bool:
    try:
        # is_running() also guards against the pid having been reused
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _process(pid: int, create_time: float | None) -> psutil.Process | None:
    """``psutil.Process(pid)`` if it exists and started at ``create_time`` (when given)."""
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.01:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class ProcessTree:
    """The process group led by ``pid`` plus every descendant seen so far.

    Parameters
    ----------
    pid : int or None
        Pid of the program, which leads its own process group (started with
        ``start_new_session=True``), so its pgid equals ``pid``;
        ``None``: no program known, only marked processes (a watchdog whose
        worker died before it named the program).
    create_time : float, optional
        The program's start time as :mod:`psutil` reports it. When given, a
        process now holding ``pid`` that started at another time is not taken
        for the program (the pid was reused after the program exited).
    mark : str, optional
        The environment variable (:func:`new_mark`) set for the program: every
        process started with it counts as a descendant.
    since : float, optional
        No marked process is older than this (epoch seconds); default the
        program's start time. Saves reading the environment of older processes.
    """

    def __init__(self, pid: int | None, create_time: float | None = None, *, mark: str | None = None,
                 since: float | None = None):
        self.pid = pid
        self.pgid = pid
        self.mark = mark
        self._seen: dict[int, psutil.Process] = {}
        self._root = _process(pid, create_time) if pid is not None else None
        #: the program's start time (``None`` if it was already gone)
        self.create_time = self._root.create_time() if self._root is not None else None
        self._since = since if since is not None else self.create_time

    def adopt(self, pid: int, create_time: float | None = None) -> None:
        """Count process ``pid`` among the descendants (seen by another process).

        Ignored when it is gone or, with ``create_time``, is not the same process.
        """
        proc = _process(pid, create_time)
        if proc is not None:
            self._seen.setdefault(pid, proc)

    def register(self) -> None:
        """Count this tree among :func:`running_trees` until :meth:`unregister`."""
        with _RUNNING_LOCK:
            _RUNNING.add(self)

    def unregister(self) -> None:
        """Remove this tree from :func:`running_trees`."""
        with _RUNNING_LOCK:
            _RUNNING.discard(self)

    @property
    def descendants(self) -> list[int]:
        """Pids of every descendant recorded so far (alive or not)."""
        return sorted(self._seen)

    @property
    def recorded(self) -> dict[int, float]:
        """Start time (psutil ``create_time``) of every descendant recorded so far, by pid."""
        return {pid: proc.create_time() for pid, proc in self._seen.items()}

    def snapshot(self) -> None:
        """Record the current descendants of the program (cheap; call it often).

        One scan of the process table finds everything still below the
        program; another scan per recorded descendant that is no longer below
        it (its parent exited, it was re-parented away) finds what that one
        started. Usually there is none: a poll costs one scan, not one per
        descendant.
        """
        below: set[int] = set()
        if self._root is not None:
            below = self._record_children(self._root)
        for pid, proc in list(self._seen.items()):
            if pid not in below:
                below |= self._record_children(proc)

    def _record_children(self, parent: psutil.Process) -> set[int]:
        """Record every descendant of ``parent`` (none when it is gone); return their pids."""
        if not _proc_alive(parent):
            return set()  # also skips a pid reused by an unrelated process
        try:
            children = parent.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return set()
        for child in children:
            self._seen.setdefault(child.pid, child)
        return {child.pid for child in children}

    def collect_marked(self) -> None:
        """Record every live process that carries the program's mark, wherever it is now.

        Reads ``/proc/<pid>/environ`` of the processes started since the program
        (at most tens on a worker); processes of other users are skipped.
        """
        if self.mark is None:
            return
        me = os.getpid()
        for proc in psutil.process_iter(["create_time"]):
            created = proc.info["create_time"]
            if proc.pid == me or proc.pid in self._seen:
                continue
            if self._since is not None and created is not None and created < self._since - _SLACK:
                continue
            try:
                marked = self.mark in proc.environ()
            except (psutil.Error, OSError):
                continue  # gone, a zombie, or not ours to read
            if marked and _proc_alive(proc):
                self._seen.setdefault(proc.pid, proc)

    def _group_members(self) -> list[int]:
        """Pids of live (non-zombie) processes still in the program's group."""
        if self.pgid is None:
            return []
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:  # pragma: no cover - a group we cannot signal
            return []
        members = []
        for proc in psutil.process_iter(["pid", "status"]):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            try:
                if os.getpgid(proc.info["pid"]) == self.pgid:
                    members.append(proc.info["pid"])
            except (ProcessLookupError, PermissionError):
                continue
        return members

    def alive(self) -> list[int]:
        """Pids of live processes of the group or among the recorded descendants."""
        pids = set(self._group_members())
        pids.update(pid for pid, proc in self._seen.items() if _proc_alive(proc))
        return sorted(pids)

    def _signal_all(self, sig: int) -> None:
        try:
            if self.pgid is not None:
                os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for proc in self._seen.values():
            if _proc_alive(proc):
                try:
                    proc.send_signal(sig)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass

    def stop(self, grace: float, *, reap=None, settle: float = 5.0) -> list[int]:
        """SIGTERM everything, wait up to ``grace`` s, then SIGKILL what is left.

        Parameters
        ----------
        grace : float
            Seconds between SIGTERM and SIGKILL.
        reap : callable, optional
            Called while waiting, to reap the leader (``Popen.poll``) so that it
            does not linger as our zombie.
        settle : float
            Seconds to wait for SIGKILLed processes to disappear.

        Returns
        -------
        list of int
            Pids that received SIGKILL (empty when SIGTERM sufficed).
        """
        self.snapshot()
        self.collect_marked()  # descendants that detached between two snapshots
        if reap is not None:
            reap()
        if not self.alive():
            return []
        self._signal_all(signal.SIGTERM)
        if self._wait_gone(grace, reap):
            return []
        self.snapshot()  # a SIGTERM handler may have spawned helpers
        self.collect_marked()
        survivors = self.alive()
        self._signal_all(signal.SIGKILL)
        self._wait_gone(settle, reap)
        return survivors

    def _wait_gone(self, seconds: float, reap) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if reap is not None:
                reap()
            self.snapshot()
            if not self.alive():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
