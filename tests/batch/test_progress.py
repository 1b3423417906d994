"""The batch's progress display: a bar on a terminal, plain lines in a log file."""

from __future__ import annotations

import io
import re
import time

from ctxdask.batch.progress import Progress
from ctxdask.settings import current


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ctxdask batch: ")


def _run(progress: Progress, pairs: int) -> None:
    for i in range(pairs):
        progress.set_running(3)
        progress.finish_pair("done" if i % 5 else "failed", f"L{i}-R{i}")
    progress.close()


def test_a_log_file_gets_a_plain_timestamped_line_per_finished_pair_never_redraws():
    log = io.StringIO()
    progress = Progress(48, dashboard="http://127.0.0.1:8787/status", file=log, interval=0.0, log_interval=3600)
    _run(progress, 48)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    # the dashboard, then one line per pair, each naming it; nothing more at the end (nothing new to say)
    assert lines[0] == "ctxdask batch: dashboard http://127.0.0.1:8787/status"
    assert len(lines) == 49 and all(STAMP.match(line) for line in lines[1:])
    assert "pair L0-R0 failed; 1/48 pairs (0 done, 1 not done), 3 steps running" in lines[1]
    assert "pair L47-R47 done; 48/48 pairs (38 done, 10 not done)" in lines[-1]


def test_a_log_file_gets_a_line_every_interval_while_no_pair_finishes():
    log = io.StringIO()
    progress = Progress(4, file=log, log_interval=0.2)
    progress.set_running(2)  # within the interval: no line
    assert log.getvalue() == ""
    time.sleep(0.25)
    progress.set_running(2)
    progress.finish_pair("done", "A-B")
    lines = log.getvalue().splitlines()
    assert [line.split(": ", 1)[1].split(", ")[0] for line in lines] == ["0/4 pairs (0 done", "pair A-B done; 1/4 pairs (1 done"]
    assert lines[1].endswith("left")  # an estimate of the rest
    progress.set_running(1)  # the pair's line restarted the interval
    progress.close()  # and nothing new to say at the end
    assert len(log.getvalue().splitlines()) == 2


def test_the_interval_is_a_setting():
    assert current().batch.progress_interval == 60


def test_a_terminal_gets_a_bar():
    term = _Terminal()
    _run(Progress(10, file=term, interval=0.0), 10)
    assert "\r" in term.getvalue() and "10/10" in term.getvalue()


def test_disabled_shows_nothing_and_counts():
    log = io.StringIO()
    progress = Progress(3, file=log, enabled=False)
    _run(progress, 3)
    assert log.getvalue() == "" and (progress.done, progress.failed) == (2, 1)
