"""Recipe steps as dask tasks.

:func:`run_step` executes one :class:`~ctxdask.tools.recipe.StepCall` on a
worker:

- it works in ``<root>/<key>.tmp-<random>`` (root: the ``tools.work-dir``
  setting, else the worker's local directory, else the system temp dir), stages
  the inputs there (symlinks; copies for programs that change them in place),
  runs the program with :func:`ctxdask.tools.runner.run`, checks every declared
  output, writes a manifest and renames the directory to ``<root>/<key>``;
- a rerun whose manifest fingerprint (argv, files, options, inputs) matches
  returns the recorded result without running anything, so retried or
  resubmitted tasks are idempotent;
- a failure leaves ``<root>/<key>.failed`` with the log and raises the
  :class:`~ctxdask.exceptions.ToolError` (picklable: it reaches the client);
- it returns a small :class:`StepResult` (paths, timings), never data.

:func:`step_graph` turns calls into :class:`dask.delayed.Delayed` objects with
deterministic keys and the steps' worker resources; :func:`submit_steps` does
the same with futures on a :class:`distributed.Client`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ctxdask.exceptions import ToolError, ToolFailedError
from ctxdask.settings import Settings
from ctxdask.settings import current as current_settings
from ctxdask.tools.cancel import task_cancel_check
from ctxdask.tools.identity import content_identity
from ctxdask.tools.outputs import check_output
from ctxdask.tools.owner import write_owner
from ctxdask.tools.recipe import Ref, StepCall
from ctxdask.tools.runner import run

__all__ = ["RunOptions", "StepResult", "cached_result", "expected_result", "run_step", "step_graph", "submit_steps",
           "work_root"]

MANIFEST = "ctxdask-step.json"


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Runner settings, read on the client and sent to workers with each task.

    Build with :meth:`from_config`; ``None`` fields fall back to the runner's
    defaults on the worker.
    """

    work_dir: str | None = None
    grace: float | None = None
    poll_interval: float | None = None
    tail_lines: int | None = None
    cancel_event: str | None = None
    timeouts: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RunOptions:
        """The runner's part of ``settings`` (``tools.*``); ``overrides`` replace fields."""
        tools = settings.tools
        values = dict(work_dir=tools.work_dir, grace=tools.grace_period, poll_interval=tools.poll_interval,
                      tail_lines=tools.log_tail_lines)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_config(cls, **overrides: Any) -> RunOptions:
        """Read ``ctxdask.tools.*`` now; ``overrides`` replace fields."""
        return cls.from_settings(current_settings(), **overrides)


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What a finished step produced (small; travels back to the client).

    Attributes
    ----------
    key, step, program : str
    workdir : str
        The step's final work directory on the worker.
    outputs : dict
        role -> absolute path of each output (on the worker).
    log_path : str
    returncode : int
    duration : float
        Seconds the program ran (of the original run when ``cached``).
    started : str
        ISO 8601 UTC start of the run.
    host : str
        Worker host name.
    cached : bool
        True when an earlier identical run was reused.
    fingerprint : str
        Hash of everything that determines the outputs.
    """

    key: str
    step: str
    program: str
    workdir: str
    outputs: Mapping[str, str]
    log_path: str
    returncode: int
    duration: float
    started: str
    host: str
    cached: bool
    fingerprint: str

    def to_dict(self) -> dict:
        """Plain JSON-friendly dict (for tracking databases)."""
        return dataclasses.asdict(self)


def _this_worker():
    """The dask worker of this process, also outside a task (``client.run``), else ``None``.

    ``get_worker()`` only knows the worker inside a task (a context variable);
    a function sent with ``Client.run`` runs outside any task, so it falls back
    to the worker instance of the process when there is exactly one.
    """
    try:
        from distributed import get_worker
        from distributed.worker import Worker
    except ImportError:
        return None
    try:
        return get_worker()
    except ValueError:
        workers = list(Worker._instances)
        return workers[0] if len(workers) == 1 else None


def work_root(configured: str | None = None) -> str:
    """The folder under which step work dirs live on this process.

    ``configured`` (the ``tools.work-dir`` setting) wins; inside a dask worker
    it is ``<worker.local_directory>/ctxdask-steps``; elsewhere the system temp
    dir.
    """
    if configured:
        root = os.fspath(configured)
    else:
        worker = _this_worker()
        if worker is not None:
            root = os.path.join(worker.local_directory, "ctxdask-steps")
        else:
            root = os.path.join(tempfile.gettempdir(), "ctxdask-steps")
    os.makedirs(root, exist_ok=True)
    return root


def _resolve_inputs(call: StepCall, upstream: Mapping[str, StepResult]) -> tuple[dict, dict]:
    """Return (role -> source path, role -> identity used in the fingerprint)."""
    paths, identity = {}, {}
    for role, staged in call.inputs.items():
        src = staged.source
        if isinstance(src, Ref):
            try:
                result = upstream[src.key]
            except KeyError:
                raise ValueError(f"{call.key}: the result of {src.key} was not passed in") from None
            paths[role] = result.outputs[src.role]
            identity[role] = {"step": src.key, "fingerprint": result.fingerprint}
        else:
            path = os.fspath(src)
            if not os.path.exists(path):
                raise ToolFailedError(path, f"input of {call.key} does not exist on {socket.gethostname()}")
            paths[role] = os.path.abspath(path)
            # by content: the same file copied to every host gives every host the same fingerprint
            identity[role] = content_identity(path)
    return paths, identity


def _fingerprint(call: StepCall, identity: Mapping) -> str:
    blob = json.dumps(
        {"argv": list(call.argv), "files": dict(call.files), "options": dict(call.options),
         "outputs": dict(call.outputs), "inputs": {r: i.name for r, i in call.inputs.items()},
         "sources": identity, "env": dict(call.env)},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _cached(final: str, fingerprint: str) -> StepResult | None:
    try:
        with open(os.path.join(final, MANIFEST)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if record.get("fingerprint") != fingerprint:
        return None
    outputs = {role: os.path.join(final, rel) for role, rel in record["outputs"].items()}
    try:
        for path in outputs.values():
            check_output(path)
    except ValueError:
        return None
    return StepResult(
        key=record["key"], step=record["step"], program=record["program"], workdir=final,
        outputs=outputs, log_path=os.path.join(final, record["log"]),
        returncode=record["returncode"], duration=record["duration"], started=record["started"],
        host=socket.gethostname(), cached=True, fingerprint=fingerprint,
    )


def _stage(workdir: str, call: StepCall, paths: Mapping[str, str]) -> None:
    for role, staged in call.inputs.items():
        target = os.path.join(workdir, staged.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if staged.copy:
            shutil.copy2(paths[role], target)
        else:
            os.symlink(paths[role], target)
    for name, text in call.files.items():
        with open(os.path.join(workdir, name), "w") as f:
            f.write(text)
    for rel in call.outputs.values():
        os.makedirs(os.path.dirname(os.path.join(workdir, rel)), exist_ok=True)


def _relocated(err: ToolError, old: str, new: str) -> ToolError:
    """The same error with paths moved from directory ``old`` to ``new``."""
    fields = {k: getattr(err, k, None) for k in ToolError._RUN_FIELDS}
    if fields["log_path"]:
        fields["log_path"] = fields["log_path"].replace(old, new, 1)
    path = err.path.replace(old, new, 1) if err.path else err.path
    return type(err)(path, err.reason.replace(old, new), **fields)


def _publish(tmp: str, final: str) -> None:
    """Move the finished ``tmp`` dir to ``final``, replacing a stale one atomically enough."""
    if os.path.lexists(final):
        # a stale or different earlier run: move it aside first, then remove it
        aside = f"{final}.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.rename(tmp, final)


def expected_result(call: StepCall, *upstream: StepResult) -> StepResult:
    """A result of ``call`` not made (yet): no files, but the fingerprint :func:`run_step` would give it.

    Enough to look for the step's result, or a later step's, by fingerprint
    (:func:`cached_result` reads only the fingerprints of upstream results).
    """
    _, identity = _resolve_inputs(call, {r.key: r for r in upstream})
    return StepResult(key=call.key, step=call.step, program=call.program, workdir="",
                      outputs={role: "" for role in call.outputs}, log_path="", returncode=0, duration=0.0,
                      started="", host="", cached=False, fingerprint=_fingerprint(call, identity))


def cached_result(call: StepCall, *upstream: StepResult, options: RunOptions | None = None) -> StepResult | None:
    """What :func:`run_step` would return from its manifest, without running anything; else None.

    A batch resuming after its driver died uses this for steps its database
    records as done: their finished work dir (same key, same fingerprint of
    argv, options and inputs, every output complete) is reused as it is.
    """
    options = options or RunOptions.from_config()
    paths, identity = _resolve_inputs(call, {r.key: r for r in upstream})
    return _cached(os.path.join(work_root(options.work_dir), call.key), _fingerprint(call, identity))


def run_step(call: StepCall, *upstream: StepResult, options: RunOptions | None = None) -> StepResult:
    """Run one step in its own work dir and return what it produced.

    Parameters
    ----------
    call : StepCall
        The rendered step.
    *upstream : StepResult
        Results of the steps named in ``call.upstream`` (dask passes them in).
    options : RunOptions, optional
        Runner settings read on the client; default: read here.

    Returns
    -------
    StepResult

    Raises
    ------
    ToolError
        The program is missing, failed, timed out or was cancelled, or exited 0
        without producing a complete output. ``<root>/<key>.failed`` keeps the log.
    """
    options = options or RunOptions.from_config()
    by_key = {r.key: r for r in upstream}
    paths, identity = _resolve_inputs(call, by_key)
    fingerprint = _fingerprint(call, identity)
    root = work_root(options.work_dir)
    final = os.path.join(root, call.key)
    cached = _cached(final, fingerprint)
    if cached is not None:
        return cached

    tmp = os.path.join(root, f"{call.key}.tmp-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    write_owner(tmp)  # whose it is: a later run removes it only once this process is dead
    log_name = f"{call.step}.log"
    argv = list(call.argv)
    if call.kind == "native":
        argv[0] = sys.executable  # the worker's own interpreter, with ctxdask importable
    timeout = float(options.timeouts.get(call.step, call.timeout))
    started = datetime.datetime.now(datetime.timezone.utc).isoformat()
    t0 = time.monotonic()
    try:
        _stage(tmp, call, paths)
        result = run(
            argv, tmp, timeout, env=call.env, log=log_name, grace=options.grace,
            poll_interval=options.poll_interval, tail_lines=options.tail_lines,
            cancel=task_cancel_check(options.cancel_event),
        )
        for role, rel in call.outputs.items():
            try:
                check_output(os.path.join(tmp, rel))
            except ValueError as why:
                raise ToolFailedError(
                    os.path.join(tmp, rel),
                    f"{call.step} exited 0 but its {role} output is {why}; "
                    f"log {result.log_path}; last lines:\n{result.log_tail}",
                    command=list(argv), returncode=result.returncode, duration=result.duration,
                    log_path=result.log_path, log_tail=result.log_tail,
                ) from None
        record = {
            "key": call.key, "step": call.step, "program": call.program,
            "argv": argv, "outputs": dict(call.outputs), "log": log_name,
            "returncode": result.returncode, "duration": result.duration, "started": started,
            "fingerprint": fingerprint, "host": socket.gethostname(),
        }
        with open(os.path.join(tmp, MANIFEST + ".part"), "w") as f:
            json.dump(record, f, indent=1)
        os.replace(os.path.join(tmp, MANIFEST + ".part"), os.path.join(tmp, MANIFEST))
        _publish(tmp, final)
    except ToolError as err:
        failed = f"{final}.failed"
        shutil.rmtree(failed, ignore_errors=True)
        try:
            os.rename(tmp, failed)
        except OSError:
            raise err from None
        raise _relocated(err, tmp, failed) from None
    except BaseException:
        # staging errors, KeyboardInterrupt...: keep the log if there is one, then re-raise
        if os.path.isdir(tmp):
            failed = f"{final}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            os.rename(tmp, failed)
        raise
    return StepResult(
        key=call.key, step=call.step, program=call.program, workdir=final,
        outputs={role: os.path.join(final, rel) for role, rel in call.outputs.items()},
        log_path=os.path.join(final, log_name), returncode=result.returncode,
        duration=time.monotonic() - t0, started=started, host=socket.gethostname(),
        cached=False, fingerprint=fingerprint,
    )


def _ordered(calls: Iterable[StepCall], known: Iterable[str] = ()) -> list[StepCall]:
    calls = list(calls)
    keys = {c.key for c in calls} | set(known)
    missing = {k for c in calls for k in c.upstream if k not in keys}
    if missing:
        raise ValueError(f"upstream steps missing from the calls: {sorted(missing)}")
    return calls


def step_graph(calls: Iterable[StepCall], options: RunOptions | None = None) -> dict:
    """Build :class:`dask.delayed.Delayed` objects for ``calls`` (key -> Delayed).

    Each task's key is the call's deterministic key; its worker resources are
    attached as a dask annotation (honoured by the distributed scheduler;
    with ``dask.config.set({"optimization.fuse.active": False})`` nothing fuses
    them away). Calls must come in dependency order, as the recipe renders them.
    """
    import dask

    options = options or RunOptions.from_config()
    out: dict[str, Any] = {}
    for call in _ordered(calls):
        deps = [out[k] for k in call.upstream]
        annotations = {"resources": dict(call.resources)} if call.resources else {}
        with dask.annotate(**annotations):
            out[call.key] = dask.delayed(run_step, pure=False)(
                call, *deps, options=options, dask_key_name=call.key
            )
    return out


def submit_steps(
    client,
    calls: Iterable[StepCall],
    options: RunOptions | None = None,
    *,
    upstream: Mapping[str, Any] | None = None,
    **kwargs,
) -> dict:
    """Submit ``calls`` to a :class:`distributed.Client`; return key -> Future.

    ``upstream`` maps keys of steps submitted earlier (e.g. the image steps a
    pair needs) to their futures. ``retries`` and other
    :meth:`~distributed.Client.submit` keywords pass through. Futures are keyed
    by the calls' deterministic keys, so submitting the same step twice reuses
    the running or finished task.
    """
    options = options or RunOptions.from_config()
    futures: dict[str, Any] = dict(upstream or {})
    calls = _ordered(calls, futures)
    for call in calls:
        deps = [futures[k] for k in call.upstream]
        futures[call.key] = client.submit(
            run_step, call, *deps, options=options, key=call.key, pure=False,
            resources=dict(call.resources) or None, **kwargs,
        )
    return {c.key: futures[c.key] for c in calls}
