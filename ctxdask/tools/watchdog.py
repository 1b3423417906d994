"""A watchdog process that stops an external program when its worker dies.

:func:`ctxdask.tools.runner.run` stops a program's whole process tree at the
deadline, on cancellation and on any exception, but only while the process that
called it lives. A ``dask worker`` that is SIGKILLed (the kernel's OOM killer, a
nanny that gives up, ``kill -9``) runs no ``finally`` block, and its programs,
each in its own session, are re-parented to init and run on: a stereo
correlator for hours on a machine its owner thinks is idle.

So each program gets a watchdog: a small process started by the runner, in its
own session (signals aimed at the worker's group do not reach it), that does
nothing until the worker is gone and then stops the program's process group and
every descendant the runner told it about, SIGTERM first and SIGKILL after a
short grace (setting ``tools.watchdog-grace``).

How the watchdog learns that the worker is gone, without polling:

- its stdin is the read end of a pipe whose only write end the worker holds
  (close-on-exec, so no program inherits it). The kernel closes it when the
  worker dies, however it dies: end of file means the worker is gone;
- as a second line of defence, for a write end copied into a child forked
  without exec, a pidfd of the worker (``pidfd_open``, Linux 5.3) becomes
  readable when the worker exits.

The runner writes one line per event: ``group PGID CREATE_TIME`` once the
program has started, ``pid PID CREATE_TIME`` for each descendant it has seen
(one that left the group with ``setsid`` must be stopped too). When the run
ends, the runner kills and reaps the watchdog, so a watchdog never outlives its
program's run. Start times guard against a pid reused after the program exited.

What the runner writes is not enough on its own: a worker that is starved (a
loaded machine) or busy (importing ``distributed`` for the cancel check) polls
late, and a descendant that left the session and lost its parent in between
was never seen by it; a worker killed between starting the program and naming
it leaves no line at all. So the watchdog is also given the program's mark
(:func:`ctxdask.tools.processes.new_mark`, an environment variable every
descendant inherits) on its command line, and when the worker is gone it looks
for every live process carrying it, then looks again after stopping them (a
program the dying worker had forked but not yet exec'd gets its mark at exec).

Why not ``prctl(PR_SET_PDEATHSIG)``: the parent-death signal is sent when the
*thread* that forked the child exits, not the process (checked: a child spawned
from a ``threading.Thread`` that then ends gets the signal while the process
lives on). In dask's thread pool (``distributed/threadpoolexecutor.py``,
``_worker``) a thread leaves the pool when a seceded thread rejoins, but the
thread inside :func:`run` stays blocked there until the program ends, so the
signal would not fire early. It still does not fit: it reaches only the direct
child, not the process group or the grandchildren that ISIS and ASP programs
start (``parallel_stereo`` runs GNU parallel and many ``stereo_corr``); setting
it needs ``preexec_fn``, which Python documents as unsafe in a process with
threads (a dask worker has many); and it is cleared by a set-uid exec.

The watchdog runs as a script (``python watchdog.py``), not with ``-m``, so it
imports only :mod:`ctxdask.tools.processes` and psutil (about 30 ms and 15 MB)
rather than the package and its numerical stack.
"""

from __future__ import annotations

import datetime
import os
import select
import subprocess
import sys
import time

import psutil

if __package__:  # imported as part of the package (the runner's side)
    from ctxdask.tools.processes import ProcessTree
else:  # run as a script: this folder is sys.path[0]; the package is not imported
    from processes import ProcessTree  # type: ignore[no-redef]

__all__ = ["Watchdog"]

#: looks for marked processes after the stop, and the pause before each (seconds)
_SWEEPS = 2
_SWEEP_PAUSE = 0.2


class Watchdog:
    """The runner's handle on one watchdog process.

    Start it before the program, tell it the program's group
    (:meth:`watch`) and the descendants seen (:meth:`adopt`), and dismiss it
    when the program's tree is gone (:meth:`dismiss`).

    Parameters
    ----------
    grace : float
        Seconds between SIGTERM and SIGKILL when the worker is gone.
    log : file object, optional
        Where the watchdog writes what it did (the program's log, opened for
        appending); ``None`` discards it.
    mark : str, optional
        The environment variable set for the program and so inherited by all
        its descendants (:func:`ctxdask.tools.processes.new_mark`).
    """

    def __init__(self, grace: float, log=None, mark: str | None = None):
        read_fd, write_fd = os.pipe()  # both close-on-exec (PEP 446)
        try:
            self.process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), str(os.getpid()), f"{grace:g}", mark or "-"],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=log if log is not None else subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        self._pipe = os.fdopen(write_fd, "w", buffering=1)
        self._told: set[int] = set()

    @property
    def pid(self) -> int:
        """Pid of the watchdog process."""
        return self.process.pid

    def create_time(self) -> float | None:
        """Start time of the watchdog process as psutil reports it (``None`` if it is gone)."""
        try:
            return psutil.Process(self.process.pid).create_time()
        except psutil.Error:
            return None

    def _send(self, line: str) -> None:
        try:
            self._pipe.write(line + "\n")
        except (BrokenPipeError, ValueError):
            pass  # the watchdog died (or was dismissed): nothing to tell

    def watch(self, tree: ProcessTree) -> None:
        """Tell the watchdog the program's process group (its leader's pid and start time)."""
        if tree.create_time is not None:
            self._send(f"group {tree.pgid} {tree.create_time:.6f}")

    def adopt(self, tree: ProcessTree) -> None:
        """Tell the watchdog the descendants recorded in ``tree`` it does not know yet."""
        for pid, created in tree.recorded.items():
            if pid not in self._told:
                self._told.add(pid)
                self._send(f"pid {pid} {created:.6f}")

    def dismiss(self) -> None:
        """The program's tree is gone: end the watchdog and reap it.

        A dismissed watchdog has nothing to finish, so it gets SIGKILL rather
        than a ``done`` line to read once its interpreter has started (which
        would cost 40-170 ms per program on a busy machine). It is killed
        before the pipe closes, so it never reads the end of file as the
        worker's death.
        """
        try:
            self.process.kill()
        except OSError:  # pragma: no cover - already reaped
            pass
        self.process.wait()
        try:
            self._pipe.close()
        except OSError:
            pass


# ------------------------------------------------------------ watchdog process
def _note(message: str) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    print(f"# ctxdask watchdog {os.getpid()}: {now} {message}", file=sys.stderr, flush=True)


def _worker_pidfd(worker_pid: int) -> int | None:
    """A pidfd of the worker, or ``None`` (already gone, or no pidfd support)."""
    if os.getppid() != worker_pid:
        return None  # re-parented already: the pipe's end of file will say so
    try:
        return os.pidfd_open(worker_pid)
    except (AttributeError, OSError):
        return None


def _parse(lines: list[bytes], state: dict) -> None:
    for raw in lines:
        parts = raw.decode("ascii", "replace").split()
        if parts[:1] == ["group"] and len(parts) == 3:
            state["group"] = (int(parts[1]), float(parts[2]))
        elif parts[:1] == ["pid"] and len(parts) == 3:
            state["pids"][int(parts[1])] = float(parts[2])


def watch(worker_pid: int, grace: float, stdin_fd: int = 0, mark: str | None = None) -> str:
    """Wait until the worker is gone, then stop the program's tree.

    Returns ``"stopped"``, or ``"nothing"`` when no program had started.
    """
    started = psutil.Process().create_time()  # before the program: no marked process is older
    pidfd = _worker_pidfd(worker_pid)
    state: dict = {"group": None, "pids": {}}
    buffer = b""
    worker_gone = False
    while not worker_gone:
        ready, _, _ = select.select([stdin_fd] + ([pidfd] if pidfd is not None else []), [], [])
        if stdin_fd in ready:
            chunk = os.read(stdin_fd, 65536)
            if not chunk:
                worker_gone = True  # every write end closed
            buffer += chunk
        elif pidfd in ready:
            worker_gone = True
            os.set_blocking(stdin_fd, False)
            try:  # what the worker wrote before it died
                while chunk := os.read(stdin_fd, 65536):
                    buffer += chunk
            except BlockingIOError:
                pass
        *lines, buffer = buffer.split(b"\n")
        _parse(lines, state)
    pgid, created = state["group"] if state["group"] is not None else (None, None)
    tree = ProcessTree(pgid, created, mark=mark, since=started)
    for pid, pid_created in state["pids"].items():
        tree.adopt(pid, pid_created)
    tree.snapshot()
    tree.collect_marked()
    alive = tree.alive()
    name = f"process group {pgid}" if pgid is not None else f"the processes marked {mark}"
    if pgid is None and not alive:
        _note(f"worker {worker_pid} is gone; it had not named a program (none stopped)")
        return "nothing"
    if not alive:
        _note(f"worker {worker_pid} is gone; {name} had ended")
    else:
        _note(f"worker {worker_pid} is gone; stopping {name} and its "
              f"descendants (pids {', '.join(map(str, alive))})")
        killed = tree.stop(grace)
        how = f"SIGKILL after {grace:g} s for {', '.join(map(str, killed))}" if killed else "SIGTERM"
        _note(f"stopped {name} with {how}")
    for _ in range(_SWEEPS):
        time.sleep(_SWEEP_PAUSE)
        tree.snapshot()
        tree.collect_marked()
        late = tree.alive()
        if late:
            _note(f"stopping marked processes found late (pids {', '.join(map(str, late))})")
            tree.stop(grace)
    return "stopped"


def main(argv: list[str]) -> int:
    """Entry point of the watchdog process: ``watchdog.py WORKER_PID GRACE MARK``."""
    mark = argv[2] if len(argv) > 2 and argv[2] != "-" else None
    watch(int(argv[0]), float(argv[1]), mark=mark)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
