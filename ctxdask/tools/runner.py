"""Run one external program under a hard deadline.

:func:`run` is the only way ctxdask starts an ISIS or ASP program:

- the command is an argv list, never shell text: no shell ever parses it;
- the program leads its own session and process group
  (``start_new_session=True``), so it can be stopped as a whole, and a terminal
  Ctrl-C aimed at the worker does not reach it half-way;
- stdout and stderr go to a log file in the task's work directory, not to a
  pipe: a pipe that nobody drains stalls a chatty program, and a grandchild that
  inherits the pipe keeps it open after the program exits;
- at the deadline, on cancellation, or on any exception in the caller (including
  ``KeyboardInterrupt``), the process group and every descendant seen while the
  program ran get SIGTERM, then SIGKILL after a grace period
  (:class:`~ctxdask.tools.processes.ProcessTree`);
- if the calling process itself dies (a SIGKILLed dask worker runs no
  ``finally``), a watchdog process started beside the program stops the same
  tree (:mod:`ctxdask.tools.watchdog`); it exits when the run ends;
- a non-zero exit, a timeout or a cancellation raises a
  :class:`~ctxdask.exceptions.ToolError` subclass carrying the command, exit
  code or signal, duration and the tail of the log.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import shlex
import shutil
import signal as _signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from ctxdask.exceptions import (
    ToolCancelledError,
    ToolFailedError,
    ToolNotFoundError,
    ToolTimeoutError,
)
from ctxdask.settings import current as current_settings
from ctxdask.tools.cancel import task_cancel_check
from ctxdask.tools.processes import ProcessTree, new_mark
from ctxdask.tools.watchdog import Watchdog

__all__ = ["RunResult", "run", "read_tail", "resolve_program"]

logger = logging.getLogger(__name__)

#: lines of the log quoted in an error message (the error's ``log_tail`` holds more)
_MESSAGE_LINES = 12


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What happened when a program ran (small and picklable).

    Attributes
    ----------
    command : tuple of str
        The argv that ran.
    cwd : str
        The working directory.
    returncode : int or None
        Exit status; negative ``-N`` when killed by signal ``N`` (the
        :mod:`subprocess` convention).
    duration : float
        Wall-clock seconds from start until the process tree was gone.
    log_path : str
        The log file (stdout and stderr together).
    log_tail : str
        The last lines of the log.
    timed_out, cancelled : bool
        Whether the run was stopped at its deadline or by cancellation.
    pid : int
        Pid (and process-group id) of the program.
    started : str
        Start time, ISO 8601 UTC.
    killed : tuple of int
        Pids that needed SIGKILL (did not exit within the grace period).
    """

    command: tuple[str, ...]
    cwd: str
    returncode: int | None
    duration: float
    log_path: str
    log_tail: str
    timed_out: bool = False
    cancelled: bool = False
    pid: int | None = None
    started: str = ""
    killed: tuple[int, ...] = ()

    @property
    def signal(self) -> int | None:
        """Number of the signal that ended the program, if one did."""
        if self.returncode is not None and self.returncode < 0:
            return -self.returncode
        return None

    @property
    def ok(self) -> bool:
        """True when the program exited 0 on its own."""
        return self.returncode == 0 and not (self.timed_out or self.cancelled)


def read_tail(path: str | os.PathLike, lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """Return the last ``lines`` lines of a text file ('' if it is missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def resolve_program(name: str, env: Mapping[str, str] | None = None) -> str:
    """Return the full path of program ``name`` on ``PATH``.

    Raises
    ------
    ToolNotFoundError
        When it is not there.
    """
    path_var = (env if env is not None else os.environ).get("PATH", os.defpath)
    if os.sep in name:
        found = name if os.access(name, os.X_OK) and os.path.isfile(name) else None
    else:
        found = shutil.which(name, path=path_var)
    if found is None:
        raise ToolNotFoundError(
            name,
            "program not found on PATH; install ISIS/ASP (or activate their environment) "
            "on this worker; `ctxdask doctor` lists what is found",
            command=[name],
        )
    return found


def _merged_env(env: Mapping[str, str | None] | None) -> dict[str, str]:
    merged = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


def _signal_name(num: int) -> str:
    try:
        return _signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def run(
    argv: Sequence[str | os.PathLike],
    cwd: str | os.PathLike,
    timeout: float,
    env: Mapping[str, str | None] | None = None,
    log: str | os.PathLike = "run.log",
    *,
    grace: float | None = None,
    poll_interval: float | None = None,
    cancel: Callable[[], bool] | None = None,
    check: bool = True,
    tail_lines: int | None = None,
) -> RunResult:
    """Run ``argv`` in ``cwd`` and wait for it, at most ``timeout`` seconds.

    Parameters
    ----------
    argv : sequence of str or path
        Program and arguments. The program is looked up on ``PATH`` (of the
        merged environment). A plain string is refused: there is no shell.
    cwd : str or path
        Working directory; it must exist.
    timeout : float
        Deadline in seconds from the start. At the deadline the process group
        and all recorded descendants get SIGTERM, then SIGKILL after ``grace``.
    env : mapping, optional
        Variables set (or, with value ``None``, removed) on top of this
        process's environment.
    log : str or path
        Log file for stdout and stderr; relative paths are relative to ``cwd``.
        It is truncated and starts with a header naming the command.
    grace : float, optional
        Seconds between SIGTERM and SIGKILL. Default: setting
        ``tools.grace-period``.
    poll_interval : float, optional
        Seconds between checks of the deadline, the descendants and ``cancel``.
        Default: setting ``tools.poll-interval``.
    cancel : callable, optional
        Called at every poll; a true result stops the program as at the
        deadline and raises :class:`~ctxdask.exceptions.ToolCancelledError`.
        Default: inside a dask task, whether the worker has cancelled that task
        (:func:`ctxdask.tools.cancel.task_cancel_check`); elsewhere nothing.
    check : bool
        Raise on a non-zero exit (``True``, default) or return the result.
        Timeouts and cancellations always raise.
    tail_lines : int, optional
        Lines of the log kept in the result and errors. Default: setting
        ``tools.log-tail-lines``.

    Returns
    -------
    RunResult

    Raises
    ------
    ToolNotFoundError
        The program is not on ``PATH``.
    ToolTimeoutError
        It ran past ``timeout``; its process tree was killed.
    ToolCancelledError
        ``cancel()`` returned true; its process tree was killed.
    ToolFailedError
        It exited non-zero or was killed by a signal (when ``check``).
    """
    if isinstance(argv, (str, bytes)):
        raise TypeError("argv must be a list of arguments, not a string: no shell is used")
    argv = [os.fspath(a) for a in argv]
    if not argv or not argv[0]:
        raise ValueError("argv is empty")
    if not (timeout and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    tools = current_settings().tools
    grace = float(tools.grace_period if grace is None else grace)
    poll = float(tools.poll_interval if poll_interval is None else poll_interval)
    tail_lines = int(tools.log_tail_lines if tail_lines is None else tail_lines)
    orphan_grace = min(grace, tools.watchdog_grace)

    cwd = os.fspath(cwd)
    if not os.path.isdir(cwd):
        raise NotADirectoryError(f"{cwd}: working directory does not exist")
    log_path = os.path.join(cwd, os.fspath(log))
    full_env = _merged_env(env)
    executable = resolve_program(argv[0], full_env)
    # inherited by everything the program starts, whatever session it moves to:
    # how the tree is found even where no poll saw a detached descendant's parent
    mark = new_mark()
    full_env[mark] = "1"
    name = os.path.basename(argv[0])

    wall_start = datetime.datetime.now(datetime.timezone.utc)
    start = time.monotonic()
    with open(log_path, "wb") as logf:
        header = (
            f"# ctxdask: {shlex.join(argv)}\n"
            f"# ctxdask: cwd {cwd}, started {wall_start.isoformat(timespec='seconds')}, "
            f"timeout {timeout:g} s\n"
        )
        logf.write(header.encode())
        logf.flush()
        # started before the program and told its group right after the start
        # (microseconds), so that the program never runs unwatched for long
        watchdog = _start_watchdog(log_path, orphan_grace, mark)
        # no marked process is older than the watchdog (psutil's clock, as the marked ones')
        launched = watchdog.create_time() if watchdog is not None else None
        try:
            # the child gets its own copy of the descriptor; ours closes right away
            proc = subprocess.Popen(
                argv,
                executable=executable,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            if watchdog is not None:
                watchdog.dismiss()
            raise
    tree = ProcessTree(proc.pid, mark=mark, since=launched)
    if watchdog is not None:
        # before anything slow (the cancel check below may import distributed)
        watchdog.watch(tree)
    tree.register()
    timed_out = cancelled = False
    killed: list[int] = []
    try:
        if cancel is None:
            cancel = task_cancel_check()
        deadline = start + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                proc.wait(timeout=max(0.0, min(poll, remaining)))
                break
            except subprocess.TimeoutExpired:
                pass
            tree.snapshot()
            if watchdog is not None:
                watchdog.adopt(tree)
            if time.monotonic() >= deadline:
                timed_out = True
                break
            if cancel is not None and cancel():
                cancelled = True
                break
    finally:
        # every way out (exit, deadline, cancel, an exception in this thread) ends
        # here: nothing the program started may outlive the call
        try:
            killed = tree.stop(grace, reap=proc.poll)
        finally:
            tree.unregister()
            proc.poll()
            if watchdog is not None:
                watchdog.dismiss()
    duration = time.monotonic() - start
    returncode = proc.returncode

    with open(log_path, "ab") as logf:
        if timed_out or cancelled:
            why = "deadline reached" if timed_out else "task cancelled"
            how = "SIGKILL after grace" if killed else "SIGTERM"
            logf.write(f"\n# ctxdask: {why} after {duration:.1f} s; stopped with {how}\n".encode())
        logf.write(f"# ctxdask: exit status {returncode}, {duration:.2f} s\n".encode())
    tail = read_tail(log_path, tail_lines)
    result = RunResult(
        command=tuple(argv),
        cwd=cwd,
        returncode=returncode,
        duration=duration,
        log_path=log_path,
        log_tail=tail,
        timed_out=timed_out,
        cancelled=cancelled,
        pid=proc.pid,
        started=wall_start.isoformat(),
        killed=tuple(killed),
    )
    if timed_out or cancelled or (check and returncode != 0):
        raise _error(name, result, timeout, grace)
    return result


def _start_watchdog(log_path: str, grace: float, mark: str) -> Watchdog | None:
    """Start the watchdog that stops the program if this process dies.

    It appends what it does to the program's log. A watchdog that cannot start
    (no free pid, a broken interpreter) is logged and the program runs without
    one: the deadline and the worker's shutdown plugin still apply.
    """
    try:
        with open(log_path, "ab") as log:
            return Watchdog(grace, log=log, mark=mark)
    except OSError as exc:
        logger.warning("%s: cannot start the watchdog process (%s); the program is not stopped "
                       "if this worker dies", log_path, exc)
        return None


def _error(name: str, result: RunResult, timeout: float, grace: float):
    details = dict(
        command=list(result.command),
        returncode=result.returncode,
        signal=result.signal,
        duration=result.duration,
        log_path=result.log_path,
        log_tail=result.log_tail,
    )
    quoted = "\n".join(result.log_tail.splitlines()[-_MESSAGE_LINES:])
    stopped = (
        f"its process tree got SIGTERM and, {grace:g} s later, SIGKILL"
        if result.killed
        else "its process tree was stopped with SIGTERM"
    )
    if result.timed_out:
        cls = ToolTimeoutError
        what = (
            f"{name} ran past its {timeout:g} s deadline and was stopped after "
            f"{result.duration:.1f} s ({stopped}); if the input is simply large, raise "
            f"tools.timeouts.{name}"
        )
    elif result.cancelled:
        cls = ToolCancelledError
        what = f"{name} was stopped after {result.duration:.1f} s because its task was cancelled ({stopped})"
    elif result.signal is not None:
        cls = ToolFailedError
        what = f"{name} was killed by {_signal_name(result.signal)} after {result.duration:.1f} s"
    else:
        cls = ToolFailedError
        what = f"{name} exited with status {result.returncode} after {result.duration:.1f} s"
    reason = f"{what}; log {result.log_path}; last lines:\n{quoted}"
    return cls(None, reason, **details)
