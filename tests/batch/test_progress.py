"""The batch's progress display: a bar on a terminal, plain lines in a log file."""

from __future__ import annotations

import io

from ctxdask.batch.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(progress: Progress, pairs: int) -> None:
    for i in range(pairs):
        progress.set_running(3)
        progress.finish_pair("done" if i % 5 else "failed")
    progress.close()


def test_a_log_file_gets_a_few_plain_lines_never_redraws():
    log = io.StringIO()
    progress = Progress(48, dashboard="http://127.0.0.1:8787/status", file=log, interval=0.0, log_interval=3600)
    _run(progress, 48)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    # the dashboard, then one line at the end (no line is due within the hour before it)
    assert lines[0] == "ctxdask batch: dashboard http://127.0.0.1:8787/status"
    assert len(lines) == 2 and lines[1].startswith("ctxdask batch: 48/48 pairs (38 done, 10 not done), 3 steps running")


def test_a_log_file_gets_a_line_per_interval_while_pairs_finish():
    log = io.StringIO()
    progress = Progress(4, file=log, log_interval=0.0)
    progress.finish_pair("done")
    progress.set_running(2)  # nothing finished since: no line
    progress.finish_pair("done")
    lines = log.getvalue().splitlines()
    assert [line.split(", ")[0] for line in lines] == ["ctxdask batch: 1/4 pairs (1 done", "ctxdask batch: 2/4 pairs (2 done"]
    assert lines[0].endswith("left")  # an estimate of the rest
    progress.close()
    assert len(log.getvalue().splitlines()) == 2  # nothing new to say at the end


def test_a_terminal_gets_a_bar():
    term = _Terminal()
    _run(Progress(10, file=term, interval=0.0), 10)
    assert "\r" in term.getvalue() and "10/10" in term.getvalue()


def test_disabled_shows_nothing_and_counts():
    log = io.StringIO()
    progress = Progress(3, file=log, enabled=False)
    _run(progress, 3)
    assert log.getvalue() == "" and (progress.done, progress.failed) == (2, 1)
