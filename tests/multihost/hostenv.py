"""Become one simulated host: bind its private folders, take its host name, exec its program.

Run as the first program inside ``unshare -m -u --propagation private`` (a new
mount and UTS namespace whose mounts never reach the parent)::

    python hostenv.py --hostname mh-w1 --bind SRC=DST ... --hide DIR ... -- PROGRAM ARGS...

Binds are made in the order given, so a bind onto ``/tmp`` whose source lives
under ``/tmp`` must come last. ``--hide`` then mounts an empty read-only tmpfs
over each folder still visible (the harness's own area, so no host can reach
another host's files through their real paths). ``--keep DIR`` keeps a folder
that a bind would cover (the project and its Python environment when they live
under ``/tmp``, as in a CI clone) visible at its own path: it is opened before
the binds and bound back from that handle afterwards. The program replaces this
process (same pid, so the caller's process group is the host's).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hostenv", description=__doc__.splitlines()[0])
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--bind", action="append", default=[], metavar="SRC=DST")
    parser.add_argument("--hide", action="append", default=[], metavar="DIR")
    parser.add_argument("--keep", action="append", default=[], metavar="DIR")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no program to run")
    # handles taken before any bind: afterwards the path may name another host's folder, or nothing
    kept = [(folder, os.open(folder, os.O_PATH | os.O_DIRECTORY)) for folder in args.keep]
    for item in args.bind:
        source, sep, target = item.partition("=")
        if not sep:
            parser.error(f"--bind {item!r}: expected SRC=DST")
        subprocess.run(["mount", "--bind", source, target], check=True)
    for folder in args.hide:
        if os.path.isdir(folder):
            subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=4k", "hidden", folder], check=True)
    for folder, handle in kept:
        os.makedirs(folder, exist_ok=True)
        # -c: hand the kernel the /proc link itself, which it follows to the opened folder
        subprocess.run(["mount", "-c", "--bind", f"/proc/{os.getpid()}/fd/{handle}", folder], check=True)
        os.close(handle)
    socket.sethostname(args.hostname)
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
