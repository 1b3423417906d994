"""Who owns a scratch folder, and whether that process is still alive.

Scratch on office machines is shared: several batches (and several workers of
one batch) may use the same work root, and a driver or worker killed with
SIGKILL leaves its folders behind. A folder that may have to be cleaned up by
someone else carries an owner marker (:data:`MARKER`: host, pid and the
process's start time), so that a later run removes it only when its owner is
dead: never a live run's, whatever its age. The start time guards against pid
reuse (Linux ``/proc/<pid>/stat`` field 22, in clock ticks since boot); where
it cannot be read, the pid alone is used.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from typing import Any

__all__ = ["MARKER", "owner_alive", "process_start", "read_owner", "write_owner"]

#: the owner marker's file name inside the folder it describes
MARKER = ".ctxdask-owner.json"


def process_start(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), or None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: count fields after it
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 overall
    except (IndexError, ValueError):
        return None


def write_owner(folder: str | os.PathLike, **extra: Any) -> dict[str, Any]:
    """Mark ``folder`` as owned by this process (plus ``extra`` facts, e.g. the run id)."""
    pid = os.getpid()
    record = {"host": socket.gethostname(), "pid": pid, "start": process_start(pid), **extra}
    path = os.path.join(os.fspath(folder), MARKER)
    tmp = f"{path}.{pid}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)
    return record


def read_owner(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The owner record of ``folder``, or None when it has none (or an unreadable one)."""
    try:
        with open(os.path.join(os.fspath(folder), MARKER)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def owner_alive(record: Mapping[str, Any]) -> bool | None:
    """Whether the owner process of a record is alive: True, False, or None (another host: unknown)."""
    if record.get("host") != socket.gethostname():
        return None
    pid = int(record["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    start = record.get("start")
    now = process_start(pid)
    # the pid exists: it is the owner unless it was reused by a process started at another time
    return start is None or now is None or now == start
