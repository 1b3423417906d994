"""Owner markers: a dead run's scratch is told from a live run's by pid and process start time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ctxdask.tools.owner import MARKER, owner_alive, process_start, read_owner, write_owner


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_owner_is_alive_and_a_dead_one_is_not(tmp_path):
    record = write_owner(tmp_path, run_id=7)
    assert read_owner(tmp_path) == record and record["run_id"] == 7 and record["pid"] == os.getpid()
    assert owner_alive(record) is True
    assert owner_alive({**record, "pid": _dead_pid()}) is False
    # the pid of a live process, but started at another time: the owner died and its pid was reused
    if process_start(os.getpid()) is not None:
        assert owner_alive({**record, "start": record["start"] - 1}) is False
    assert owner_alive({**record, "host": "another-host"}) is None  # cannot tell: left alone


def test_no_or_a_broken_marker_reads_as_none(tmp_path):
    assert read_owner(tmp_path) is None
    (tmp_path / MARKER).write_text("{not json")
    assert read_owner(tmp_path) is None
    (tmp_path / MARKER).write_text(json.dumps({"pid": "x"}))
    assert read_owner(tmp_path) is None
