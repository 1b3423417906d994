"""Ctrl-C and SIGTERM during a batch: the first asks to stop, the second to hurry, the third interrupts.

The driver stops at the next pass of its loop rather than wherever a signal
lands: an interrupt in the middle of recording a delivery would roll back the
record of files already in the output folder, and one inside distributed's
start-up of a local cluster leaves workers half made (its exit hook then fails
on them with a traceback). So the first signal sets :class:`StopRequest`; the
second sets its ``hurry`` event, which skips the wait for cancelled programs to
stop (the cluster's shutdown stops them) and silences distributed's complaints
about connections closed under it; only a third raises ``KeyboardInterrupt``
wherever it lands, for a driver stuck beyond that.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

#: the signals that stop a batch
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest(threading.Event):
    """Set by the first Ctrl-C or SIGTERM; :attr:`hurry` set by the second."""

    def __init__(self) -> None:
        super().__init__()
        self.hurry = threading.Event()
        self.count = 0

    def signal(self) -> None:
        """One more stop signal: stop, then hurry, then raise ``KeyboardInterrupt``."""
        self.count += 1
        if self.count >= 3:
            raise KeyboardInterrupt
        (self if self.count == 1 else self.hurry).set()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Yield a :class:`StopRequest` that Ctrl-C and SIGTERM set (handlers only in the main thread)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {sig: signal.signal(sig, lambda signum, frame: stop.signal()) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _quiet_distributed() -> None:
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def quiet_teardown(client) -> None:
    """Silence distributed's logs here and on the workers before a hurried local cluster closes.

    Workers closed with tasks still running fail to release their semaphore
    leases and the scheduler to broadcast to them: ERROR lines with tracebacks
    about what the user asked for, so they are not shown.
    """
    _quiet_distributed()
    with contextlib.suppress(Exception):
        client.run(_quiet_distributed, wait=True)
