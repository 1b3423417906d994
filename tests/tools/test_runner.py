"""The runner: deadlines, process-tree kills, errors with log tails."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time

import pytest

from ctxdask.exceptions import (
    ToolCancelledError,
    ToolError,
    ToolFailedError,
    ToolNotFoundError,
    ToolTimeoutError,
)
from ctxdask.tools.processes import is_alive
from ctxdask.tools.runner import read_tail, run

from .conftest import group_alive, standin_pids

ISIS_ID = "P02_001981_1823_XI_02N356W"


@pytest.fixture
def faulty(standins, edr_pair, tmp_path, monkeypatch):
    """Run mroctx2isis (a stand-in) with a requested fault; return (run kwargs, pidfile)."""
    _, edr, _, _ = edr_pair
    work = tmp_path / "work"
    work.mkdir()
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("CTXDASK_STANDIN_PIDFILE", str(pidfile))

    def go(fault, timeout=1.0, grace=1.0, **kwargs):
        monkeypatch.setenv("CTXDASK_STANDIN_FAULT", fault)
        argv = ["mroctx2isis", f"from={edr}", f"to={work / 'out.cub'}"]
        return run(argv, work, timeout, log="mroctx2isis.log", grace=grace, poll_interval=0.05, **kwargs)

    return go, pidfile, work


def test_success_writes_log_and_result(standins, edr_pair, tmp_path):
    _, edr, _, _ = edr_pair
    result = run(["mroctx2isis", f"from={edr}", "to=out.cub"], tmp_path, 30, log="ingest.log")
    assert result.ok and result.returncode == 0 and result.signal is None
    assert (tmp_path / "out.cub").stat().st_size > 65536
    log = (tmp_path / "ingest.log").read_text()
    assert log.startswith("# ctxdask: mroctx2isis from=")
    assert "TEST STAND-IN" in log and "exit status 0" in log
    assert result.log_path == str(tmp_path / "ingest.log")
    assert "TEST STAND-IN" in result.log_tail
    pickle.loads(pickle.dumps(result))


def test_hung_program_and_grandchild_killed_within_timeout_plus_grace(faulty):
    go, pidfile, work = faulty
    timeout, grace = 1.0, 1.0
    t0 = time.monotonic()
    with pytest.raises(ToolTimeoutError) as info:
        go("hang-grandchild", timeout=timeout, grace=grace)
    elapsed = time.monotonic() - t0
    # a sleeping Python process dies of SIGTERM at once: well inside timeout + grace
    assert timeout <= elapsed < timeout + grace, elapsed
    pids = standin_pids(pidfile)
    assert set(pids) == {"main", "child", "grandchild"}
    assert not [p for p in pids.values() if is_alive(p)]
    assert group_alive(pids["main"]) == []
    err = info.value
    assert err.command[0] == "mroctx2isis" and err.signal == signal.SIGTERM
    assert timeout <= err.duration < timeout + grace
    assert "hanging with a child and grandchild" in err.log_tail
    assert "deadline" in str(err) and "tools.timeouts.mroctx2isis" in str(err)
    # the log survives, with the runner's own note at the end
    log = (work / "mroctx2isis.log").read_text()
    assert "grandchild" in log and "deadline reached" in log


def test_program_ignoring_sigterm_is_sigkilled(faulty):
    go, pidfile, _ = faulty
    timeout, grace = 0.5, 0.5
    t0 = time.monotonic()
    with pytest.raises(ToolTimeoutError) as info:
        go("ignore-term", timeout=timeout, grace=grace)
    elapsed = time.monotonic() - t0
    assert timeout + grace <= elapsed < timeout + grace + 1.5, elapsed
    assert info.value.signal == signal.SIGKILL and info.value.returncode == -signal.SIGKILL
    assert "SIGKILL" in str(info.value)
    assert not is_alive(standin_pids(pidfile)["main"])


def test_descendant_that_left_the_group_is_swept(faulty):
    go, pidfile, _ = faulty
    # the middle child orphans its setsid() grandchild after 1 s; the deadline comes later
    with pytest.raises(ToolTimeoutError):
        go("escape-grandchild", timeout=1.5, grace=0.5)
    pids = standin_pids(pidfile)
    assert set(pids) == {"main", "child", "grandchild"}
    assert not [p for p in pids.values() if is_alive(p)], pids


def test_leftover_background_process_swept_after_normal_exit(tmp_path):
    pidfile = tmp_path / "bg.pid"
    script = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('parent done')\n"
    )
    result = run([sys.executable, "-c", script], tmp_path, 30, grace=1, poll_interval=0.05)
    assert result.returncode == 0
    assert not is_alive(int(pidfile.read_text()))


def test_nonzero_exit_raises_with_log_tail(faulty):
    go, _, work = faulty
    with pytest.raises(ToolFailedError) as info:
        go("fail")
    err = info.value
    assert err.returncode == 1 and err.signal is None
    assert "PROGRAMMER ERROR" in err.log_tail and "PROGRAMMER ERROR" in str(err)
    assert "exited with status 1" in str(err)
    assert os.path.exists(err.log_path) and err.log_path == str(work / "mroctx2isis.log")


def test_crash_reports_the_signal(faulty):
    go, _, _ = faulty
    with pytest.raises(ToolFailedError) as info:
        go("crash")
    assert info.value.signal == signal.SIGSEGV
    assert "SIGSEGV" in str(info.value)


def test_check_false_returns_the_failure(faulty):
    go, _, _ = faulty
    result = go("fail", check=False)
    assert result.returncode == 1 and not result.ok and "PROGRAMMER ERROR" in result.log_tail


def test_cancel_callback_stops_the_program(faulty):
    go, pidfile, _ = faulty
    t0 = time.monotonic()
    with pytest.raises(ToolCancelledError):
        go("hang", timeout=60, cancel=lambda: time.monotonic() - t0 > 0.5)
    assert time.monotonic() - t0 < 3
    assert not is_alive(standin_pids(pidfile)["main"])


def test_exception_in_caller_still_kills_the_tree(faulty):
    go, pidfile, _ = faulty

    def interrupt():
        if standin_pids(pidfile).get("grandchild"):
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        go("hang-grandchild", timeout=60, grace=0.5, cancel=interrupt)
    assert not [p for p in standin_pids(pidfile).values() if is_alive(p)]


def test_tool_errors_pickle_whole(faulty):
    go, _, _ = faulty
    with pytest.raises(ToolTimeoutError) as info:
        go("hang", timeout=0.3, grace=0.3)
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is ToolTimeoutError and isinstance(back, TimeoutError)
    for field in ToolError._RUN_FIELDS:
        assert getattr(back, field) == getattr(info.value, field)
    assert str(back) == str(info.value)


def test_missing_program(tmp_path):
    with pytest.raises(ToolNotFoundError) as info:
        run(["no-such-program-ctxdask"], tmp_path, 5)
    assert "ctxdask doctor" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_refuses_shell_text_and_bad_timeouts(tmp_path):
    with pytest.raises(TypeError):
        run("echo hi", tmp_path, 5)
    with pytest.raises(ValueError):
        run(["true"], tmp_path, 0)
    with pytest.raises(NotADirectoryError):
        run(["true"], tmp_path / "missing", 5)


def test_env_is_merged_and_can_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXDASK_TEST_KEEP", "kept")
    monkeypatch.setenv("CTXDASK_TEST_DROP", "dropped")
    code = "import os; print(os.environ.get('CTXDASK_TEST_KEEP'), os.environ.get('CTXDASK_TEST_DROP'), os.environ['X'])"
    result = run([sys.executable, "-c", code], tmp_path, 30, env={"X": "1", "CTXDASK_TEST_DROP": None})
    assert "kept None 1" in result.log_tail


def test_read_tail(tmp_path):
    p = tmp_path / "log"
    p.write_text("\n".join(f"line {i}" for i in range(100)))
    assert read_tail(p, 3) == "line 97\nline 98\nline 99"
    assert read_tail(tmp_path / "missing") == ""
