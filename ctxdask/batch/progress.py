"""A live progress display for a batch: pairs done/failed/running and the ETA.

Counts are pairs, the unit users plan with; the dashboard link is printed once
above. Where it is shown decides how:

- a terminal: a :mod:`tqdm` bar redrawn in place;
- Jupyter: tqdm's widget (``tqdm.auto`` picks it);
- anything else (stderr sent to a file by a cluster job, ``nohup`` or systemd):
  plain lines, each with its UTC time: one per finished pair (which, how it
  ended, the counts), one every ``log_interval`` seconds (``batch.progress-interval``)
  while nothing finishes, and one at the end. A bar redrawn with carriage
  returns would write one long line per redraw into the log.

With ``enabled=False`` nothing is shown and the counts are still kept (the
summary uses them).
"""

from __future__ import annotations

import datetime
import sys
import time

__all__ = ["Progress"]


def _seconds(value: float) -> str:
    value = int(round(value))
    hours, rest = divmod(value, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _interactive(file) -> bool:
    """Whether a bar can be redrawn: a terminal, or a Jupyter kernel's output (a widget, or text redrawn in place)."""
    from tqdm.auto import tqdm

    if tqdm.__module__.startswith("tqdm.notebook") or type(file).__module__.startswith("ipykernel"):
        return True
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class Progress:
    """Pair counts of a running batch, shown as a bar or as log lines.

    Parameters
    ----------
    total : int
        Pairs this run works on.
    already : int
        Pairs finished by earlier runs (shown, not counted in the bar).
    dashboard : str, optional
        The dask dashboard link.
    enabled : bool
    interval : float
        Minimum seconds between redraws of a bar.
    file : file-like, optional
        Where to show it (default: stderr).
    log_interval : float
        Seconds between two lines, when ``file`` is not interactive, while no pair finishes.
    """

    def __init__(self, total: int, *, already: int = 0, dashboard: str | None = None,
                 enabled: bool = True, interval: float = 0.5, file=None, log_interval: float = 60.0):
        self.total = total
        self.done = self.failed = self.running = 0
        self.interval = interval
        self.log_interval = log_interval
        self._last = 0.0
        self._bar = None
        self._file = None
        self._started = time.monotonic()
        self._logged = (0, 0)  # (done, failed) of the last line written
        if not enabled:
            return
        file = file or sys.stderr
        if dashboard:
            print(f"ctxdask batch: dashboard {dashboard}", file=file, flush=True)
        if already:
            print(f"ctxdask batch: {already} pairs already done by earlier runs", file=file, flush=True)
        if _interactive(file):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="pair", desc="pairs", file=file, dynamic_ncols=True,
                             mininterval=interval, smoothing=0.05)
        else:
            self._file = file
            self._last = self._started

    def finish_pair(self, status: str, pair_id: str | None = None) -> None:
        """Count one pair that reached a final state in this run (a log gets a line naming it)."""
        if status == "done":
            self.done += 1
        else:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(1)
            self.refresh()
        elif self._file is not None:
            self._write_line(time.monotonic(), f"pair {pair_id} {status}; " if pair_id else f"a pair {status}; ")

    def set_running(self, running: int) -> None:
        """Set the number of running tasks shown, and refresh."""
        self.running = running
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        """Redraw the bar (or write a log line), at most once per ``interval`` unless ``force``."""
        now = time.monotonic()
        if self._file is not None:
            self._log_line(now, force)
            return
        if self._bar is None or (not force and now - self._last < self.interval):
            return
        self._last = now
        self._bar.set_postfix_str(f"done {self.done}, not done {self.failed}, steps running {self.running}",
                                  refresh=True)

    def _log_line(self, now: float, force: bool) -> None:
        """A line every ``log_interval`` seconds, and at the end when something changed since the last one."""
        if force:
            if (self.done, self.failed) != self._logged:
                self._write_line(now)
        elif now - self._last >= self.log_interval:
            self._write_line(now)

    def _write_line(self, now: float, what: str = "") -> None:
        self._last, self._logged = now, (self.done, self.failed)
        finished, elapsed = self.done + self.failed, now - self._started
        eta = (f", about {_seconds(elapsed / finished * (self.total - finished))} left"
               if 0 < finished < self.total else "")
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} ctxdask batch: {what}{finished}/{self.total} pairs ({self.done} done, {self.failed} not "
              f"done), {self.running} steps running, {_seconds(elapsed)} elapsed{eta}", file=self._file, flush=True)

    def close(self) -> None:
        """Show the final state and close the bar or log."""
        if self._bar is not None:
            self.refresh(force=True)
            self._bar.close()
        elif self._file is not None:
            self.refresh(force=True)
            self._file = None
