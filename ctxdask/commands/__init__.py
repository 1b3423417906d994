"""Sub-commands of the ``ctxdask`` command line (one module each, see :mod:`ctxdask.cli`).

Exit codes are the same for the same problem in every sub-command (the command reference's
"Conventions" in docs/reference/commands.rst lists them):

====  ==========================================================================
0     done, every input fine
1     an input was bad or a step failed: the command could not do all its job
      (one line per problem on stderr, naming the file and the problem)
2     the command line is wrong: unknown option, missing or malformed argument
      (the sub-command's usage is printed)
130   interrupted (Ctrl-C): stopped cleanly; a batch rerun resumes
====  ==========================================================================
"""

from __future__ import annotations

from ctxdask.exceptions import CTXError

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "UsageError", "check_input",
           "check_input_folder", "check_output_folder", "count", "positive_int", "positive_number"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(CTXError, ValueError):
    """A command-line mistake a sub-command finds after parsing (exit 2, with its usage)."""

    def __init__(self, reason: str):
        super().__init__(None, reason)

    def __reduce__(self):
        return (type(self), (self.reason,))


def check_input(path, what: str) -> None:
    """Refuse at once an input file given on the command line that cannot be read.

    A missing file, a folder, a pipe or device, a symbolic-link loop or a file
    without read permission gets a one-line error naming the file, what it was
    given for (``what``, e.g. ``"the URL list (--urls)"``) and the problem.
    URLs are left to the code that reads them.
    """
    import fsspec

    from ctxdask import filecheck

    source = str(path)
    if filecheck.is_remote(source):
        return
    fs, local = fsspec.core.url_to_fs(source)
    try:
        filecheck.checked_size(fs, local, source)
    except CTXError as exc:
        raise type(exc)(exc.path, f"{what}: {exc.reason}") from None


def check_input_folder(path, what: str) -> None:
    """Refuse at once an input folder given on the command line that is missing or not a folder."""
    import os

    from ctxdask.exceptions import MissingFileError, NotAFileError, UnreadableFileError

    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(path, f"{what}: no such folder")
    if not os.path.isdir(path):
        raise NotAFileError(path, f"{what}: not a folder")
    if not os.access(path, os.R_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise UnreadableFileError(path, f"{what}: permission denied: this user may not read the folder")


def check_output_folder(path, what: str) -> None:
    """Refuse at once an output folder (``--out``, ``--to``) that is a file; a missing one is created later."""
    import os

    from ctxdask.exceptions import OutputPathError

    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(path, f"{what}: is a file, not a folder")


def _whole_number(text: str, minimum: int) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r}: must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (a wrong value is a usage error, exit 2)."""
    return _whole_number(text, 1)


def count(text: str) -> int:
    """argparse type: an integer of at least 0."""
    return _whole_number(text, 0)


def positive_number(text: str) -> float:
    """argparse type: a finite number above 0."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number above 0")
    return value
