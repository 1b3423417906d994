"""A live progress line for a batch: pairs done/failed/running and the ETA.

Built on :mod:`tqdm` (``tqdm.auto`` gives a widget in Jupyter, a text bar in a
terminal). Counts are pairs, the unit users plan with; the dashboard link is
printed once above the bar. With ``enabled=False`` nothing is shown and the
counts are still kept (the summary uses them).
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Pair counts of a running batch, shown as a bar.

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
        Minimum seconds between redraws.
    """

    def __init__(self, total: int, *, already: int = 0, dashboard: str | None = None,
                 enabled: bool = True, interval: float = 0.5, file=None):
        self.total = total
        self.done = self.failed = self.running = 0
        self.interval = interval
        self._last = 0.0
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            file = file or sys.stderr
            if dashboard:
                print(f"ctxdask batch: dashboard {dashboard}", file=file, flush=True)
            if already:
                print(f"ctxdask batch: {already} pairs already done by earlier runs", file=file, flush=True)
            self._bar = tqdm(total=total, unit="pair", desc="pairs", file=file, dynamic_ncols=True,
                             mininterval=interval, smoothing=0.05)

    def finish_pair(self, status: str) -> None:
        """Count one pair that reached a final state in this run."""
        if status == "done":
            self.done += 1
        else:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(1)
        self.refresh()

    def set_running(self, running: int) -> None:
        self.running = running
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._bar is None or (not force and now - self._last < self.interval):
            return
        self._last = now
        self._bar.set_postfix_str(f"done {self.done}, not done {self.failed}, steps running {self.running}",
                                  refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self.refresh(force=True)
            self._bar.close()
