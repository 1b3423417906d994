"""What the batch fault tests share (tests/batch/test_faults*.py): eight images in eight pairs, the
``ctxdask batch`` driver as a subprocess, waiting on its database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ..tools.conftest import standin_path
from .conftest import query

# (each pair makes COGs, QA and a STAC item: a few seconds per pair on a loaded 2-core machine)
MARKS = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

IMAGES = [f"B{10 + i:02d}_0{13341 + i:05d}_1010_XN_79S172W" for i in range(8)]
PAIRS = [(IMAGES[i], IMAGES[j]) for i, j in [(0, 1), (0, 2), (1, 3), (2, 3), (4, 5), (5, 6), (6, 7), (4, 7)]]


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - the database may not exist yet
            pass
        time.sleep(0.1)
    return False


def done_pairs(db) -> int:
    return query(db, "SELECT count(*) FROM pairs WHERE status = 'done'")[0][0]


def driver(tmp_path, *extra, sleep="0.4"):
    env = dict(os.environ, PATH=standin_path(), CTXDASK_STANDIN_SLEEP=sleep,
               DASK_DISTRIBUTED__LOGGING__DISTRIBUTED="error",
               DASK_CTXDASK__BATCH__SCRATCH=str(tmp_path / "scratch"))  # not left in the system temp dir
    return subprocess.Popen(
        [sys.executable, "-m", "ctxdask", "batch", str(tmp_path / "pairs.txt"), "--out", str(tmp_path / "out"),
         "--edr-dir", str(tmp_path / "edr"), "--local", "2", "--no-progress", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def started_steps(db) -> dict:
    return dict(query(db, "SELECT key, started FROM steps WHERE status = 'done'"))


def interrupt(proc: subprocess.Popen, ready, sig: int, seconds: float = 120, again: float | None = None) -> str:
    """Send ``sig`` to the driver ``proc`` once ``ready()`` holds, and once more ``again`` seconds later
    if given; its output (the group killed if it does not end, or ``ready`` never holds)."""
    try:
        if not wait_for(ready, seconds):
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"not ready in {seconds:g} s: {proc.communicate(timeout=30)[0][-3000:]}")
        proc.send_signal(sig)
        if again is not None:
            time.sleep(again)
            proc.send_signal(sig)
        return proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def assert_interrupted(db, proc: subprocess.Popen, output: str) -> None:
    """The driver ended as interrupted (exit status 130), with nothing left running or pending."""
    assert proc.returncode == 130, output[-3000:]
    assert query(db, "SELECT status FROM runs") == [("interrupted",)]
    assert query(db, "SELECT count(*) FROM steps WHERE status IN ('running', 'pending')") == [(0,)]
    # distributed's complaints about a cluster closed under running tasks are not the user's business
    noise = [line for line in output.splitlines() if "Traceback" in line or " - ERROR - " in line]
    assert noise == [], output[-3000:]
