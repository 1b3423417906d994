"""A program outlives neither its run nor its worker (ctxdask.tools.watchdog).

The worker is a real process SIGKILLed while a stand-in runs: first a small
Python process calling :func:`run`, then a real ``dask worker`` (with its nanny)
of a real ``dask scheduler``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import cloudpickle
import psutil
import pytest
from distributed.scheduler import KilledWorker

from ctxdask.exceptions import ToolTimeoutError
from ctxdask.tools.processes import is_alive
from ctxdask.tools.runner import run

from .conftest import group_alive, standin_path, standin_pids, write_edr

# the helpers below run on dask workers, which cannot import this test module
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ISIS_ID = "P02_001981_1823_XI_02N356W"

#: seconds within which an orphaned program's whole tree must be gone (watchdog-grace is 2 s)
GONE_WITHIN = 6.0


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _watchdogs(worker_pid: int) -> list[int]:
    """Live watchdog processes started by ``worker_pid`` (found by their command line)."""
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        # python watchdog.py WORKER_PID GRACE MARK
        if (proc.info["status"] != psutil.STATUS_ZOMBIE and len(cmd) >= 4
                and cmd[-4].endswith("watchdog.py") and cmd[-3] == str(worker_pid)):
            out.append(proc.info["pid"])
    return out


def _children() -> set[int]:
    """Pids of this process's live descendants (a module's cluster may hold some)."""
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


def _survivors(pids: dict[str, int]) -> list[int]:
    alive = [p for p in pids.values() if is_alive(p)]
    return alive + group_alive(pids["main"])


#: the roles each fault leaves running, and how long before the worker is killed
FAULTS = {
    "ignore-term-child": ({"main", "child"}, 0.0),
    "hang-grandchild": ({"main", "child", "grandchild"}, 0.0),
    # the child exits after 1 s, leaving a grandchild in a session of its own: the runner's
    # record finds it only if a poll came in that second (not under load, nor while the runner
    # imports distributed for its cancel check: issue 19, break 13); the program's mark always does
    "escape-grandchild": ({"main", "child", "grandchild"}, 1.5),
}

FAKE_WORKER = textwrap.dedent("""
    import sys
    from ctxdask.tools.runner import run
    run(["mroctx2isis", "from=" + sys.argv[2], "to=out.cub"], sys.argv[1], 600, poll_interval=0.05)
""")


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_program_tree_dies_with_a_sigkilled_worker(fault, tmp_path):
    roles, settle = FAULTS[fault]
    pidfile = tmp_path / "pids"
    env = dict(os.environ, PATH=standin_path(), CTXDASK_STANDIN_FAULT=fault,
               CTXDASK_STANDIN_PIDFILE=str(pidfile))
    env.pop("CTXDASK_STANDIN_FAULT_PROGRAMS", None)
    edr = write_edr(tmp_path / f"{ISIS_ID}.IMG", ISIS_ID)
    worker = subprocess.Popen([sys.executable, "-c", FAKE_WORKER, str(tmp_path), str(edr)], env=env)
    try:
        assert _wait_for(lambda: set(standin_pids(pidfile)) == roles, 30), standin_pids(pidfile)
        time.sleep(settle + 0.3)  # a few polls of the runner
        pids = standin_pids(pidfile)
        watchdogs = _watchdogs(worker.pid)
        assert len(watchdogs) == 1, watchdogs
        assert _survivors(pids)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    t0 = time.monotonic()
    assert _wait_for(lambda: not _survivors(pids), GONE_WITHIN), (fault, _survivors(pids))
    gone_after = time.monotonic() - t0
    assert _wait_for(lambda: not is_alive(watchdogs[0]), 2.0), "the watchdog outlived its program"
    log = (tmp_path / "run.log").read_text()
    assert f"worker {worker.pid} is gone; stopping process group {pids['main']}" in log, log
    if fault == "ignore-term-child":  # SIGTERM ignored: SIGKILL after watchdog-grace
        assert 1.5 < gone_after, gone_after
        assert "with SIGKILL after 2 s" in log, log
    else:
        assert "with SIGTERM" in log, log


#: a program that detaches a daemon the classic way (fork, setsid, fork, the middle one exits
#: at once): microseconds in which no poll can see the daemon as a descendant of the program
DAEMONIZER = textwrap.dedent("""
    import os, sys, time
    pidfile, mode = sys.argv[1], sys.argv[2]

    def record(role):
        with open(pidfile, "a") as f:
            f.write(f"{role} {os.getpid()}\\n")

    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            record("daemon")
            while True:
                time.sleep(0.5)
        os._exit(0)
    while "daemon" not in open(pidfile).read() if os.path.exists(pidfile) else True:
        time.sleep(0.01)
    record("main")
    while mode == "hang":
        time.sleep(0.5)
""")

#: the worker names nothing to its watchdog: it dies (once told to) after starting the program
SILENT_WORKER = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    from ctxdask.tools.processes import new_mark
    from ctxdask.tools.watchdog import Watchdog
    folder, daemonizer = sys.argv[1], sys.argv[2]
    mark = new_mark()
    with open(os.path.join(folder, "run.log"), "ab") as log:
        dog = Watchdog(2.0, log=log, mark=mark)
    subprocess.Popen([sys.executable, daemonizer, os.path.join(folder, "pids"), "hang"],
                     env=dict(os.environ, **{mark: "1"}), start_new_session=True)
    while "main" not in (open(os.path.join(folder, "pids")).read()
                         if os.path.exists(os.path.join(folder, "pids")) else ""):
        time.sleep(0.01)
    while not os.path.exists(os.path.join(folder, "go")):
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    """Should a test fail, the programs it recorded (``tmp_path / "pids"``) do not run on."""
    yield
    for pid in standin_pids(tmp_path / "pids").values():
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def daemonizer(tmp_path):
    """The daemonizer script."""
    path = tmp_path / "daemonizer.py"
    path.write_text(DAEMONIZER)
    return str(path)


@pytest.mark.parametrize("named", [True, False], ids=["runner", "worker-dies-before-naming-it"])
def test_daemon_detached_before_any_poll_dies_with_a_sigkilled_worker(named, daemonizer, tmp_path):
    """Found by its mark, not by a poll: the runner never polls (60 s), or never names the program."""
    pidfile = tmp_path / "pids"
    if named:
        code = ["-c", "import sys; from ctxdask.tools.runner import run; "
                      "run([sys.executable, sys.argv[2], sys.argv[3], 'hang'], sys.argv[1], 600, poll_interval=60)",
                str(tmp_path), daemonizer, str(pidfile)]
    else:
        code = ["-c", SILENT_WORKER, str(tmp_path), daemonizer]
    worker = subprocess.Popen([sys.executable, *code])
    try:
        assert _wait_for(lambda: set(standin_pids(pidfile)) == {"main", "daemon"}, 60), standin_pids(pidfile)
        pids = standin_pids(pidfile)
        assert os.getsid(pids["daemon"]) != os.getsid(pids["main"]) and _survivors(pids)
        watchdogs = _watchdogs(worker.pid)
        assert len(watchdogs) == 1, watchdogs
    finally:
        if named:
            worker.send_signal(signal.SIGKILL)
        else:
            (tmp_path / "go").touch()
        worker.wait(60)
    assert _wait_for(lambda: not _survivors(pids), GONE_WITHIN), _survivors(pids)
    assert _wait_for(lambda: not is_alive(watchdogs[0]), 2.0), "the watchdog outlived its program"
    log = (tmp_path / "run.log").read_text()
    what = f"process group {pids['main']}" if named else "the processes marked CTXDASK_RUN_"
    assert f"worker {worker.pid} is gone; stopping {what}" in log, log


def test_daemon_detached_before_any_poll_does_not_outlive_the_run(daemonizer, tmp_path):
    pidfile = tmp_path / "pids"
    result = run([sys.executable, daemonizer, str(pidfile), "exit"], tmp_path, 60, poll_interval=60)
    pids = standin_pids(pidfile)
    assert result.ok and set(pids) == {"main", "daemon"}
    assert pids["daemon"] in result.killed or not is_alive(pids["daemon"])
    assert not _survivors(pids)


def test_watchdog_stops_nothing_and_is_reaped_on_every_normal_path(standins, tmp_path, monkeypatch):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("CTXDASK_STANDIN_PIDFILE", str(pidfile))
    me = os.getpid()
    before = _children()
    # success
    assert run(["true"], tmp_path, 60, poll_interval=0.05).ok
    assert not _watchdogs(me) and _children() == before
    # deadline: the runner itself stops the tree (SIGKILL after grace for ignore-term-child)
    monkeypatch.setenv("CTXDASK_STANDIN_FAULT", "ignore-term-child")
    edr = write_edr(tmp_path / f"{ISIS_ID}.IMG", ISIS_ID)
    with pytest.raises(ToolTimeoutError) as info:
        run(["mroctx2isis", f"from={edr}", "to=out.cub"], tmp_path, 1.0, grace=0.5, poll_interval=0.05,
            log="timeout.log")
    assert "SIGKILL" in str(info.value)
    pids = standin_pids(pidfile)
    assert set(pids) == {"main", "child"} and not _survivors(pids)
    assert not _watchdogs(me) and _children() == before
    assert "# ctxdask watchdog" not in (tmp_path / "timeout.log").read_text()
    # an exception in the caller (here from the cancel check)
    monkeypatch.setenv("CTXDASK_STANDIN_FAULT", "hang")

    def boom():
        raise RuntimeError("caller failed")

    with pytest.raises(RuntimeError):
        run(["mroctx2isis"], tmp_path, 60, grace=0.5, poll_interval=0.05, cancel=boom)
    assert not _watchdogs(me) and _children() == before


def test_program_that_cannot_start_leaves_no_watchdog(tmp_path):
    before = _children()
    (tmp_path / "prog").write_text("#!/nonexistent/interpreter\n")
    (tmp_path / "prog").chmod(0o755)
    with pytest.raises(OSError):
        run([str(tmp_path / "prog")], tmp_path, 10)
    assert not _watchdogs(os.getpid()) and _children() == before


# ------------------------------------------------------ a real dask cluster
def _dask_cli() -> str:
    found = os.path.join(os.path.dirname(sys.executable), "dask")
    return found if os.access(found, os.X_OK) else (shutil.which("dask") or pytest.skip("no dask CLI"))


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A ``dask scheduler`` and one ``dask worker`` (with nanny) as separate processes."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("cluster")
    scheduler_file = folder / "scheduler.json"
    # a task whose worker died is not run again (KilledWorker at once)
    env = dict(os.environ, PATH=standin_path(), DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    logs = open(folder / "cluster.log", "wb")
    procs = [subprocess.Popen([_dask_cli(), "scheduler", "--scheduler-file", str(scheduler_file),
                               "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0"],
                              env=env, stdout=logs, stderr=logs)]
    try:
        assert _wait_for(scheduler_file.exists, 60), (folder / "cluster.log").read_text()
        procs.append(subprocess.Popen(
            [_dask_cli(), "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "2",
             "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(folder / "worker")],
            env=env, stdout=logs, stderr=logs))
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
            yield client
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logs.close()


def _worker_children() -> list[str]:
    return [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]


@pytest.mark.cluster
@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", ["ignore-term-child", "hang-grandchild"])
def test_sigkilled_dask_worker_leaves_no_orphan(dask_cluster, fault, tmp_path):
    client = dask_cluster
    client.wait_for_workers(1, timeout=60)  # the nanny restarts the worker killed before
    pidfile = tmp_path / "pids"
    roles = FAULTS[fault][0]
    env = {"CTXDASK_STANDIN_FAULT": fault, "CTXDASK_STANDIN_PIDFILE": str(pidfile)}
    edr = write_edr(tmp_path / f"{ISIS_ID}.IMG", ISIS_ID)
    future = client.submit(run, ["mroctx2isis", f"from={edr}", "to=out.cub"], str(tmp_path), 600,
                           env=env, poll_interval=0.05, pure=False)
    assert _wait_for(lambda: set(standin_pids(pidfile)) == roles, 60), standin_pids(pidfile)
    time.sleep(0.3)
    pids = standin_pids(pidfile)
    (worker_pid,) = client.run(os.getpid).values()
    assert psutil.Process(pids["main"]).ppid() == worker_pid
    assert len(_watchdogs(worker_pid)) == 1
    os.kill(worker_pid, signal.SIGKILL)
    t0 = time.monotonic()
    assert _wait_for(lambda: not _survivors(pids), GONE_WITHIN), (fault, _survivors(pids))
    print(f"{fault}: program tree gone {time.monotonic() - t0:.2f} s after SIGKILL of the worker")
    assert _wait_for(lambda: not _watchdogs(worker_pid), 2.0)
    log = (tmp_path / "run.log").read_text()
    assert f"worker {worker_pid} is gone; stopping process group {pids['main']}" in log, log
    with pytest.raises(KilledWorker):
        future.result(timeout=60)


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_deadline_on_a_dask_worker_leaves_no_watchdog(dask_cluster, tmp_path):
    client = dask_cluster
    client.wait_for_workers(1, timeout=60)
    pidfile = tmp_path / "pids"
    env = {"CTXDASK_STANDIN_FAULT": "ignore-term-child", "CTXDASK_STANDIN_PIDFILE": str(pidfile)}
    edr = write_edr(tmp_path / f"{ISIS_ID}.IMG", ISIS_ID)
    future = client.submit(run, ["mroctx2isis", f"from={edr}", "to=out.cub"], str(tmp_path), 1.0,
                           env=env, grace=0.5, poll_interval=0.05, pure=False)
    with pytest.raises(ToolTimeoutError):
        future.result(timeout=60)
    pids = standin_pids(pidfile)
    assert set(pids) == {"main", "child"} and not _survivors(pids)
    assert list(client.run(_worker_children).values()) == [[]]
